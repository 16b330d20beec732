"""The output contract's consumer: candidates above threshold, class-wise NMS, best first.

The exported model's outputs (deploy/export.py): boxes (K, 4) x1 y1 x2 y2 in model-input pixels and scores
(K, C). Shared by the daemon (pipeline/postprocess.py) and evaluation (train/evaluate.py), so both measure the
same detections. Vectorised numpy; the NMS loop runs once per kept box.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS; indices of kept boxes, best first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


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


