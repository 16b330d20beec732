"""The second stage's crops of one frame, the same on both devices (docs/cascade.md).

Which first-stage objects are cropped is the host's own rule (models/detect.py with the daemon's thresholds and
NMS), kept for the parent classes, best first; where the crops are cut is the geometry the second model was
trained with (models/crops.py, from its manifest), at most `max_crops` per frame. Each crop is cut from the
frame's full-resolution NV12 with even corners (VPC crop alignment for 4:2:0) and letterboxed into the second
model's input with the padding bytes DVPP would write for the model's pad value.

The mock device does this after each first-stage batch (mock/cascade.py); the Ascend device does it on the host,
on the decoded picture it fetched with the first model's outputs, and sends the crops back in (ascend.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from models.crops import picture_crops
from models.detect import detect
from models.letterbox import LetterboxGeometry, letterbox_geometry
from models.spec import ModelSpec
from pipeline.devices.base import Stage2Settings
from pipeline.devices.mock.nv12 import crop_nv12, dvpp_background, letterbox_nv12


@dataclasses.dataclass(frozen=True)
class CropPlan:
    rect: tuple[int, int, int, int]  # camera pixels, x1 y1 x2 y2, even corners
    parent_box: tuple[float, float, float, float]  # the first-stage object, camera pixels
    parent_score: float
    geometry: LetterboxGeometry  # the crop letterboxed into the second model's input


class CropPlanner:
    def __init__(self, spec2: ModelSpec, settings: Stage2Settings):
        self.spec2, self.settings = spec2, settings
        self.crop_settings = spec2.crop_settings
        self.thresholds = np.asarray(settings.thresholds, np.float32)
        self.parent_ids = np.asarray(settings.parent_ids, np.int64)
        pad = spec2.letterbox.pad_value
        self._pad_y, self._pad_uv, _ = dvpp_background(pad, pad, pad)

    def parents(self, boxes_model: np.ndarray, scores: np.ndarray, geometry: LetterboxGeometry, width: int,
                height: int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes in camera pixels, scores) of one frame's parent objects, best first."""
        boxes, kept_scores, class_ids = detect(boxes_model, scores, self.thresholds, self.settings.nms_iou,
                                               self.settings.max_detections)
        mine = np.isin(class_ids, self.parent_ids)
        return geometry.to_camera(boxes[mine], width, height), kept_scores[mine]

    def plan(self, tensors, geometry: LetterboxGeometry, width: int, height: int) -> tuple[list[CropPlan], int]:
        """One frame's crops from its first-stage outputs (boxes, scores), and how many were left out."""
        parent_boxes, parent_scores = self.parents(tensors[0], tensors[1], geometry, width, height)
        rects = picture_crops(parent_boxes, width, height, self.crop_settings)
        h2, w2 = self.spec2.input_height, self.spec2.input_width
        plans = []
        for rect, parent in rects[:self.settings.max_crops]:
            plans.append(CropPlan(tuple(int(v) for v in rect), tuple(float(v) for v in parent_boxes[parent]),
                                  float(parent_scores[parent]),
                                  letterbox_geometry(rect[2] - rect[0], rect[3] - rect[1], w2, h2,
                                                     self.spec2.letterbox.placement)))
        return plans, max(0, len(rects) - self.settings.max_crops)

    def cut(self, nv12: np.ndarray, plan: CropPlan) -> np.ndarray:
        """The crop of an aligned NV12 frame, letterboxed: an NV12 buffer of the second model's input size."""
        x1, y1, x2, y2 = plan.rect
        return letterbox_nv12(crop_nv12(nv12, plan.rect), x2 - x1, y2 - y1, plan.geometry, self._pad_y,
                              self._pad_uv)
