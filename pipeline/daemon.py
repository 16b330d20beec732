"""The stream daemon: config -> graph -> device -> host-side post-processing -> one JSON line per frame.

Stopping (Ctrl-C, SIGTERM, or every file source at its end) stops the sources first, then drains what is in
flight, so every frame that was decoded and queued is still written; the output file is flushed per line and
synced on close.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import pathlib
import threading
import time

from models.spec import ModelSpec
from models.errors import ModelError
from pipeline.config import ConfigError, DaemonConfig
from pipeline.devices.base import BaseDevice, CameraSettings, DeviceSettings, create_device
from pipeline.graph import check_config_against_model, graph_json, render_graph, validate_graph
from pipeline.events.rules import AlarmRule, EventTracker
from pipeline.events.zones import Zone, assign_zones
from pipeline.postprocess import class_thresholds, postprocess
from pipeline.systemd import notify

logger = logging.getLogger(__name__)

DETECTIONS_FILE = "detections.jsonl"
EVENTS_FILE = "events.jsonl"
STATUS_FILE = "status.json"
DRAIN_TIMEOUT_S = 60.0
HEARTBEAT_S = 1.0  # status.json and the systemd watchdog ping; WatchdogSec must be well above it


@dataclasses.dataclass
class CameraSummary:
    camera_id: str
    frames_in: int
    processed: int
    dropped: int
    skipped: int
    reconnects: int
    errors: int
    detections: int
    state: str


@dataclasses.dataclass
class RunSummary:
    cameras: list[CameraSummary]
    lines_written: int
    events_written: int
    seconds: float
    output: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_spec(config: DaemonConfig, source: str = "config") -> ModelSpec:
    try:
        spec = ModelSpec.load(config.model)
    except ModelError as exc:
        raise ConfigError(f"{source}: model: {exc}") from exc
    problems = check_config_against_model(config, spec, source)
    if problems:
        raise ConfigError("\n".join(problems))
    return spec


def device_settings(config: DaemonConfig) -> DeviceSettings:
    return DeviceSettings(
        cameras=tuple(CameraSettings(c.id, c.effective_mode, c.max_frames, c.loop, c.rate_fps) for c in config.cameras),
        max_batch=config.batching.max_batch, in_flight=config.batching.in_flight, live_queue=config.live_queue)


class Daemon:
    def __init__(self, config: DaemonConfig, *, graph: dict | None = None, device: BaseDevice | None = None,
                 source: str = "config"):
        self.config = config
        self.spec = load_spec(config, source)
        self.graph = graph if graph is not None else render_graph(config, self.spec)
        problems = validate_graph(self.graph, spec=self.spec, config=config)
        if problems:
            raise ConfigError("\n".join(problems))
        live = [c for c in config.cameras if c.effective_mode == "live"]
        if live and len(live) * config.live_queue < config.batching.max_batch:
            logger.warning("batching.max_batch %d can never fill from %d live camera(s) holding %d frame(s) each: "
                           "every batch waits the full waiting_time_ms (%d ms); lower max_batch or raise live_queue",
                           config.batching.max_batch, len(live), config.live_queue, config.batching.waiting_time_ms)
        self.device = device or create_device(config.device)
        self.thresholds = class_thresholds(self.spec, config.thresholds)
        self.detection_counts = {c.id: 0 for c in config.cameras}
        self.lines_written = 0
        rule = AlarmRule(**config.alarm.model_dump())
        self.trackers = {c.id: EventTracker(c.id, rule) for c in config.cameras}
        self.zones = {c.id: [Zone(z.name, tuple(tuple(p) for p in z.polygon),
                                  frozenset(z.classes) if z.classes is not None else None, z.min_score, z.min_area)
                             for z in c.zones] for c in config.cameras}
        self.events_written = 0

    def run(self, stop: threading.Event) -> RunSummary:
        out_dir = pathlib.Path(self.config.output.directory)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "pipeline.json").write_text(graph_json(self.graph), encoding="utf-8")
        path = out_dir / DETECTIONS_FILE
        started = time.monotonic()
        self.status_path = out_dir / STATUS_FILE
        self._heartbeat("starting")
        self.device.create_streams(self.graph, device_settings(self.config))
        notify("READY=1")
        # Append: a restart never overwrites what an earlier run wrote.
        with open(path, "a", encoding="utf-8", buffering=1) as output, \
                open(out_dir / EVENTS_FILE, "a", encoding="utf-8", buffering=1) as events:
            self.events_output = events
            try:
                self._loop(stop, output)
            finally:
                notify("STOPPING=1")
                for handle in (output, events):
                    handle.flush()
                    os.fsync(handle.fileno())
                self.device.destroy()
                self._heartbeat("stopped")
        summary = RunSummary(self._summaries(), self.lines_written, self.events_written, time.monotonic() - started,
                             str(path))
        return summary

    def _loop(self, stop: threading.Event, output) -> None:
        next_summary = time.monotonic() + self.config.summary_interval_s
        last = {s.camera_id: (0, 0) for s in self.device.camera_stats()}
        last_time = time.monotonic()
        next_heartbeat = 0.0
        draining_since = None
        while True:
            if time.monotonic() >= next_heartbeat:
                self._heartbeat("stopping" if draining_since is not None else "running")
                notify("WATCHDOG=1")
                next_heartbeat = time.monotonic() + HEARTBEAT_S
            if stop.is_set() and draining_since is None:
                logger.info("stopping: sources stopped, draining frames in flight")
                self.device.stop_sources()
                draining_since = time.monotonic()
            result = self.device.get_result(0.2)
            if result is not None:
                self._write(result, output)
            elif self.device.finished():
                break
            if draining_since is not None and time.monotonic() - draining_since > DRAIN_TIMEOUT_S:
                logger.error("drain did not finish in %.0f s; stopping anyway", DRAIN_TIMEOUT_S)
                break
            now = time.monotonic()
            if now >= next_summary:
                last = self._log_summary(last, now - last_time)
                last_time, next_summary = now, now + self.config.summary_interval_s

    def _heartbeat(self, state: str) -> None:
        """status.json, replaced atomically: what an installer's health check and a supervisor read."""
        status = {"state": state, "time": time.time(), "pid": os.getpid(),
                  "cameras": [{"id": s.camera_id, "state": s.state, "processed": s.processed, "dropped": s.dropped}
                              for s in self.device.camera_stats()]}
        temporary = self.status_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(status), encoding="utf-8")
        os.replace(temporary, self.status_path)

    def _write(self, result, output) -> None:
        detections = postprocess(result, self.spec, self.config.thresholds, self.thresholds)
        info = result.info
        self.detection_counts[info.camera_id] += len(detections)
        line = {
            "camera": info.camera_id,
            "frame": info.frame_id,
            "pts": info.pts_s,
            "time": datetime.datetime.fromtimestamp(info.wall_time, datetime.timezone.utc).isoformat(
                timespec="milliseconds"),
            "latency_ms": round((time.monotonic() - info.monotonic_time) * 1000.0, 1),
            "width": info.width,
            "height": info.height,
            "detections": detections.to_json(self.spec.class_names),
        }
        output.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.lines_written += 1
        observations = [(zone, self.spec.class_names[int(detections.class_ids[i])], detections.boxes_xyxy_camera[i],
                         float(detections.scores[i]))
                        for i, zone in assign_zones(detections, info.width, info.height, self.zones[info.camera_id],
                                                    self.spec.class_names)]
        for event in self.trackers[info.camera_id].observe(info.wall_time, info.frame_id, observations):
            self.events_output.write(json.dumps(event, separators=(",", ":")) + "\n")
            self.events_written += 1
            logger.info("camera %s: event %s %s %s in %s (score %.2f)", info.camera_id, event["type"],
                        event["event_id"][:8], event["class"], event["zone"], event["score"])

    def _log_summary(self, last: dict, seconds: float) -> dict:
        current = {}
        for stats in self.device.camera_stats():
            previous_processed, previous_detections = last.get(stats.camera_id, (0, 0))
            detections = self.detection_counts.get(stats.camera_id, 0)
            fps = (stats.processed - previous_processed) / max(seconds, 1e-6)
            logger.info("camera %s: %s, in %d, processed %d, dropped %d, %.1f fps, detections %d (+%d)%s",
                        stats.camera_id, stats.state, stats.frames_in, stats.processed, stats.dropped, fps,
                        detections, detections - previous_detections,
                        f", last error: {stats.last_error}" if stats.state in ("reconnecting", "failed") else "")
            current[stats.camera_id] = (stats.processed, detections)
        return current

    def _summaries(self) -> list[CameraSummary]:
        return [CameraSummary(s.camera_id, s.frames_in, s.processed, s.dropped, s.skipped, s.reconnects, s.errors,
                              self.detection_counts.get(s.camera_id, 0), s.state)
                for s in self.device.camera_stats()]

