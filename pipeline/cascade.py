"""The second stage on the host (docs/cascade.md): its model checked against the config and the first model, the
class list the daemon reports, and each frame's crop outputs turned into detections in camera pixels, each with
the first-stage object it was found in.

The class list is the first model's classes followed by the second model's that the first does not have. A
class both models have (the demo: `defect`) is reported from the second model only: the cascade exists because
the second model finds it better, and two sources of one class would double every event.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import numpy as np

from models.crops import children_in_picture
from models.detect import detect
from models.errors import ModelError
from models.spec import ModelSpec
from pipeline.config import DaemonConfig
from pipeline.devices.base import Stage2Settings
from pipeline.events.rules import iou_matrix
from pipeline.postprocess import class_thresholds
from pipeline.preflight import model_file_problems
from pipeline.types import Detections, FrameResult

def load_stage2(config: DaemonConfig, spec1: ModelSpec, source: str = "config") -> Tuple[Optional[ModelSpec],
                                                                                          List[str]]:
    """The second model's spec (None without one) and every problem with it, each naming the key."""
    stage2 = config.stage2
    if stage2 is None:
        return None, []
    try:
        spec2 = ModelSpec.load(stage2.model)
    except ModelError as exc:
        return None, [f"{source}: stage2.model: {exc}"]
    problems = []
    if spec2.crops is None:
        problems.append(f"{source}: stage2.model: {stage2.model} is not a second-stage model (its manifest has no "
                        "crops): train it with data.crops (train/configs/demo-defect-stage2.yaml)")
        return spec2, problems
    for name in stage2.parents or spec2.crops["parents"]:
        if name not in spec1.class_names:
            problems.append(f"{source}: stage2.parents: {name!r} is not a class of the first model "
                            f"({', '.join(spec1.class_names)})")
    untrained = [p for p in stage2.parents or [] if p not in spec2.crops["parents"]]
    if untrained:  # a subset is fine (crop only some of them); another class, the model has never seen
        problems.append(f"{source}: stage2.parents: {untrained} were not cropped in the second model's training "
                        f"(it was trained on crops of {spec2.crops['parents']})")
    for name in stage2.thresholds.per_class:
        if name not in spec2.class_names:
            problems.append(f"{source}: stage2.thresholds.per_class.{name}: not a class of the second model "
                            f"({', '.join(spec2.class_names)})")
    # Checksums always; loading the CPU model only when nothing else is wrong and the mock device will run it.
    problems += [f"{source}: stage2.model: {p}"
                 for p in model_file_problems(stage2.model, spec2, None if problems else config.device)]
    return spec2, problems


def class_names(spec1: ModelSpec, spec2: Optional[ModelSpec]) -> Tuple[str, ...]:
    """What the daemon reports: the first model's classes, then the second's it does not have."""
    if spec2 is None:
        return tuple(spec1.class_names)
    return tuple(spec1.class_names) + tuple(n for n in spec2.class_names if n not in spec1.class_names)


def device_stage2(config: DaemonConfig, spec1: ModelSpec, spec2: ModelSpec) -> Stage2Settings:
    parents = config.stage2.parents or spec2.crops["parents"]
    return Stage2Settings(config.stage2.model, tuple(spec1.class_names.index(p) for p in parents),
                          tuple(float(t) for t in class_thresholds(spec1, config.thresholds)),
                          config.thresholds.nms_iou, config.thresholds.max_detections, config.stage2.max_crops)


@dataclasses.dataclass(frozen=True)
class Cascade:
    """The host's view of a second stage: thresholds and the class mapping, computed once."""

    spec1: ModelSpec
    spec2: ModelSpec
    names: Tuple[str, ...]
    stage2_ids: np.ndarray  # second-model class -> reported class
    replaced: np.ndarray  # first-model classes reported from the second model only
    thresholds: np.ndarray  # second model, per class
    nms_iou: float
    max_detections: int

    @classmethod
    def create(cls, config: DaemonConfig, spec1: ModelSpec, spec2: ModelSpec) -> "Cascade":
        names = class_names(spec1, spec2)
        return cls(spec1, spec2, names, np.asarray([names.index(n) for n in spec2.class_names], np.int64),
                   np.asarray([i for i, n in enumerate(spec1.class_names) if n in spec2.class_names], np.int64),
                   class_thresholds(spec2, config.stage2.thresholds), config.stage2.thresholds.nms_iou,
                   config.stage2.thresholds.max_detections)

    def combine(self, first: Detections, result: FrameResult) -> Detections:
        """The first stage's detections (minus the classes the second reports) followed by the second's, in
        camera pixels, each second-stage detection with the index of its parent in the returned list."""
        keep = ~np.isin(first.class_ids, self.replaced)
        boxes1, scores1, ids1 = first.boxes_xyxy_camera[keep], first.scores[keep], first.class_ids[keep]
        per_crop = []
        for crop in result.crops:
            boxes, scores, ids = detect(crop.tensors[0], crop.tensors[1], self.thresholds, self.nms_iou,
                                        self.max_detections)
            x1, y1, x2, y2 = crop.rect_camera
            per_crop.append((crop.geometry.to_camera(boxes, x2 - x1, y2 - y1), scores, ids))
        boxes2, scores2, ids2, sources = children_in_picture([c.rect_camera for c in result.crops], per_crop)
        boxes2, scores2, ids2, sources = (v[:self.max_detections] for v in (boxes2, scores2, ids2, sources))
        parents = _parent_indices([c.parent_box_camera for c in result.crops], boxes1)[sources]
        return Detections(np.concatenate([boxes1, boxes2]).astype(np.float32),
                          np.concatenate([scores1, scores2]).astype(np.float32),
                          np.concatenate([ids1, self.stage2_ids[ids2]]).astype(np.int64),
                          np.concatenate([np.full(len(scores1), -1, np.int64), parents]))


def _parent_indices(parent_boxes, boxes: np.ndarray) -> np.ndarray:
    """For each crop, the first-stage detection it was cut around: the device applied the host's own rule, so it
    is the same box; matched by the best overlap (-1 if none overlaps by half)."""
    if not len(parent_boxes) or not len(boxes):
        return np.full(len(parent_boxes), -1, np.int64)
    iou = iou_matrix(np.asarray(parent_boxes, np.float32), boxes)
    best = np.argmax(iou, axis=1)
    return np.where(iou[np.arange(len(best)), best] >= 0.5, best, -1).astype(np.int64)
