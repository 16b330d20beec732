"""The output contract's consumer: candidates above threshold, class-wise NMS, best first.

The exported model's outputs (models/export.py): boxes (K, 4) x1 y1 x2 y2 in model-input pixels and scores
(K, C). Shared by the daemon (pipeline/postprocess.py) and evaluation (train/evaluate.py), so both measure the
same detections. Vectorised numpy; the NMS itself is OpenCV's (see nms).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS; indices of kept boxes, best first. OpenCV's NMSBoxes (C++: ~1 us for a frame's handful of
    boxes, against ~20 us for a numpy loop): a box is suppressed when its IoU with a kept, better-scored box
    exceeds the threshold (tests/models/test_detect.py checks it against a brute-force reference)."""
    import cv2

    if len(scores) <= 1:
        return np.arange(len(scores), dtype=np.int64)
    boxes = np.asarray(boxes, np.float64)
    xywh = np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
    # score_threshold 0: every score here already passed its class threshold (> 0).
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), np.asarray(scores, np.float64).tolist(), 0.0, float(iou_threshold))
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def classwise_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NMS within each class in one pass: boxes of different classes are shifted apart so they never overlap."""
    if not len(scores):
        return np.zeros(0, dtype=np.int64)
    offset = (boxes.max() + 1.0) * class_ids.astype(np.float32)
    return nms(boxes + offset[:, None], scores, iou_threshold)


def detect(boxes_model: np.ndarray, scores: np.ndarray, per_class_threshold: np.ndarray, iou_threshold: float,
           max_detections: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes in model pixels, scores, class ids) after threshold and class-wise NMS, best first.
    A candidate may yield several classes (multi-label, as Darknet does)."""
    # A box whose size overflowed (an untrained or diverged model) cannot be placed: never a detection.
    finite = (np.abs(boxes_model) < 1e5).all(axis=1)  # also false for inf and nan
    candidate, class_id = np.nonzero((scores >= per_class_threshold[None, :]) & finite[:, None])
    kept_scores = scores[candidate, class_id]
    kept_boxes = boxes_model[candidate]
    keep = classwise_nms(kept_boxes, kept_scores, class_id, iou_threshold)[:max_detections]
    return kept_boxes[keep], kept_scores[keep], class_id[keep]


