"""`inspector eval --draw`: the pictures with their labels and the detections a deployment reports."""

import cv2
import numpy as np
import pytest

from train.datasets import Dataset, Sample
from train.draw import DETECTION, LABEL, draw_pictures, reported

pytestmark = pytest.mark.unit


def near(picture, x, y, colour) -> bool:
    """The box edge through (x, y) has the colour (JPEG: within a margin)."""
    return bool(np.abs(picture[y, x].astype(int) - colour).max() <= 40)


def test_labels_and_reported_detections_are_drawn_on_each_picture(tmp_path):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), np.full((200, 300, 3), 128, np.uint8))
    dataset = Dataset([Sample(str(path), 300, 200, np.array([[20, 30, 120, 150]], np.float32), np.array([1])),
                       Sample(str(tmp_path / "missing.png"), 300, 200, np.zeros((0, 4), np.float32),
                              np.zeros(0, np.int64))], ("insulator", "broken"), [])
    results = [{"image_id": 0, "category_id": 1, "bbox": [150, 40, 100, 100], "score": 0.8},   # insulator
               {"image_id": 0, "category_id": 2, "bbox": [200, 20, 50, 50], "score": 0.4}]    # broken
    shown = reported(results, dataset.class_names, (0.3, 0.5))  # the broken one is below its threshold
    assert [d["name"] for d in shown] == ["insulator"]
    written = draw_pictures(dataset, shown, tmp_path / "out")
    assert [p.name for p in written] == ["0000_a.jpg"]  # the unreadable picture is left out
    picture = cv2.imread(str(written[0]))
    assert near(picture, 20, 90, LABEL) and near(picture, 120, 90, LABEL)           # the label's sides
    assert near(picture, 150, 90, DETECTION) and near(picture, 250, 90, DETECTION)  # the detection's
    assert near(picture, 225, 45, (128, 128, 128))  # inside the unreported box: untouched grey
    assert near(picture, 249, 20, (128, 128, 128))  # its right edge, above the reported box: not drawn
