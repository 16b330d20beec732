"""The stream daemon: config -> graph -> device -> host-side post-processing -> outputs, events, health.

Every frame's detections and every event are committed to the durable outbox (SQLite WAL) before any output
sees them; one delivery thread per output (JSON lines files, MQTT, webhook) takes them from there, so a broker
that is away, or a restart, loses nothing (pipeline/outputs/). Events get an annotated JPEG of their best frame.
The HTTP side (pipeline/web/) serves /metrics, /healthz, snapshots and the status page.

Stopping (Ctrl-C, SIGTERM, or every file source at its end) stops the sources first, then drains what is in
flight, so every frame that was decoded and queued is still written; the JSON lines files are complete when
the daemon exits, and network outputs get `output.shutdown_grace_s` before the rest waits in the outbox.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import fcntl
import json
import logging
import os
import pathlib
import sqlite3
import threading
import time

from models.spec import ModelSpec
from models.errors import ModelError
from pipeline.config import ConfigError, DaemonConfig
from pipeline.devices.base import BaseDevice, CameraSettings, DeviceSettings, create_device
from pipeline.graph import check_config_against_model, graph_json, render_graph, validate_graph
from pipeline.events.rules import AlarmRule, EventTracker
from pipeline.events.zones import Zone, assign_zones
from pipeline.outputs.outbox import Outbox
from pipeline.outputs.sinks import Deliverer, JsonlSink, MqttSink, Sink, WebhookSink, env_secret
from pipeline.outputs.snapshots import Frame, SnapshotStore, annotate, encode_jpeg
from pipeline.postprocess import class_thresholds, postprocess
from pipeline.preflight import preflight
from pipeline.systemd import notify
from pipeline.web.metrics import Metrics, StatsCollector
from pipeline.web.server import StatusServer

logger = logging.getLogger(__name__)

DETECTIONS_FILE = "detections.jsonl"
EVENTS_FILE = "events.jsonl"
STATUS_FILE = "status.json"
OUTBOX_FILE = "outbox.sqlite"
LOCK_FILE = ".inspector.lock"
RECENT_EVENTS = 50
JSONL_FINISH_TIMEOUT_S = 120.0
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
    outbox_backlog: dict[str, int] = dataclasses.field(default_factory=dict)

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
        cameras=tuple(CameraSettings(c.id, c.effective_mode, c.max_frames, c.loop, c.rate_fps, c.no_frame_timeout_s,
                                     c.reconnect_max_s) for c in config.cameras),
        max_batch=config.batching.max_batch, in_flight=config.batching.in_flight,
        live_queue=config.effective_live_queue,
        threads=config.batching.threads)


class Daemon:
    def __init__(self, config: DaemonConfig, *, graph: dict | None = None, device: BaseDevice | None = None,
                 source: str = "config"):
        self.config = config
        self.spec = load_spec(config, source)
        problems = preflight(config, self.spec, source)
        if problems:
            raise ConfigError("\n".join(problems))
        self.graph = graph if graph is not None else render_graph(config, self.spec)
        problems = validate_graph(self.graph, spec=self.spec, config=config)
        if problems:
            raise ConfigError("\n".join(problems))
        live = [c for c in config.cameras if c.effective_mode == "live"]
        if live and len(live) * config.effective_live_queue < config.batching.max_batch:
            logger.warning("batching.max_batch %d can never fill from %d live camera(s) holding %d frame(s) each: "
                           "every batch waits the full waiting_time_ms (%d ms); lower max_batch or raise live_queue",
                           config.batching.max_batch, len(live), config.effective_live_queue,
                           config.batching.waiting_time_ms)
        self.http_token = env_secret(config.http.token_env, "http.token_env") if config.http.enabled else None
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
        self.cameras = {c.id: c for c in config.cameras}
        self.state = "starting"
        self.started = time.monotonic()
        self.last_result = {c.id: None for c in config.cameras}  # monotonic time of the camera's last output
        self.latest: dict[str, Frame] = {}
        self.rates = {c.id: 0.0 for c in config.cameras}
        self._lock = threading.Lock()
        self.recent_events: collections.deque = collections.deque(maxlen=RECENT_EVENTS)
        self._snapshot_frames: dict[str, int] = {}  # event id -> frame id of its snapshot
        self._jpeg_cache: dict[str, tuple[int, bytes]] = {}
        self.out_dir = pathlib.Path(config.output.directory)
        self.outbox: Outbox | None = None
        self.outbox_errors = 0
        self.deliverers: list[Deliverer] = []
        self.snapshots: SnapshotStore | None = None
        self.server: StatusServer | None = None
        self.metrics = Metrics(StatsCollector(self.device.camera_stats, self.camera_health, self.output_status,
                                              lambda: dict(self.outbox.dropped) if self.outbox else {}))

    # --- lifecycle ----------------------------------------------------------------------------------------------
    def _make_sinks(self) -> list[Sink]:
        output = self.config.output
        sinks: list[Sink] = []
        if output.jsonl.enabled:
            sinks.append(JsonlSink(self.out_dir, output.jsonl.messages, output.jsonl.max_bytes, output.jsonl.backups))
        if output.mqtt is not None:
            sinks.append(MqttSink(output.mqtt))
        if output.webhook is not None:
            sinks.append(WebhookSink(output.webhook, self.out_dir))
        return sinks

    def _start_outputs(self) -> None:
        self.outbox = Outbox(self.out_dir / OUTBOX_FILE, self.config.output.outbox_max_messages)
        sinks = self._make_sinks()  # a missing credential variable fails here, before any camera starts
        names = {sink.name for sink in sinks}
        self.sinks_for = {kind: [sink.name for sink in sinks if kind in sink.kinds] for kind in ("events", "detections")}
        backlog = self.outbox.backlog()
        for name, count in backlog.items():
            if name in names:
                logger.info("output %s: %d messages from before the restart are delivered first", name, count)
            else:
                logger.warning("output %s is no longer configured; its %d undelivered messages stay in %s", name,
                               count, self.outbox.path)
        self.deliverers = [Deliverer(self.outbox, sink, self.config.output.retry) for sink in sinks]
        for deliverer in self.deliverers:
            deliverer.start()
        if self.config.snapshots.enabled:
            self.snapshots = SnapshotStore(self.config.snapshots, self.out_dir / "snapshots")

    def _stop_outputs(self) -> None:
        for deliverer in self.deliverers:
            local = isinstance(deliverer.sink, JsonlSink)  # files are always completed; networks get the grace
            deliverer.finish(None if local else self.config.output.shutdown_grace_s)
        for deliverer in self.deliverers:
            deliverer.join(JSONL_FINISH_TIMEOUT_S)
        if self.outbox is not None:
            left = {k: v for k, v in self.outbox.backlog().items() if v}
            if left:
                logger.warning("outputs: undelivered messages kept in the outbox for the next start: %s", left)
            self.backlog_at_exit = left
            self.outbox.close()

    def _start_http(self) -> None:
        http = self.config.http
        try:
            self.server = StatusServer(self, http.host, http.port, self.http_token, http.idle_timeout_s)
        except OSError as exc:
            # The cameras matter more than the status page: run on, loudly.
            logger.error("http: cannot listen on %s:%d (%s): /metrics, /healthz and the status page are off",
                         http.host, http.port, exc.strerror or exc)
            return
        if not http.loopback and self.http_token is None:
            logger.warning("http: serving %s without a token (allow_unauthenticated): camera pictures, events and "
                           "status are open to anyone who reaches port %d", http.host, self.server.port)
        self.server.start()

    def run(self, stop: threading.Event) -> RunSummary:
        self._lock_output_directory()
        try:
            return self._run(stop)
        finally:
            self._release_output_directory()

    def _lock_output_directory(self) -> None:
        """One daemon per output directory: two would interleave status.json, the outbox and the files."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.out_dir / LOCK_FILE, "a+", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"output.directory: {self.out_dir}: cannot write: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(f"output.directory: {self.out_dir} is in use by another inspector daemon (pid "
                              f"{holder}); give each daemon its own output directory") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_handle = handle

    def _release_output_directory(self) -> None:
        handle, self._lock_handle = getattr(self, "_lock_handle", None), None
        if handle is not None:
            handle.close()  # the lock goes with the descriptor (and with the process, if it dies)

    def _run(self, stop: threading.Event) -> RunSummary:
        try:
            (self.out_dir / "pipeline.json").write_text(graph_json(self.graph), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"output.directory: {self.out_dir}: cannot write: {exc.strerror or exc}") from exc
        started = time.monotonic()
        self.status_path = self.out_dir / STATUS_FILE
        self.backlog_at_exit: dict[str, int] = {}
        self._start_outputs()
        try:
            if self.config.http.enabled:
                self._start_http()
            self._heartbeat("starting")
            self.device.create_streams(self.graph, device_settings(self.config))
            notify("READY=1")
            self.state = "running"
            try:
                self._loop(stop)
            finally:
                notify("STOPPING=1")
                self.state = "stopping"
                self.device.destroy()
        finally:
            self._stop_outputs()
            self.state = "stopped"
            if self.server is not None:
                self.server.stop()
            self._heartbeat("stopped")
        return RunSummary(self._summaries(), self.lines_written, self.events_written, time.monotonic() - started,
                          str(self.out_dir / DETECTIONS_FILE), self.backlog_at_exit)

    def _loop(self, stop: threading.Event) -> None:
        next_summary = time.monotonic() + self.config.summary_interval_s
        last = {s.camera_id: (0, 0) for s in self.device.camera_stats()}
        last_time = time.monotonic()
        next_heartbeat = 0.0
        draining_since = None
        rate_base = (time.monotonic(), {s.camera_id: s.processed for s in self.device.camera_stats()})
        while True:
            now = time.monotonic()
            if now >= next_heartbeat:
                rate_base = self._update_rates(rate_base)
                self._heartbeat("stopping" if draining_since is not None else "running")
                notify("WATCHDOG=1")
                if self.snapshots is not None:
                    self.snapshots.enforce_retention()
                next_heartbeat = now + HEARTBEAT_S
            if stop.is_set() and draining_since is None:
                logger.info("stopping: sources stopped, draining frames in flight")
                self.state = "stopping"
                self.device.stop_sources()
                draining_since = time.monotonic()
            result = self.device.get_result(0.2)
            if result is not None:
                self._write(result)
            elif self.device.finished():
                break
            if draining_since is not None and time.monotonic() - draining_since > DRAIN_TIMEOUT_S:
                logger.error("drain did not finish in %.0f s; stopping anyway", DRAIN_TIMEOUT_S)
                break
            now = time.monotonic()
            if now >= next_summary:
                last = self._log_summary(last, now - last_time)
                last_time, next_summary = now, now + self.config.summary_interval_s

    def _update_rates(self, base: tuple[float, dict]) -> tuple[float, dict]:
        """Processed fps per camera over the last few seconds (status page, health)."""
        then, counts = base
        now = time.monotonic()
        current = {s.camera_id: s.processed for s in self.device.camera_stats()}
        if now - then < 3.0:
            return base
        for camera, processed in current.items():
            self.rates[camera] = (processed - counts.get(camera, 0)) / (now - then)
        return now, current

    def _heartbeat(self, state: str) -> None:
        """status.json, replaced atomically: what an installer's health check and a supervisor read."""
        status = {"state": state, "time": time.time(), "pid": os.getpid(),
                  "http": {"host": self.server.host, "port": self.server.port} if self.server else None,
                  "cameras": [{"id": s.camera_id, "state": s.state, "processed": s.processed, "dropped": s.dropped}
                              for s in self.device.camera_stats()]}
        temporary = self.status_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(status), encoding="utf-8")
        os.replace(temporary, self.status_path)

    # --- per frame ----------------------------------------------------------------------------------------------
    def _write(self, result) -> None:
        detections = postprocess(result, self.spec, self.config.thresholds, self.thresholds)
        info = result.info
        camera = info.camera_id
        now = time.monotonic()
        self.detection_counts[camera] += len(detections)
        self.last_result[camera] = now
        latency_s = now - info.monotonic_time
        line = {
            "camera": camera,
            "frame": info.frame_id,
            "pts": info.pts_s,
            "time": datetime.datetime.fromtimestamp(info.wall_time, datetime.timezone.utc).isoformat(
                timespec="milliseconds"),
            "latency_ms": round(latency_s * 1000.0, 1),
            "width": info.width,
            "height": info.height,
            "detections": detections.to_json(self.spec.class_names),
        }
        self._enqueue("detections", camera, json.dumps(line, separators=(",", ":")), info.wall_time)
        self.lines_written += 1
        self._observe(result, latency_s)
        labels = tuple(self.spec.class_names[int(c)] for c in detections.class_ids)
        frame = None
        if result.nv12 is not None:
            frame = Frame(camera, info.frame_id, info.wall_time, result.nv12, info.width, info.height,
                          detections.boxes_xyxy_camera, labels, detections.scores)
            self.latest[camera] = frame
        observations = [(zone, labels[i], detections.boxes_xyxy_camera[i], float(detections.scores[i]))
                        for i, zone in assign_zones(detections, info.width, info.height, self.zones[camera],
                                                    self.spec.class_names)]
        for event, best_frame in self.trackers[camera].observe_frames(info.wall_time, info.frame_id, observations,
                                                                       frame):
            self._emit_event(event, best_frame)

    def _enqueue(self, kind: str, camera: str, payload: str, created: float) -> None:
        try:
            self.outbox.enqueue(kind, camera, payload, self.sinks_for[kind], created)
        except sqlite3.Error as exc:  # a full or failing disk: keep the cameras running, count and say it
            self.outbox.dropped[kind] += 1
            self.outbox_errors += 1
            if self.outbox_errors in (1, 10, 100) or self.outbox_errors % 1000 == 0:
                logger.error("outbox %s: cannot store a %s message (%s); %d lost so far", self.outbox.path, kind,
                             exc, self.outbox_errors)

    def _observe(self, result, latency_s: float) -> None:
        camera = result.info.camera_id
        if result.info.decode_ms is not None:
            self.metrics.decode.labels(camera).observe(result.info.decode_ms / 1000.0)
        if result.infer_ms is not None:
            self.metrics.inference.labels(camera).observe(result.infer_ms / 1000.0)
        self.metrics.latency.labels(camera).observe(latency_s)
        self.metrics.batch_fill.observe(result.batch_size / self.config.batching.max_batch)

    def _emit_event(self, event: dict, best_frame: Frame | None) -> None:
        event_id = event["event_id"]
        snapshot = None
        if self.snapshots is not None and best_frame is not None:
            path = self.snapshots.path_for(best_frame.camera_id, event_id)
            if self._snapshot_frames.get(event_id) == best_frame.frame_id and path.exists():
                snapshot = str(path.relative_to(self.snapshots.directory))
            else:  # the first, or a better frame than the one on disk
                try:
                    snapshot = self.snapshots.write_event(event, best_frame)
                except (OSError, ValueError) as exc:
                    logger.error("snapshot of event %s not written: %s", event_id, exc)
                if snapshot is not None:
                    self._snapshot_frames[event_id] = best_frame.frame_id
        if event["type"] == "end":
            self._snapshot_frames.pop(event_id, None)
        event["snapshot"] = snapshot
        self._enqueue("events", event["camera"], json.dumps(event, separators=(",", ":")), time.time())
        for deliverer in self.deliverers:
            deliverer.wake.set()
        self.events_written += 1
        self.metrics.events.labels(event["camera"], event["type"]).inc()
        with self._lock:
            self.recent_events.appendleft(event)
        logger.info("camera %s: event %s %s %s in %s (score %.2f)", event["camera"], event["type"], event_id[:8],
                    event["class"], event["zone"], event["score"])

    # --- what the HTTP side reads -------------------------------------------------------------------------------
    def camera_health(self) -> dict[str, bool]:
        return {camera: reason is None for camera, reason in self._degradation().items()}

    def _degradation(self) -> dict[str, str | None]:
        """Per camera: None when healthy, else why it is degraded."""
        now = time.monotonic()
        reasons = {}
        for stats in self.device.camera_stats():
            camera = self.cameras[stats.camera_id]
            last = self.last_result.get(stats.camera_id)
            silent = now - (last if last is not None else self.started)
            if stats.state in ("reconnecting", "failed"):
                reasons[stats.camera_id] = stats.state
            elif stats.state != "finished" and self.state == "running" and silent > camera.no_frame_timeout_s:
                reasons[stats.camera_id] = f"no frame for {silent:.0f} s"
            else:
                reasons[stats.camera_id] = None
        return reasons

    def output_status(self) -> list[dict]:
        backlog = self.outbox.backlog() if self.outbox is not None else {}
        return [{"sink": d.sink.name, "backlog": backlog.get(d.sink.name, 0), "delivered": d.delivered,
                 "failures": d.failures, "healthy": d.healthy, "last_error": d.last_error} for d in self.deliverers]

    def health(self) -> tuple[int, dict]:
        reasons = self._degradation()
        body = {"state": self.state,
                "cameras": [{"id": c, "healthy": r is None, "reason": r} for c, r in reasons.items()],
                "outputs": [{"sink": o["sink"], "healthy": o["healthy"], "backlog": o["backlog"]}
                            for o in self.output_status()],
                "outbox_write_errors": self.outbox_errors}
        return (200 if self.state == "running" else 503), body

    def status(self) -> dict:
        reasons = self._degradation()
        now = time.monotonic()
        cameras = []
        for stats in self.device.camera_stats():
            frame = self.latest.get(stats.camera_id)
            last = self.last_result.get(stats.camera_id)
            cameras.append({"id": stats.camera_id, "state": stats.state, "degraded": reasons[stats.camera_id] is not None,
                            "reason": reasons[stats.camera_id], "fps": round(self.rates.get(stats.camera_id, 0.0), 2),
                            "frames_in": stats.frames_in, "processed": stats.processed, "dropped": stats.dropped,
                            "reconnects": stats.reconnects, "detections": self.detection_counts[stats.camera_id],
                            "last_frame": frame.frame_id if frame else None,
                            "last_frame_age_s": round(now - last, 2) if last is not None else None})
        with self._lock:
            events = list(self.recent_events)
        return {"state": self.state, "uptime_s": round(now - self.started, 1), "cameras": cameras,
                "events": events, "outputs": self.output_status()}

    def snapshot_jpeg(self, camera_id: str) -> bytes | None:
        frame = self.latest.get(camera_id)
        if frame is None:
            return None
        cached = self._jpeg_cache.get(camera_id)
        if cached is not None and cached[0] == frame.frame_id:
            return cached[1]
        data = encode_jpeg(annotate(frame), self.config.snapshots.jpeg_quality)
        self._jpeg_cache[camera_id] = (frame.frame_id, data)
        return data

    def event_snapshot(self, event_id: str) -> bytes | None:
        path = self.snapshots.find(event_id) if self.snapshots is not None else None
        return path.read_bytes() if path is not None else None

    def metrics_text(self) -> tuple[bytes, str]:
        return self.metrics.render()

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
