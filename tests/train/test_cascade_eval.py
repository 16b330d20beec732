"""The cascade's end-to-end evaluation, with colour detectors whose answers are known exactly: if the crops, the
letterbox of each crop or the mapping back to the picture were wrong, the children's AP would show it."""

import numpy as np
import pytest

from models.darknet_cfg import parse_cfg
from models.spec import ModelSpec
from train.cascade_eval import eval_rule, evaluate_cascade
from train.datasets import load_voc
from train.testing import CASCADE_CLASSES, write_cascade_dataset

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)

pytest.importorskip("pycocotools")

CROPS = {"parents": ["string"], "margin": 0.25, "max_aspect": 1.5, "overlap": 0.25, "min_side": 32}
BLUE = (np.array([0.0, 0.15, 0.7]), np.array([0.2, 0.35, 1.0]))  # the bars, RGB / 255
RED = (np.array([0.8, 0.0, 0.0]), np.array([1.0, 0.2, 0.2]))  # the faults


def colour_detector(colour, class_index: int, num_classes: int, offset=(0.0, 0.0)):
    """A "network": one candidate per image, the bounding box of the pixels of `colour` (model pixels), scored
    by how much of it is visible (a fault cut by a tile's edge scores lower than the whole one)."""
    lo, hi = colour

    def run(images):
        boxes = np.zeros((len(images), 1, 4), np.float32)
        scores = np.zeros((len(images), 1, num_classes), np.float32)
        for b, image in enumerate(images):
            mask = np.all((image >= lo[:, None, None]) & (image <= hi[:, None, None]), axis=0)
            if mask.any():
                ys, xs = np.nonzero(mask)
                boxes[b, 0] = [xs.min() + offset[0], ys.min() + offset[1], xs.max() + 1 + offset[0],
                               ys.max() + 1 + offset[1]]
                scores[b, 0, class_index] = min(0.99, 0.3 + mask.sum() / 20000)
        return boxes, scores

    return run


def specs():
    stage1 = ModelSpec.from_cfg(parse_cfg("yolov4-tiny", classes=2, height=320, width=320), list(CASCADE_CLASSES))
    stage2 = ModelSpec.from_cfg(parse_cfg("yolov4-tiny", classes=1, height=96, width=96), ["fault"], crops=CROPS)
    return stage1, stage2


def test_known_detectors_give_a_perfect_cascade(tmp_path):
    dataset = load_voc(write_cascade_dataset(tmp_path / "d", images=12), CASCADE_CLASSES)
    stage1, stage2 = specs()
    # Stage 1 finds the bars but not the faults (too small for it here); stage 2 finds the faults in crops.
    report = evaluate_cascade(dataset, colour_detector(BLUE, 0, 2), stage1, colour_detector(RED, 0, 1), stage2)
    assert report["pictures"] == 12 and report["crops_per_picture"] > 2  # tiles along each bar
    assert report["stage1"]["per_class_AP50"] == {"string": 1.0, "fault": 0.0}
    assert report["cascade"]["per_class_AP50"] == {"fault": 1.0}
    assert report["cascade"]["mAP50_95"] > 0.7  # 10-15 px faults: the colour threshold trims ~0.4 px a side
    assert report["cascade"]["per_class_AP50_95"] == {"fault": report["cascade"]["mAP50_95"]}  # one class


def test_the_cascade_is_measured_per_source_too(tmp_path):
    import dataclasses

    from train.datasets import Dataset

    dataset = load_voc(write_cascade_dataset(tmp_path / "d", images=12), CASCADE_CLASSES)
    shift = np.asarray([40, 40, 40, 40], np.float32)
    # Source b's faults annotated 40 px off: only b's figure falls.
    samples = [dataclasses.replace(s, source="ab"[i % 2],
                                   boxes=s.boxes + (shift * (s.labels == 1)[:, None] if i % 2 else 0))
               for i, s in enumerate(dataset.samples)]
    stage1, stage2 = specs()
    report = evaluate_cascade(Dataset(samples, dataset.class_names, []), colour_detector(BLUE, 0, 2), stage1,
                              colour_detector(RED, 0, 1), stage2)
    per_source = report["cascade"]["per_source"]
    assert per_source["a"]["images"] == per_source["b"]["images"] == 6
    assert per_source["a"]["per_class_AP50"] == {"fault": 1.0} and per_source["b"]["per_class_AP50"]["fault"] < 0.2
    assert 0.2 < report["cascade"]["per_class_AP50"]["fault"] < 1.0  # both together
    assert report["stage1"]["per_source"]["b"]["per_class_AP50"]["string"] == 1.0


