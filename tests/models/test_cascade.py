"""The one cascade's pure steps: decode (with its shortcut for outputs that reach no threshold), crops planned
with their parent's index, children mapped back with it."""

import numpy as np
import pytest

from models.cascade import CascadeRule, Decoding, children, decode, plan_crops
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
