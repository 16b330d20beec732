"""Host side of every device: candidates above threshold, class-wise NMS, boxes back to camera pixels.

The device's output follows the export contract (deploy/export.py): boxes (K, 4) x1 y1 x2 y2 in model-input
pixels and scores (K, C). Everything here is vectorised numpy; the NMS loop runs once per kept box.
"""

from __future__ import annotations

import numpy as np

from models.spec import ModelSpec
from pipeline.config import ThresholdConfig
from pipeline.types import Detections, FrameResult


def class_thresholds(spec: ModelSpec, thresholds: ThresholdConfig) -> np.ndarray:
    return np.array([thresholds.per_class.get(name, thresholds.score) for name in spec.class_names],
                    dtype=np.float32)


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
           max_detections: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes in model pixels, scores, class ids) after threshold and class-wise NMS, best first.
    A candidate may yield several classes (multi-label, as Darknet does)."""
    # A box whose size overflowed (an untrained or diverged model) cannot be placed: never a detection.
    finite = (np.abs(boxes_model) < 1e5).all(axis=1)  # also false for inf and nan
    candidate, class_id = np.nonzero((scores >= per_class_threshold[None, :]) & finite[:, None])
    kept_scores = scores[candidate, class_id]
    kept_boxes = boxes_model[candidate]
    keep = classwise_nms(kept_boxes, kept_scores, class_id, iou_threshold)[:max_detections]
    return kept_boxes[keep], kept_scores[keep], class_id[keep]


def postprocess(result: FrameResult, spec: ModelSpec, thresholds: ThresholdConfig,
                per_class_threshold: np.ndarray | None = None) -> Detections:
    boxes_model, scores = result.tensors[0], result.tensors[1]
    if per_class_threshold is None:
        per_class_threshold = class_thresholds(spec, thresholds)
    boxes, kept_scores, class_ids = detect(boxes_model, scores, per_class_threshold, thresholds.nms_iou,
                                           thresholds.max_detections)
    camera_boxes = result.geometry.to_camera(boxes, result.info.width, result.info.height)
    # A box entirely in the letterbox padding clips to nothing in the camera frame: not a detection.
    visible = (camera_boxes[:, 2] > camera_boxes[:, 0]) & (camera_boxes[:, 3] > camera_boxes[:, 1])
    return Detections(camera_boxes[visible].astype(np.float32), kept_scores[visible].astype(np.float32),
                      class_ids[visible].astype(np.int64))
