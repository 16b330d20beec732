"""The second stage on the mock device (docs/cascade.md): crops of the first model's objects, cut from the decoded
full-resolution NV12 frame, letterboxed to the second model's input, its AIPP, batched across every frame (and
so every camera) of a first-stage batch, inferred.

What the device does per first-stage batch, in order:
1. each frame's first-stage outputs decoded, its crops planned around the parents, cut and letterboxed
   (pipeline/devices/cutter.py, shared with the Ascend device);
2. each crop AIPP-converted, and the lot inferred in batches of the second model's largest gear (the last one
   padded up to a gear);
3. the outputs handed back with the frame, one CropOutput per crop, and the decoded detections.
"""

from __future__ import annotations

import queue

import numpy as np

from models.aipp import AippConfig
from models.spec import ModelSpec
from pipeline.devices.base import Stage2Settings
from pipeline.devices.cutter import CropPlanner
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

    def run(self, frames: list, geometries: list, outputs: list) -> tuple[list, list[tuple], list[int]]:
        """Per frame of a first-stage batch: (its decoded first-stage Detections, its CropOutputs, crops
        skipped beyond max_crops)."""
        h2, w2 = self.spec2.input_height, self.spec2.input_width
        plans = []  # (frame index, CropPlan)
        stage1, skipped = [], []
        for i, (frame, geometry) in enumerate(zip(frames, geometries)):
            detections, frame_plans, left_out = self.planner.plan((outputs[0][i], outputs[1][i]), geometry,
                                                                  frame.info.width, frame.info.height)
            stage1.append(detections)
            plans += [(i, plan) for plan in frame_plans]
            skipped.append(left_out)
        per_frame: list[list] = [[] for _ in frames]
        if not plans:
            return stage1, [tuple(p) for p in per_frame], skipped
        largest = self.gears[-1]
        for start in range(0, len(plans), largest):
            chunk = plans[start:start + largest]
            gear = choose_gear(len(chunk), self.gears, "Upper")
            batch = np.zeros((gear, 3, h2, w2), np.float32)
            batch[:len(chunk)] = self._cut_stacked([(frames[i].nv12, plan) for i, plan in chunk])
            session = self._sessions.get()
            try:
                out = session.run(batch)
            finally:
                self._sessions.put(session)
            for j, (i, plan) in enumerate(chunk):
                per_frame[i].append(CropOutput(plan.rect, plan.parent, plan.geometry, tuple(o[j] for o in out)))
        return stage1, [tuple(p) for p in per_frame], skipped

    def _cut_stacked(self, crops: list) -> np.ndarray:
        """The crops ((frame NV12, plan) each) cut, letterboxed and AIPP-converted in one pass, (n, 3, h, w):
        each crop is letterboxed straight into its rows of one NV12 picture n*h tall (their Y planes stacked,
        then their UV planes), which one AIPP call converts. AIPP is row-local (chroma row r serves luma rows
        2r and 2r+1) and h is even, so each crop's result is exactly its own; one buffer and one call instead
        of one per crop saves their copies and per-call overhead."""
        h2, w2 = self.spec2.input_height, self.spec2.input_width
        n = len(crops)
        stacked = np.empty((n * h2 * 3 // 2, w2), np.uint8)
        luma = stacked[:n * h2].reshape(n, h2, w2)
        chroma = stacked[n * h2:].reshape(n, h2 // 2, w2)
        for j, (nv12, plan) in enumerate(crops):
            self.planner.cut_into(nv12, plan, luma[j], chroma[j])
        return self.aipp.apply_nv12(stacked, n * h2, w2).reshape(3, n, h2, w2).transpose(1, 0, 2, 3)
