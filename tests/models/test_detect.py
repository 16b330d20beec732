import numpy as np
import pytest

from models.letterbox import letterbox_geometry
from models.detect import classwise_nms, detect, nms

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def brute_force_nms(boxes, scores, iou_threshold):
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    for i in order:
        ok = True
        for j in keep:
            xx1, yy1 = max(boxes[i, 0], boxes[j, 0]), max(boxes[i, 1], boxes[j, 1])
            xx2, yy2 = min(boxes[i, 2], boxes[j, 2]), min(boxes[i, 3], boxes[j, 3])
            inter = max(0, xx2 - xx1) * max(0, yy2 - yy1)
            area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
            if inter / (area(boxes[i]) + area(boxes[j]) - inter) > iou_threshold:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def random_boxes(n, seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(10, 80, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32), rng.uniform(0, 1, n).astype(np.float32)


def test_nms_matches_brute_force():
    for seed in range(5):
        boxes, scores = random_boxes(200, seed)
        assert list(nms(boxes, scores, 0.45)) == brute_force_nms(boxes, scores, 0.45)


def test_classwise_nms_never_suppresses_across_classes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    keep = classwise_nms(boxes, scores, np.array([0, 1, 0]), 0.5)
    assert sorted(keep.tolist()) == [0, 1]


def test_detect_thresholds_per_class():
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([[0.5, 0.25], [0.1, 0.22]], np.float32)
    kept_boxes, kept_scores, class_ids = detect(boxes, scores, np.array([0.3, 0.2], np.float32), 0.45, 10)
    assert class_ids.tolist() == [0, 1, 1] and np.allclose(kept_scores, [0.5, 0.25, 0.22])


def test_letterbox_round_trip_to_camera_pixels():
    geometry = letterbox_geometry(1920, 1080, 416, 416)
    assert (geometry.resized_width, geometry.resized_height) == (416, 234)
    camera = np.array([[100, 200, 900, 1000]], np.float32)
    back = geometry.to_camera(geometry.to_model(camera), 1920, 1080)
    np.testing.assert_allclose(back, camera, rtol=1e-5)
    centred = letterbox_geometry(1920, 1080, 416, 416, "center")
    assert (centred.pad_x, centred.pad_y) == (0, 90)
    np.testing.assert_allclose(centred.to_camera(centred.to_model(camera), 1920, 1080), camera, rtol=1e-5)