def test_children_come_back_to_the_picture_where_they_are(tmp_path):
    """Sub-pixel: a fault's centre in picture pixels within 0.25 px, whichever tile along the bar found it."""
    import cv2

    from train.cascade_eval import children_of_picture

    dataset = load_voc(write_cascade_dataset(tmp_path / "d", images=12), CASCADE_CLASSES)
    stage1, stage2 = specs()
    checked = 0
    for sample in dataset.samples:
        faults = sample.boxes[sample.labels == 1]
        if not len(faults):
            continue
        bars = sample.boxes[sample.labels == 0]
        boxes, _, _, crops = children_of_picture(cv2.imread(sample.image), bars, np.zeros(len(bars), np.int64),
                                                 colour_detector(RED, 0, 1), stage2, eval_rule(stage1, stage2))
        assert crops > 2 and len(boxes) == 1  # the tiles that saw it, merged into one
        centre = lambda b: np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
        assert np.abs(centre(boxes[0]) - centre(faults[0])).max() <= 0.25, (boxes[0], faults[0])
        checked += 1
    assert checked == 8


def test_a_box_off_by_the_crop_offset_fails(tmp_path):
    """The test above can fail: stage-2 boxes misplaced by 40 model pixels inside their crops lose the faults."""
    dataset = load_voc(write_cascade_dataset(tmp_path / "d", images=12), CASCADE_CLASSES)
    stage1, stage2 = specs()
    report = evaluate_cascade(dataset, colour_detector(BLUE, 0, 2), stage1,
                              colour_detector(RED, 0, 1, offset=(40.0, 40.0)), stage2)
    assert report["cascade"]["per_class_AP50"]["fault"] < 0.2


def test_parents_below_the_threshold_are_not_cropped(tmp_path):
    dataset = load_voc(write_cascade_dataset(tmp_path / "d", images=6), CASCADE_CLASSES)
    stage1, stage2 = specs()
    report = evaluate_cascade(dataset, colour_detector(BLUE, 0, 2), stage1, colour_detector(RED, 0, 1), stage2,
                              eval_rule(stage1, stage2, parent_score=0.995))
    assert report["crops_per_picture"] == 0 and report["cascade"]["per_class_AP50"] == {"fault": 0.0}
    faults = sum(int((s.labels == 1).sum()) for s in dataset.samples)
    assert report["cascade"]["at_threshold"]["fault"] == {"score": 0.001, "found": 0, "false_alarms": 0,
                                                          "missed": faults, "precision": None, "recall": 0.0}
    assert faults > 0


def test_a_first_stage_model_is_refused_as_a_second_stage(tmp_path):
    dataset = load_voc(write_cascade_dataset(tmp_path / "d", images=2), CASCADE_CLASSES)
    stage1, _ = specs()
    with pytest.raises(ValueError, match="no `crops`"):
        evaluate_cascade(dataset, colour_detector(BLUE, 0, 2), stage1, colour_detector(BLUE, 0, 2), stage1)


def test_the_deployed_threshold_is_counted_in_objects_found_missed_and_false_alarms(tmp_path):
    """The colour detector scores a whole 10-15 px fault 0.30-0.31 and a part cut by a tile's edge less: at
    0.3 the daemon reports every fault; at 0.5 none (all missed); misplaced, every kept box is a false alarm."""
    import dataclasses

    dataset = load_voc(write_cascade_dataset(tmp_path / "d", images=12), CASCADE_CLASSES)
    faults = sum(int((s.labels == 1).sum()) for s in dataset.samples)
    stage1, stage2 = specs()
    base = eval_rule(stage1, stage2)

    def at(score, offset=(0.0, 0.0)):
        rule = dataclasses.replace(base, stage2=dataclasses.replace(base.stage2, thresholds=(score,)))
        report = evaluate_cascade(dataset, colour_detector(BLUE, 0, 2), stage1,
                                  colour_detector(RED, 0, 1, offset=offset), stage2, rule)
        return report["cascade"]["at_threshold"]["fault"]

    assert at(0.3) == {"score": 0.3, "found": faults, "false_alarms": 0, "missed": 0, "precision": 1.0,
                       "recall": 1.0}
    assert at(0.5) == {"score": 0.5, "found": 0, "false_alarms": 0, "missed": faults, "precision": None,
                       "recall": 0.0}
    misplaced = at(0.3, offset=(40.0, 40.0))
    assert misplaced["found"] == 0 and misplaced["false_alarms"] >= faults and misplaced["precision"] == 0.0


