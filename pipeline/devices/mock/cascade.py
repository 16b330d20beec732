"""The second stage on the mock device (issue 14): crops of the first model's objects, cut from the decoded
full-resolution NV12 frame, letterboxed to the second model's input, its AIPP, batched across every frame (and
so every camera) of a first-stage batch, inferred.

What the device does per first-stage batch, in order:
1. each frame's parents and crops, cut and letterboxed (pipeline/devices/crops.py, shared with the Ascend
   device);
2. each crop AIPP-converted, and the lot inferred in batches of the second model's largest gear (the last one
   padded up to a gear);
3. the outputs handed back with the frame, one CropOutput per crop.
"""

from __future__ import annotations

import queue

import numpy as np

from models.aipp import AippConfig
from models.spec import ModelSpec
from pipeline.devices.base import Stage2Settings
from pipeline.devices.crops import CropPlanner
from pipeline.devices.mock.infer import choose_gear
from pipeline.types import CropOutput


class CropInference:
    def __init__(self, spec1: ModelSpec, spec2: ModelSpec, model_file: str, settings: Stage2Settings,
                 runtime: str | None, sessions: int, threads: int):
        from models.runtime import open_session

        self.spec1, self.spec2, self.settings = spec1, spec2, settings
        self.planner = CropPlanner(spec2, settings)
        self.aipp = AippConfig.for_model(spec2)
        self.gears = tuple(spec2.batch_gears)
        self._sessions: "queue.Queue" = queue.Queue()
        for _ in range(sessions):
            self._sessions.put(open_session(model_file, runtime, threads))

    def run(self, frames: list, geometries: list, outputs: list) -> tuple[list[tuple], list[int]]:
        """Per frame of a first-stage batch: (its CropOutputs, crops skipped beyond max_crops)."""
        h2, w2 = self.spec2.input_height, self.spec2.input_width
        plans = []  # (frame index, CropPlan)
        skipped = []
        for i, (frame, geometry) in enumerate(zip(frames, geometries)):
            frame_plans, left_out = self.planner.plan((outputs[0][i], outputs[1][i]), geometry, frame.info.width,
                                                      frame.info.height)
            plans += [(i, plan) for plan in frame_plans]
            skipped.append(left_out)
        per_frame: list[list] = [[] for _ in frames]
        if not plans:
            return [tuple(p) for p in per_frame], skipped
        largest = self.gears[-1]
        for start in range(0, len(plans), largest):
            chunk = plans[start:start + largest]
            gear = choose_gear(len(chunk), self.gears, "Upper")
            batch = np.zeros((gear, 3, h2, w2), np.float32)
            for j, (i, plan) in enumerate(chunk):
                self.aipp.apply_nv12(self.planner.cut(frames[i].nv12, plan), h2, w2, out=batch[j])
            session = self._sessions.get()
            try:
                out = session.run(batch)
            finally:
                self._sessions.put(session)
            for j, (i, plan) in enumerate(chunk):
                per_frame[i].append(CropOutput(plan.rect, plan.parent_box, plan.parent_score, plan.geometry,
                                               tuple(o[j] for o in out)))
        return [tuple(p) for p in per_frame], skipped
