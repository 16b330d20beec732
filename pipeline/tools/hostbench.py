"""`inspector bench --host-only`: the host's share of every frame, with no device in the way.

On an Atlas box DVPP decodes and resizes and the NPU infers; what is left on the box's CPU is this: the
model's outputs -> detections in camera pixels (threshold, class-wise NMS, letterbox mapping) -> the detection
line (JSON) -> the durable outbox -> zones, alarm rules and events -> metrics, while the delivery thread
writes the JSON lines files. The benchmark feeds the daemon's own FrameHandler and OutputStage synthetic model
outputs with a chosen number of real detections per frame (0, 5, 50: an empty scene, a line of insulators, a
crowded one), round-robin over N cameras, and times the main thread per frame and per stage. Not included:
fetching and parsing the SDK's protobuf messages (no SDK here; its cost belongs to the box) and decoding.
"""

from __future__ import annotations

import pathlib
import tempfile
import time
from typing import Dict, List, Sequence

import numpy as np

from models.letterbox import letterbox_geometry
from models.spec import ModelSpec
from pipeline.config import parse_config
from pipeline.frames import STAGES, FrameHandler
from pipeline.outputs.stage import OutputStage
from pipeline.types import FrameInfo, FrameResult
from pipeline.web.metrics import Metrics, StatsCollector

CAMERA_SIZE = (1920, 1080)
VARIANTS = 8  # distinct outputs per camera, cycled (a static scene with small score changes)
BATCH = 4  # results per device batch: the daemon commits their detection lines together


def synthetic_outputs(spec: ModelSpec, detections: int, rng: np.random.Generator):
    """(boxes, scores) of the export contract for one frame: `detections` well-separated objects above any
    threshold, every other candidate a low background score."""
    k = spec.num_candidates
    boxes = np.zeros((k, 4), np.float32)
    boxes[:, 2:] = 4.0
    scores = rng.uniform(0.0, 0.05, (k, spec.num_classes)).astype(np.float32)
    if detections:
        chosen = rng.choice(k, size=detections, replace=False)
        columns = int(np.ceil(np.sqrt(detections)))
        cell_w, cell_h = spec.input_width / columns, spec.input_height / columns
        for n, index in enumerate(chosen):
            x, y = (n % columns) * cell_w, (n // columns) * cell_h
            boxes[index] = [x + 2, y + 2, x + cell_w * 0.8, y + cell_h * 0.8]  # no two overlap: NMS keeps all
            scores[index, n % spec.num_classes] = rng.uniform(0.6, 0.95)
    return boxes, scores


def host_case(model_dir: pathlib.Path, cameras: int, detections: int, frames: int, seed: int = 0) -> Dict:
    spec = ModelSpec.load(model_dir)
    rng = np.random.default_rng(seed)
    width, height = CAMERA_SIZE
    geometry = letterbox_geometry(width, height, spec.input_width, spec.input_height, spec.letterbox.placement)
    with tempfile.TemporaryDirectory(prefix="inspector-hostbench-") as out:
        config = parse_config({
            "cameras": [{"id": f"cam{i}", "url": f"rtsp://127.0.0.1:9/cam{i}"} for i in range(cameras)],
            "model": str(model_dir), "output": {"directory": out}, "http": {"enabled": False},
            "snapshots": {"enabled": False}})
        outputs = OutputStage(config, pathlib.Path(out))
        outputs.start()
        metrics = Metrics(StatsCollector(lambda: [], lambda: {}, outputs.status, outputs.dropped))
        handler = FrameHandler(config, spec, outputs, metrics, profile=True)
        variants = [[synthetic_outputs(spec, detections, rng) for _ in range(VARIANTS)] for _ in range(cameras)]
        results = []
        for i in range(frames):
            camera = i % cameras
            now = time.time()
            info = FrameInfo(f"cam{camera}", camera, i // cameras, None, now, time.monotonic(), width, height)
            results.append(FrameResult(info, geometry, variants[camera][(i // cameras) % VARIANTS], 4, 4))
        started = time.perf_counter()
        for index, result in enumerate(results, 1):
            handler.handle(result)
            if index % BATCH == 0:  # the results of one device batch, then one outbox transaction
                flush_started = time.perf_counter()
                outputs.flush()
                handler.stage_seconds["outbox"] += time.perf_counter() - flush_started
        outputs.flush()
        elapsed = time.perf_counter() - started
        outputs.stop()  # the JSON lines files complete: delivery kept up, or this waits
        drained = time.perf_counter() - started
        lines = handler.lines_written
    return {"cameras": cameras, "detections_per_frame": detections, "frames": lines,
            "frames_per_s": lines / elapsed, "us_per_frame": elapsed / lines * 1e6,
            "frames_per_s_delivered": lines / drained, "events": outputs.events_written,
            "stages_us": {stage: handler.stage_seconds[stage] / lines * 1e6 for stage in STAGES}}


def run_host_bench(model_dir: pathlib.Path, cameras: Sequence[int], detections: Sequence[int],
                   frames: int) -> Dict:
    cases: List[Dict] = [host_case(model_dir, n, d, frames) for n in cameras for d in detections]
    return {"model": str(model_dir), "camera_size": list(CAMERA_SIZE), "cases": cases}


def format_host_report(report: Dict) -> str:
    lines = [f"host-only: {report['model']}, camera {report['camera_size'][0]}x{report['camera_size'][1]}, "
             "main thread per frame (the delivery thread runs beside it)",
             f"{'cameras':>7} {'dets':>4} {'frames/s':>9} {'us/frame':>8} {'delivered/s':>11} " +
             " ".join(f"{stage:>7}" for stage in STAGES)]
    for case in report["cases"]:
        lines.append(f"{case['cameras']:>7} {case['detections_per_frame']:>4} {case['frames_per_s']:>9.0f} "
                     f"{case['us_per_frame']:>8.0f} {case['frames_per_s_delivered']:>11.0f} " +
                     " ".join(f"{case['stages_us'][stage]:>7.0f}" for stage in STAGES))
    lines.append("stages in us per frame: detect (threshold, NMS, letterbox mapping), encode (the JSON line), "
                 "outbox (SQLite commit), events (zones, alarm rules, event messages), metrics")
    return "\n".join(lines)
