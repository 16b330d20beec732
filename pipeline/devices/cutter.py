"""The second stage's crops of one frame, the same on both devices (docs/cascade.md).

The device decodes the first model's outputs once with the host's own rule (models/cascade.py `decode`, the
daemon's thresholds and NMS), plans the crops around the parent objects (`plan_crops`: the geometry the second
model was trained with, at most `max_crops` per frame, each with its parent's index) and hands the decoded
detections on with the frame. Each crop is cut from the frame's full-resolution NV12 with even corners (VPC crop
alignment for 4:2:0) and letterboxed into the second model's input with the padding bytes DVPP would write for
the model's pad value.

The mock device does this after each first-stage batch (mock/stage2.py); the Ascend device does it on the host,
on the decoded picture it fetched with the first model's outputs, and sends the crops back in (ascend.py).
"""

from __future__ import annotations

from models.cascade import CropPlan, decode, plan_crops
from models.letterbox import LetterboxGeometry
from models.spec import ModelSpec
from pipeline.devices.base import Stage2Settings
from pipeline.devices.nv12 import crop_planes, dvpp_background, empty_nv12, letterbox_planes
from pipeline.types import Detections

__all__ = ["CropPlan", "CropPlanner"]


class CropPlanner:
    def __init__(self, spec2: ModelSpec, settings: Stage2Settings):
        self.spec2, self.rule = spec2, settings.rule
        pad = spec2.letterbox.pad_value
        self._pad_y, self._pad_uv, _ = dvpp_background(pad, pad, pad)

    def plan(self, tensors, geometry: LetterboxGeometry, width: int, height: int) -> tuple[Detections,
                                                                                          list[CropPlan], int]:
        """One frame's first-stage detections (camera pixels) decoded from its outputs (boxes, scores), its crops
        around them, and how many crops were left out."""
        boxes, scores, class_ids = decode(tensors[0], tensors[1], geometry, width, height, self.rule.stage1)
        plans, skipped = plan_crops(boxes, class_ids, width, height, self.rule, self.spec2)
        return Detections(boxes, scores, class_ids), plans, skipped

    def cut(self, nv12, plan: CropPlan):
        """The crop of an aligned NV12 frame, letterboxed: an NV12 buffer of the second model's input size."""
        out = empty_nv12(plan.geometry.model_width, plan.geometry.model_height, self._pad_y, self._pad_uv)
        aligned_h = out.shape[0] * 2 // 3
        self.cut_into(nv12, plan, out[:aligned_h], out[aligned_h:], filled=True)
        return out

    def cut_into(self, nv12, plan: CropPlan, out_y, out_uv, filled: bool = False) -> None:
        """`cut` written into the planes of an NV12 picture of the second model's input size (views of a
        larger buffer, as the mock's batch of crops is), without the crop's own buffer."""
        letterbox_planes(*crop_planes(nv12, plan.rect), plan.geometry, out_y, out_uv, self._pad_y, self._pad_uv,
                         filled)
