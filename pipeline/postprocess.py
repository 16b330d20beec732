"""Host side of every device: thresholds per class, class-wise NMS (models/detect.py), boxes back to camera
pixels."""

from __future__ import annotations

from typing import Optional

import numpy as np

from models.detect import detect
from models.spec import ModelSpec
from pipeline.config import ThresholdConfig
from pipeline.types import Detections, FrameResult


def class_thresholds(spec: ModelSpec, thresholds: ThresholdConfig) -> np.ndarray:
    return np.array([thresholds.per_class.get(name, thresholds.score) for name in spec.class_names],
                    dtype=np.float32)


def postprocess(result: FrameResult, spec: ModelSpec, thresholds: ThresholdConfig,
                per_class_threshold: Optional[np.ndarray] = None) -> Detections:
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
