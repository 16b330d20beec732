"""Host side of every device: a score threshold per class, class-wise NMS, boxes back to camera pixels
(models/cascade.py `decode`, the one decoding the devices and `inspector eval` use too)."""

from __future__ import annotations

from models.cascade import Decoding, decode
from models.spec import ModelSpec
from pipeline.config import ThresholdConfig
from pipeline.types import Detections, FrameResult


def decoding(spec: ModelSpec, thresholds: ThresholdConfig) -> Decoding:
    """A model's decoding under one `thresholds` key of the daemon config."""
    return Decoding(tuple(float(thresholds.per_class.get(name, thresholds.score)) for name in spec.class_names),
                    thresholds.nms_iou, thresholds.max_detections)


def unknown_threshold_classes(thresholds: ThresholdConfig, spec: ModelSpec, key: str, model: str) -> list:
    """A problem for every class a `thresholds.per_class` names that `spec`'s model does not have, naming the key
    (e.g. "config: stage2.thresholds") and which model (e.g. "the second model")."""
    return [f"{key}.per_class.{name}: not a class of {model} ({', '.join(spec.class_names)})"
            for name in thresholds.per_class if name not in spec.class_names]


def postprocess(result: FrameResult, rule: Decoding) -> Detections:
    """A frame's first-stage detections: as the device decoded them with this rule (with a second stage), or
    decoded here."""
    if result.stage1 is not None:
        return result.stage1
    boxes, scores, class_ids = decode(result.tensors[0], result.tensors[1], result.geometry, result.info.width,
                                      result.info.height, rule)
    return Detections(boxes, scores, class_ids)
