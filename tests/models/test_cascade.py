"""The one cascade's pure steps: decode (with its shortcut for outputs that reach no threshold), crops planned
with their parent's index, children mapped back with it, the first stage's detections of a shared class merged."""

import dataclasses

import numpy as np
import pytest

from models.cascade import CascadeRule, Decoding, children, decode, merge_first, plan_crops, shared_pairs
from models.letterbox import letterbox_geometry
from models.spec import ModelSpec
from models.darknet_cfg import parse_cfg

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)

CROPS = {"parents": ["insulator"], "margin": 0.25, "max_aspect": 1.5, "overlap": 0.25, "min_side": 32,
         "max_side": 0.3}


def outputs(boxes, scores, candidates=20, classes=2):
    b = np.zeros((candidates, 4), np.float32)
    s = np.zeros((candidates, classes), np.float32)
    if len(boxes):
        b[:len(boxes)] = boxes
        s[:len(scores)] = scores
    return b, s


def test_decode_below_every_threshold_is_empty_and_at_a_threshold_is_not():
    geometry = letterbox_geometry(640, 360, 320, 320)
    rule = Decoding((0.5, 0.3), 0.45, 100)
    boxes, scores = outputs([[10, 80, 50, 120]], [[0.49, 0.29]])
    found = decode(boxes, scores, geometry, 640, 360, rule)
    assert [a.shape for a in found] == [(0, 4), (0,), (0,)] and found[0].dtype == np.float32
    assert found[2].dtype == np.int64
    scores[0] = (0.49, 0.3)  # the shortcut must not hide a score exactly at its class threshold
    boxes_camera, kept, ids = decode(boxes, scores, geometry, 640, 360, rule)
    assert ids.tolist() == [1] and kept.tolist() == [pytest.approx(0.3)]
    np.testing.assert_allclose(boxes_camera[0], geometry.to_camera(boxes[:1], 640, 360)[0])


def test_crops_carry_their_parents_index_and_children_come_back_with_it():
    spec2 = ModelSpec.from_cfg(parse_cfg("yolov4-tiny", classes=1, height=96, width=96), ["defect"], crops=CROPS)
    rule = CascadeRule((0,), Decoding((0.3, 0.3), 0.45, 100), Decoding((0.3,), 0.45, 100), 32)
    # Decoded first stage, best first: a defect (not a parent), then two insulators far apart.
    boxes = np.asarray([[300, 10, 320, 30], [20, 40, 60, 200], [500, 100, 540, 260]], np.float32)
    class_ids = np.asarray([1, 0, 0], np.int64)
    plans, skipped = plan_crops(boxes, class_ids, 640, 360, rule, spec2)
    assert skipped == 0 and {p.parent for p in plans} == {1, 2}
    assert all(boxes[p.parent][0] - 40 <= p.rect[0] for p in plans)  # each crop near its own parent
    # One child found in the first crop of the second insulator only.
    target = next(k for k, p in enumerate(plans) if p.parent == 2)
    per_crop = [outputs([[30, 30, 50, 50]] if k == target else [], [[0.9]] if k == target else [], classes=1)
                for k in range(len(plans))]
    found_boxes, found_scores, found_ids, parents = children(plans, per_crop, rule.stage2)
    assert parents.tolist() == [2] and found_ids.tolist() == [0] and found_scores.tolist() == [pytest.approx(0.9)]
    x1, y1, x2, y2 = plans[target].rect
    assert x1 <= found_boxes[0][0] < found_boxes[0][2] <= x2 and y1 <= found_boxes[0][1] < found_boxes[0][3] <= y2
    limited, left_out = plan_crops(boxes, class_ids, 640, 360, CascadeRule((0,), rule.stage1, rule.stage2, 2), spec2)
    assert len(limited) == 2 and left_out == len(plans) - 2 and limited[0].parent == 1  # best parent first


def test_the_first_stages_detections_of_a_shared_class_join_the_children_once():
    """merge_first: the first model's `defect` (class 1) joins the second model's (class 0) above the second's
    threshold, with no parent; one both found is reported once, with the better score; the first model's other
    classes never join."""
    rule = CascadeRule((0,), Decoding((0.3, 0.3), 0.45, 100), Decoding((0.5,), 0.45, 3), 32, ((1, 0),))
    found = (np.asarray([[100, 100, 120, 120]], np.float32), np.asarray([0.6], np.float32),
             np.asarray([0], np.int64), np.asarray([4], np.int64))
    first_boxes = np.asarray([[0, 0, 300, 50],  # an insulator: not a shared class
                              [101, 101, 121, 121],  # the child's defect again, better scored
                              [400, 10, 420, 30],  # a defect outside every crop
                              [500, 10, 520, 30]], np.float32)  # one below the second model's threshold
    first_scores = np.asarray([0.9, 0.8, 0.55, 0.45], np.float32)
    first_ids = np.asarray([0, 1, 1, 1], np.int64)
    boxes, scores, ids, parents = merge_first(found, first_boxes, first_scores, first_ids, rule)
    assert scores.tolist() == [pytest.approx(0.8), pytest.approx(0.55)] and ids.tolist() == [0, 0]
    assert parents.tolist() == [-1, -1]  # the better-scored duplicate is the first stage's: no parent
    np.testing.assert_array_equal(boxes, first_boxes[1:3])
    # The child better scored: it stays, with its parent.
    better = (found[0], np.asarray([0.95], np.float32), found[2], found[3])
    assert merge_first(better, first_boxes, first_scores, first_ids, rule)[3].tolist() == [4, -1]
    # At most the second model's max_detections, best first.
    many = np.asarray([[k * 40, 200, k * 40 + 20, 220] for k in range(5)], np.float32)
    capped = merge_first(found, many, np.linspace(0.9, 0.7, 5).astype(np.float32), np.ones(5, np.int64), rule)
    assert capped[1].tolist() == pytest.approx([0.9, 0.85, 0.8])
    # Without merged classes (stage2.shared_classes: second) the children are returned as they are.
    alone = merge_first(found, first_boxes, first_scores, first_ids, dataclasses.replace(rule, merged=()))
    assert all(a is b for a, b in zip(alone, found))


def test_shared_pairs_map_each_class_both_models_detect():
    stage1 = ModelSpec.from_cfg(parse_cfg("yolov4-tiny", classes=3, height=320, width=320),
                                ["insulator", "broken", "missing-cap"])
    stage2 = ModelSpec.from_cfg(parse_cfg("yolov4-tiny", classes=3, height=96, width=96),
                                ["missing-cap", "flashover", "broken"], crops=CROPS)
    assert shared_pairs(stage1, stage2) == ((2, 0), (1, 2))
