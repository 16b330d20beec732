"""The second stage on the mock device (issue 14): crops of the first model's objects, cut from the decoded
full-resolution NV12 frame, letterboxed to the second model's input, its AIPP, batched across every frame (and
so every camera) of a first-stage batch, inferred.

What the device does per first-stage batch, in order:
1. the parents: the first model's outputs through the host's own rule (models/detect.py with the daemon's
   thresholds and NMS), kept for the parent classes, best first;
2. the crops (models/crops.py, the geometry the second model was trained with, from its manifest), at most
   `max_crops` per frame, cut from the frame's NV12 with even corners (VPC crop alignment for 4:2:0);
3. each crop letterboxed into the second model's input (VPC resize, the same emulation as the first stage's,
   padding with the DVPP bytes of the model's pad value), AIPP-converted, and the lot inferred in batches of the
   second model's largest gear (the last one padded up to a gear);
4. the outputs handed back with the frame, one CropOutput per crop.
"""

from __future__ import annotations

import queue

import numpy as np

from models.aipp import AippConfig
from models.crops import picture_crops
from models.detect import detect
from models.letterbox import letterbox_geometry
from models.spec import ModelSpec
from pipeline.devices.base import Stage2Settings
from pipeline.devices.mock.infer import choose_gear
from pipeline.devices.mock.nv12 import crop_nv12, dvpp_background, letterbox_nv12
from pipeline.types import CropOutput


class CropInference:
    def __init__(self, spec1: ModelSpec, spec2: ModelSpec, model_file: str, settings: Stage2Settings,
                 runtime: str | None, sessions: int, threads: int):
        from models.runtime import open_session

        self.spec1, self.spec2, self.settings = spec1, spec2, settings
        self.crop_settings = spec2.crop_settings
        self.aipp = AippConfig.for_model(spec2)
        self.thresholds = np.asarray(settings.thresholds, np.float32)
        self.parent_ids = np.asarray(settings.parent_ids, np.int64)
        self.gears = tuple(spec2.batch_gears)
        pad = spec2.letterbox.pad_value
        self._pad_y, self._pad_uv, _ = dvpp_background(pad, pad, pad)
        self._sessions: "queue.Queue" = queue.Queue()
        for _ in range(sessions):
            self._sessions.put(open_session(model_file, runtime, threads))

    def parents(self, boxes_model: np.ndarray, scores: np.ndarray, geometry, width: int, height: int):
        """(boxes in camera pixels, scores) of one frame's parent objects, best first."""
        boxes, kept_scores, class_ids = detect(boxes_model, scores, self.thresholds, self.settings.nms_iou,
                                               self.settings.max_detections)
        mine = np.isin(class_ids, self.parent_ids)
        return geometry.to_camera(boxes[mine], width, height), kept_scores[mine]

    def run(self, frames: list, geometries: list, outputs: list) -> tuple[list[tuple], list[int]]:
        """Per frame of a first-stage batch: (its CropOutputs, crops skipped beyond max_crops)."""
        h2, w2 = self.spec2.input_height, self.spec2.input_width
        plans = []  # (frame index, rect, parent box, parent score, geometry)
        skipped = []
        for i, (frame, geometry) in enumerate(zip(frames, geometries)):
            info = frame.info
            parent_boxes, parent_scores = self.parents(outputs[0][i], outputs[1][i], geometry, info.width,
                                                       info.height)
            rects = picture_crops(parent_boxes, info.width, info.height, self.crop_settings)
            skipped.append(max(0, len(rects) - self.settings.max_crops))
            for rect, parent in rects[:self.settings.max_crops]:
                crop_w, crop_h = rect[2] - rect[0], rect[3] - rect[1]
                plans.append((i, rect, parent_boxes[parent], float(parent_scores[parent]),
                              letterbox_geometry(crop_w, crop_h, w2, h2, self.spec2.letterbox.placement)))
        per_frame: list[list] = [[] for _ in frames]
        if not plans:
            return [tuple(p) for p in per_frame], skipped
        largest = self.gears[-1]
        for start in range(0, len(plans), largest):
            chunk = plans[start:start + largest]
            gear = choose_gear(len(chunk), self.gears, "Upper")
            batch = np.zeros((gear, 3, h2, w2), np.float32)
            for j, (i, rect, _, _, geometry) in enumerate(chunk):
                crop = crop_nv12(frames[i].nv12, rect)
                resized = letterbox_nv12(crop, rect[2] - rect[0], rect[3] - rect[1], geometry, self._pad_y,
                                         self._pad_uv)
                self.aipp.apply_nv12(resized, h2, w2, out=batch[j])
            session = self._sessions.get()
            try:
                out = session.run(batch)
            finally:
                self._sessions.put(session)
            for j, (i, rect, box, score, geometry) in enumerate(chunk):
                per_frame[i].append(CropOutput(rect, tuple(float(v) for v in box), score, geometry,
                                               tuple(o[j] for o in out)))
        return [tuple(p) for p in per_frame], skipped
