"""What the daemon does with each frame's result: detections in camera pixels, the detection line, metrics,
zones and alarm rules, and the events they start (handed to the output stage)."""

from __future__ import annotations

import datetime
import json
import time
from typing import Dict, Optional

from models.spec import ModelSpec
from pipeline.stage2 import Cascade
from pipeline.config import DaemonConfig
from pipeline.events.rules import AlarmRule, EventTracker
from pipeline.events.zones import Zone, assign_zones
from pipeline.outputs.snapshots import Frame
from pipeline.outputs.stage import OutputStage
from pipeline.postprocess import decoding, postprocess
from pipeline.web.metrics import Metrics


STAGES = ("detect", "encode", "outbox", "events", "metrics")


class FrameHandler:
    def __init__(self, config: DaemonConfig, spec: ModelSpec, outputs: OutputStage, metrics: Metrics,
                 profile: bool = False, cascade: Optional[Cascade] = None):
        self.config, self.spec, self.outputs, self.metrics = config, spec, outputs, metrics
        self.cascade = cascade  # a second stage's crops, when there is one (pipeline/stage2.py)
        self.class_names = cascade.names if cascade is not None else tuple(spec.class_names)
        self.crops_skipped = 0
        # profile: seconds spent per stage, summed (the host-only benchmark's breakdown; off in the daemon)
        self.profile = profile
        self.stage_seconds = {stage: 0.0 for stage in STAGES}
        self.decoding = decoding(spec, config.thresholds)
        rule = AlarmRule(**config.alarm.model_dump())
        self.trackers = {c.id: EventTracker(c.id, rule) for c in config.cameras}
        self.zones = {c.id: [Zone(z.name, tuple(tuple(p) for p in z.polygon),
                                  frozenset(z.classes) if z.classes is not None else None, z.min_score, z.min_area)
                             for z in c.zones] for c in config.cameras}
        self.detection_counts = {c.id: 0 for c in config.cameras}
        self.lines_written = 0
        self.last_result: Dict[str, Optional[float]] = {c.id: None for c in config.cameras}  # monotonic time
        self.latest: Dict[str, Frame] = {}  # the newest frame per camera, with its detections (status page)

    def _lap(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.stage_seconds[stage] += now - started
        return now

    def handle(self, result) -> None:
        lap = time.perf_counter() if self.profile else 0.0
        detections = postprocess(result, self.decoding)
        if self.cascade is not None:
            detections = self.cascade.combine(detections, result)
            if result.crops_skipped:
                self.crops_skipped += result.crops_skipped
                self.metrics.crops_skipped.labels(result.info.camera_id).inc(result.crops_skipped)
        if self.profile:
            lap = self._lap("detect", lap)
        info = result.info
        camera = info.camera_id
        now = time.monotonic()
        self.detection_counts[camera] += len(detections)
        self.last_result[camera] = now
        latency_s = None if info.monotonic_time is None else now - info.monotonic_time
        line = {
            "camera": camera,
            "frame": info.frame_id,
            "pts": info.pts_s,
            "time": datetime.datetime.fromtimestamp(info.wall_time, datetime.timezone.utc).isoformat(
                timespec="milliseconds"),
            "latency_ms": None if latency_s is None else round(latency_s * 1000.0, 1),
            "width": info.width,
            "height": info.height,
            "detections": detections.to_json(self.class_names),
        }
        payload = json.dumps(line, separators=(",", ":"))
        if self.profile:
            lap = self._lap("encode", lap)
        self.outputs.enqueue("detections", camera, payload, info.wall_time)
        self.lines_written += 1
        if self.profile:
            lap = self._lap("outbox", lap)
        self._observe(result, latency_s)
        if self.profile:
            lap = self._lap("metrics", lap)
        labels = tuple(self.class_names[int(c)] for c in detections.class_ids)
        frame = None
        if result.nv12 is not None:
            frame = Frame(camera, info.frame_id, info.wall_time, result.nv12, info.width, info.height,
                          detections.boxes_xyxy_camera, labels, detections.scores)
            self.latest[camera] = frame
            if self.outputs.samples is not None:
                self.outputs.samples.consider(frame)
        elif self.outputs.samples is not None:
            self.outputs.samples.consider_without_picture(camera, detections.scores)
        observations = [(zone, labels[i], detections.boxes_xyxy_camera[i], float(detections.scores[i]))
                        for i, zone in assign_zones(detections, info.width, info.height, self.zones[camera],
                                                    self.class_names)]
        for event, best_frame in self.trackers[camera].observe_frames(info.wall_time, info.frame_id, observations,
                                                                       frame):
            self.outputs.emit_event(event, best_frame)
            self.metrics.events.labels(event["camera"], event["type"]).inc()
        if self.profile:
            self._lap("events", lap)

    def _observe(self, result, latency_s: float) -> None:
        camera = result.info.camera_id
        if result.info.decode_ms is not None:
            self.metrics.decode.labels(camera).observe(result.info.decode_ms / 1000.0)
        if result.infer_ms is not None:
            self.metrics.inference.labels(camera).observe(result.infer_ms / 1000.0)
        if latency_s is not None:
            self.metrics.latency.labels(camera).observe(latency_s)
        if result.batch_size is not None:
            self.metrics.batch_fill.observe(result.batch_size / self.config.batching.max_batch)
