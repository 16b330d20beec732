"""End-to-end evaluation of a two-stage cascade on full pictures (docs/cascade.md), with the daemon's own
functions (models/cascade.py): stage 1 decoded with the rule's first decoding picks the parents, the crops are
planned around them with each one's parent, cut from the full picture and letterboxed as in training, stage 2's
boxes mapped back and merged across overlapping tiles.

The rule is either a daemon config's (`inspector eval --config`, pipeline/stage2.py `cascade_rule`: exactly what
that daemon runs) or `eval_rule`'s (`--stage2`: parents above one score). The children are kept down to
EVAL_SCORE either way, so their AP integrates the whole precision-recall curve (the daemon's stage-2 threshold is
a point on it: `at_threshold`, the defects found and missed and the false alarms there); their NMS and cap are the
rule's. Where the rule merges the first stage's detections of a class both models detect (`merge_first`), those
join the children down to EVAL_SCORE too; `at_threshold` counts them at the second model's threshold, as the
daemon reports them (exact where the first stage's threshold of the class is not above it, as in every bundled
config: the daemon never sees first-stage detections below the first stage's threshold). Beside the cascade,
stage 1's own figures on the same pictures (its own child class, when it has one, is the single-stage baseline),
decoded the same way: down to EVAL_SCORE with the rule's NMS and cap, `at_threshold` at the rule's first-stage
thresholds (the parents that are cropped). `eval_rule`'s NMS and cap are
`inspector eval --model`'s, so without a daemon config stage 1's AP is that command's.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from models.cascade import CascadeRule, Decoding, children, decode, merge_first, plan_crops, shared_pairs
from models.letterbox import preprocess_bgr
from models.spec import ModelSpec
from train.datasets import Dataset
from train.draw import reported
from train.evaluate import EVAL_NMS_IOU, EVAL_SCORE, coco_results, curve_decoding, evaluate_sources, predict

DEFAULT_PARENT_SCORE = 0.25
DEFAULT_MAX_CROPS = 32  # as the daemon's stage2.max_crops default


def eval_rule(spec1: ModelSpec, spec2: ModelSpec, parent_score: float = DEFAULT_PARENT_SCORE,
              max_crops: int = DEFAULT_MAX_CROPS) -> CascadeRule:
    """`--stage2` without a daemon config: every parent class the second model was trained on, above one
    score, evaluation NMS, the classes both models detect merged (the daemon's default)."""
    check_pair(spec1, spec2)
    parent_ids = tuple(spec1.class_names.index(p) for p in spec2.crops["parents"])
    return CascadeRule(parent_ids, Decoding((parent_score,) * spec1.num_classes, EVAL_NMS_IOU, 300),
                       Decoding((EVAL_SCORE,) * spec2.num_classes, EVAL_NMS_IOU, 100), max_crops,
                       shared_pairs(spec1, spec2))


def eval_classes(spec1: ModelSpec, spec2: ModelSpec | None = None) -> tuple[str, ...]:
    """The classes a (cascade's) evaluation labels: the first model's, then the second's it does not have."""
    extra = spec2.class_names if spec2 is not None else ()
    return tuple(spec1.class_names) + tuple(c for c in extra if c not in spec1.class_names)


def check_pair(spec1: ModelSpec, spec2: ModelSpec) -> None:
    if spec2.crops is None:
        raise ValueError("the second model's manifest has no `crops` (not trained as a second stage)")
    missing = [p for p in spec2.crops["parents"] if p not in spec1.class_names]
    if missing:
        raise ValueError(f"stage 2 runs on {missing}, which stage 1 {list(spec1.class_names)} does not detect")


def children_of_picture(image: np.ndarray, boxes: np.ndarray, class_ids: np.ndarray, run2, spec2: ModelSpec,
                        rule: CascadeRule, batch: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Stage 2 on the crops of one picture around its decoded first-stage objects (boxes in picture pixels and
    their class ids, best first; the rule picks the parents): (boxes in picture pixels, scores, class ids,
    crops run)."""
    height, width = image.shape[:2]
    plans, _ = plan_crops(boxes, class_ids, width, height, rule, spec2)
    outputs = []
    for start in range(0, len(plans), batch):
        chunk = plans[start:start + batch]
        tensors = [preprocess_bgr(image[y1:y2, x1:x2], spec2)[0] for x1, y1, x2, y2 in (p.rect for p in chunk)]
        out_boxes, out_scores = run2(np.stack(tensors))
        outputs += [(out_boxes[k], out_scores[k]) for k in range(len(chunk))]
    boxes, scores, classes, _ = children(plans, outputs, rule.stage2)
    return boxes, scores, classes, len(plans)


@dataclasses.dataclass(frozen=True)
class CascadeModels:
    """Two models and the rule that joins them. run1 and run2 take a batch of letterboxed images and return the
    raw (boxes, scores) of the exported model."""

    run1: Callable
    spec1: ModelSpec
    run2: Callable
    spec2: ModelSpec
    rule: CascadeRule


@dataclasses.dataclass
class Detections:
    """A cascade's detections on a data set's pictures (COCO results, image_id = sample index): stage 1's down to
    EVAL_SCORE with the rule's NMS and cap, and the children's."""

    first: list
    children: list
    crops: int


def detect(dataset: Dataset, cascade: CascadeModels) -> Detections:
    """One pass of stage 1 over the pictures: its own detections and, from the same outputs, the parents of
    every picture and the children found in their crops (kept down to EVAL_SCORE whatever the rule's stage-2
    thresholds: AP needs the whole curve)."""
    rule = dataclasses.replace(cascade.rule, stage2=curve_decoding(cascade.rule.stage2))
    children_found, crops_run = [], 0

    def on_outputs(index, picture, boxes_model, scores, geometry, own):
        nonlocal crops_run
        sample = dataset.samples[index]
        first, _, first_ids = decode(boxes_model, scores, geometry, sample.width, sample.height, rule.stage1)
        found = children_of_picture(picture, first, first_ids, cascade.run2, cascade.spec2, rule)
        crops_run += found[3]
        boxes, child_scores, classes = found[:3]
        if rule.merged:  # `own`: stage 1 decoded down to EVAL_SCORE, as its figures are
            parents = np.zeros(len(classes), np.int64)  # eval reports no parents
            boxes, child_scores, classes, _ = merge_first((boxes, child_scores, classes, parents), *own, rule)
        children_found.extend(coco_results(index, boxes, child_scores, classes))

    first = predict(cascade.run1, dataset, cascade.spec1, on_outputs=on_outputs, decoding=curve_decoding(rule.stage1))
    return Detections(first, children_found, crops_run)


def evaluate_cascade(dataset: Dataset, run1, spec1: ModelSpec, run2, spec2: ModelSpec,
                     rule: CascadeRule | None = None, reported_out: list | None = None, bootstrap: int = 0,
                     against: CascadeModels | None = None) -> dict:
    """`dataset`: full pictures annotated with stage 1's classes and stage 2's (any order). Returns stage 1's
    metrics on its classes and the cascade's on stage 2's, both on these pictures. `reported_out`, when given,
    receives what the rule reports of both stages (train/draw.py `reported`: at its thresholds, named).
    bootstrap: resamplings of the pictures for AP intervals (train/evaluate.py `bootstrap_intervals`). against:
    another cascade of the same classes on the same pictures, each of its stages compared with this one's
    (train/evaluate.py `compare_against`: paired on the same resamplings)."""
    check_pair(spec1, spec2)
    mine = CascadeModels(run1, spec1, run2, spec2, rule or eval_rule(spec1, spec2))
    stage1_set, children_set = relabel(dataset, spec1.class_names), relabel(dataset, spec2.class_names)
    found = detect(dataset, mine)
    theirs = None
    if against is not None:
        check_pair(against.spec1, against.spec2)
        for which, a, b in (("stage 1", against.spec1, spec1), ("stage 2", against.spec2, spec2)):
            if tuple(a.class_names) != tuple(b.class_names):
                raise ValueError(f"its {which} classes {list(a.class_names)} are not {list(b.class_names)}")
        theirs = detect(dataset, against)
    # Stage 1's figures decoded with the rule's NMS and cap, at its thresholds what is cropped; the children's at
    # the rule's stage-2 thresholds (`at_threshold`: the point on the curve the daemon reports).
    stage1 = evaluate_sources(stage1_set, found.first, thresholds=mine.rule.stage1.thresholds, bootstrap=bootstrap,
                              against=None if theirs is None else theirs.first)
    cascade_metrics = evaluate_sources(children_set, found.children, thresholds=mine.rule.stage2.thresholds,
                                       bootstrap=bootstrap,  # and per source
                                       against=None if theirs is None else theirs.children)
    if reported_out is not None:
        reported_out += reported(found.first, spec1.class_names, mine.rule.stage1.thresholds)
        reported_out += reported(found.children, spec2.class_names, mine.rule.stage2.thresholds)
    for metrics in (stage1, cascade_metrics):
        metrics.pop("pr_curves", None)
    report = {"pictures": len(dataset.samples), "crops_per_picture": found.crops / max(1, len(dataset.samples)),
              "rule": rule_report(mine.rule, spec1, spec2), "stage1": stage1, "cascade": cascade_metrics}
    if theirs is not None:
        report["against"] = {"crops_per_picture": theirs.crops / max(1, len(dataset.samples)),
                             "rule": rule_report(against.rule, against.spec1, against.spec2)}
    return report


def rule_report(rule: CascadeRule, spec1: ModelSpec, spec2: ModelSpec) -> dict:
    """The rule in the report, by class name."""
    return {"parents": [spec1.class_names[i] for i in rule.parent_ids],
            "parent_scores": {spec1.class_names[i]: rule.stage1.thresholds[i] for i in rule.parent_ids},
            "stage1_nms_iou": rule.stage1.nms_iou, "stage2_nms_iou": rule.stage2.nms_iou,
            "max_crops": rule.max_crops, "merged": [spec2.class_names[k] for _, k in rule.merged]}


def relabel(dataset: Dataset, class_names) -> Dataset:
    """The same pictures with only the objects of `class_names`, indexed in that order."""
    class_names = tuple(class_names)
    index = {dataset.class_names.index(n): k for k, n in enumerate(class_names) if n in dataset.class_names}
    samples = []
    for sample in dataset.samples:
        keep = np.isin(sample.labels, list(index))
        samples.append(dataclasses.replace(sample, boxes=sample.boxes[keep],
                                           labels=np.asarray([index[int(l)] for l in sample.labels[keep]], np.int64)))
    return Dataset(samples, class_names, [])