def test_another_cascade_is_compared_stage_by_stage_on_the_same_resamples(tmp_path):
    """Against a cascade whose second model misplaces every fault by 40 px: stage 1 is the same (no difference in
    any resample), the children's difference is this cascade's AP minus the other's, and every paired resample
    puts this one ahead."""
    from train.cascade_eval import CascadeModels

    dataset = load_voc(write_cascade_dataset(tmp_path / "d", images=12), CASCADE_CLASSES)
    stage1, stage2 = specs()
    rule = eval_rule(stage1, stage2)
    worse = CascadeModels(colour_detector(BLUE, 0, 2), stage1, colour_detector(RED, 0, 1, offset=(40.0, 40.0)),
                          stage2, rule)
    report = evaluate_cascade(dataset, colour_detector(BLUE, 0, 2), stage1, colour_detector(RED, 0, 1), stage2,
                              rule, bootstrap=30, against=worse)
    assert report["against"]["crops_per_picture"] == report["crops_per_picture"] > 2
    assert report["stage1"]["against"]["difference_AP50"]["string"] == {"difference": 0.0, "interval": [0.0, 0.0]}
    theirs = report["cascade"]["against"]["per_class_AP50"]["fault"]
    difference = report["cascade"]["against"]["difference_AP50"]["fault"]
    assert theirs < 0.2 and difference["difference"] == round(1.0 - theirs, 4)
    assert 0 < difference["interval"][0] <= difference["interval"][1] <= 1.0
    # Another cascade must find the same classes in both stages.
    other2 = ModelSpec.from_cfg(parse_cfg("yolov4-tiny", classes=1, height=96, width=96), ["crack"], crops=CROPS)
    with pytest.raises(ValueError, match=r"its stage 2 classes \['crack'\] are not \['fault'\]"):
        evaluate_cascade(dataset, colour_detector(BLUE, 0, 2), stage1, colour_detector(RED, 0, 1), stage2, rule,
                         against=CascadeModels(colour_detector(BLUE, 0, 2), stage1, colour_detector(RED, 0, 1),
                                               other2, rule))


def both_colours(fault_score: float):
    """A first stage that finds the bars and, scored `fault_score`, the faults (exactly: 1:1 letterbox)."""
    bars, faults = colour_detector(BLUE, 0, 2), colour_detector(RED, 1, 2)

    def run(images):
        (b1, s1), (b2, s2) = bars(images), faults(images)
        s2 = np.where(s2 > 0, fault_score, 0.0).astype(np.float32)
        return np.concatenate([b1, b2], axis=1), np.concatenate([s1, s2], axis=1)

    return run


def test_the_first_stages_own_faults_are_merged_as_the_daemon_merges_them(tmp_path):
    """A first stage that finds the faults itself, behind a second that misplaces every one: merged (the daemon's
    default, and eval_rule's), the first stage's faults are the cascade's; left out, the cascade finds none. Both
    stages finding a fault report it once (no false alarm at the threshold)."""
    import dataclasses

    dataset = load_voc(write_cascade_dataset(tmp_path / "d", images=12), CASCADE_CLASSES)
    faults = sum(int((s.labels == 1).sum()) for s in dataset.samples)
    stage1, stage2 = specs()
    rule = eval_rule(stage1, stage2)
    assert rule.merged == ((1, 0),)
    misplaced = colour_detector(RED, 0, 1, offset=(40.0, 40.0))
    merged = evaluate_cascade(dataset, both_colours(0.9), stage1, misplaced, stage2, rule)
    assert merged["rule"]["merged"] == ["fault"]
    assert merged["cascade"]["per_class_AP50"]["fault"] == 1.0  # the first stage's, ranked above the misplaced
    alone = evaluate_cascade(dataset, both_colours(0.9), stage1, misplaced, stage2,
                             dataclasses.replace(rule, merged=()))
    assert alone["rule"]["merged"] == [] and alone["cascade"]["per_class_AP50"]["fault"] < 0.2
    # A right second stage and the first: each fault found twice, reported once at the threshold.
    at = dataclasses.replace(rule, stage2=dataclasses.replace(rule.stage2, thresholds=(0.3,)))
    both = evaluate_cascade(dataset, both_colours(0.9), stage1, colour_detector(RED, 0, 1), stage2, at)
    assert both["cascade"]["at_threshold"]["fault"] == {"score": 0.3, "found": faults, "false_alarms": 0,
                                                        "missed": 0, "precision": 1.0, "recall": 1.0}
    # Below the second model's threshold, the first stage's faults are not reported.
    low = evaluate_cascade(dataset, both_colours(0.2), stage1, misplaced, stage2, at)
    assert low["cascade"]["at_threshold"]["fault"]["found"] == 0
