"""The stream daemon: config -> graph -> device -> host-side post-processing -> outputs, events, health.

The daemon owns the lifecycle and the main loop; its parts are named: the per-frame work (pipeline/frames.py:
detections, the detection line, zones, alarm rules), the output stage (pipeline/outputs/stage.py: the durable
outbox, one delivery thread per output, event snapshots), and what it shows of itself (pipeline/status.py:
health, status, status.json, served by pipeline/web/ as /metrics, /healthz, snapshots and the status page).

Stopping (Ctrl-C, SIGTERM, or every file source at its end) stops the sources first, then drains what is in
flight, so every frame that was decoded and queued is still written; the JSON lines files are complete when
the daemon exits, and network outputs get `output.shutdown_grace_s` before the rest waits in the outbox.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import pathlib
import threading
import time
from typing import Dict, List, Optional

from pipeline.config import ConfigError, DaemonConfig
from pipeline.devices.base import BaseDevice, create_device
from pipeline.frames import FrameHandler
from pipeline.graph import graph_json
from pipeline.outputs.sinks import env_secret
from pipeline.outputs.stage import OutputStage
from pipeline.runplan import plan_run
from pipeline.stage2 import Cascade
from pipeline.status import STATUS_FILE, StatusView
from pipeline.systemd import notify
from pipeline.web.metrics import Metrics, StatsCollector
from pipeline.web.server import StatusServer

logger = logging.getLogger(__name__)

DETECTIONS_FILE = "detections.jsonl"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = ".inspector.lock"
DRAIN_TIMEOUT_S = 60.0
RESULTS_PER_COMMIT = 32  # results handled before their detection lines are committed together
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
    cameras: List[CameraSummary]
    lines_written: int
    events_written: int
    seconds: float
    output: str
    outbox_backlog: Dict[str, int] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Daemon:
    def __init__(self, config: DaemonConfig, *, graph: Optional[dict] = None, device: Optional[BaseDevice] = None,
                 source: str = "config"):
        # Every check once, every problem at once; without a graph of the user's, the cameras are asked for their
        # codecs (`auto`, and a stated codec checked) and the graph is rendered.
        self.plan, config = plan_run(config, source, graph)
        self.config, self.spec, self.spec2, self.graph = config, self.plan.spec, self.plan.spec2, self.plan.graph
        _warn_unfillable_batches(config)
        self.http_token = env_secret(config.http.token_env, "http.token_env") if config.http.enabled else None
        self.device = device or create_device(config.device)
        self.out_dir = pathlib.Path(config.output.directory)
        self.outputs = OutputStage(config, self.out_dir, self.device.request_picture)
        self.metrics = Metrics(StatsCollector(self.device.camera_stats, lambda: self.view.camera_health(),
                                              self.outputs.status, self.outputs.dropped, self.device.lost_frames,
                                              self.outputs.keeping))
        cascade = Cascade.create(config, self.spec, self.spec2) if self.spec2 is not None else None
        self.frames = FrameHandler(config, self.spec, self.outputs, self.metrics, cascade=cascade)
        self.view = StatusView(config, self.device, self.frames, self.outputs, self.metrics)
        self.server: Optional[StatusServer] = None
        self._lock_handle = None
        self.reloading = False  # set by SIGHUP: the process starts again when this run has drained

    # What tests, benchmarks and the status side read, by their old names.
    @property
    def state(self) -> str:
        return self.view.state

    @property
    def latest(self):
        return self.frames.latest

    @property
    def last_result(self):
        return self.frames.last_result

    @property
    def events_written(self) -> int:
        return self.outputs.events_written

    @property
    def outbox_errors(self) -> int:
        return self.outputs.outbox_errors

    # --- lifecycle ----------------------------------------------------------------------------------------------
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
        handle, self._lock_handle = self._lock_handle, None
        if handle is not None:
            handle.close()  # the lock goes with the descriptor (and with the process, if it dies)

    def _run(self, stop: threading.Event) -> RunSummary:
        try:
            (self.out_dir / "pipeline.json").write_text(graph_json(self.graph), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"output.directory: {self.out_dir}: cannot write: {exc.strerror or exc}") from exc
        started = time.monotonic()
        self.status_path = self.out_dir / STATUS_FILE
        self.outputs.start()
        try:
            if self.config.http.enabled:
                self._start_http()
            self.view.heartbeat(self.status_path, "starting")
            self.device.create_streams(self.plan)
            notify("READY=1")
            self.view.state = "running"
            try:
                self._loop(stop)
            finally:
                notify("RELOADING=1" if self.reloading else "STOPPING=1")
                self.view.state = "stopping"
                self.device.destroy()
        finally:
            self.outputs.stop()
            self.view.state = "stopped"
            if self.server is not None:
                self.server.stop()
            self.view.heartbeat(self.status_path, "stopped")
        return RunSummary(self._summaries(), self.frames.lines_written, self.outputs.events_written,
                          time.monotonic() - started, str(self.out_dir / DETECTIONS_FILE), self.outputs.backlog_at_exit)

    def _start_http(self) -> None:
        http = self.config.http
        try:
            self.server = StatusServer(self.view, http.host, http.port, self.http_token, http.idle_timeout_s,
                                       http.max_connections)
        except OSError as exc:
            # The cameras matter more than the status page: run on, loudly.
            logger.error("http: cannot listen on %s:%d (%s): /metrics, /healthz and the status page are off",
                         http.host, http.port, exc.strerror or exc)
            return
        if not http.loopback and self.http_token is None:
            logger.warning("http: serving %s without a token (allow_unauthenticated): camera pictures, events and "
                           "status are open to anyone who reaches port %d", http.host, self.server.port)
        self.view.server = self.server
        self.server.start()

    def _loop(self, stop: threading.Event) -> None:
        next_summary = time.monotonic() + self.config.summary_interval_s
        last = {s.camera_id: (0, 0) for s in self.device.camera_stats()}
        last_time = time.monotonic()
        next_heartbeat = 0.0
        draining_since = None
        while True:
            now = time.monotonic()
            if now >= next_heartbeat:
                self.view.update_rates()
                self.view.heartbeat(self.status_path, "stopping" if draining_since is not None else "running")
                notify("WATCHDOG=1")
                if self.outputs.snapshots is not None:
                    self.outputs.snapshots.enforce_retention()
                if self.outputs.samples is not None:
                    self.outputs.samples.enforce_retention()
                next_heartbeat = now + HEARTBEAT_S
            self.outputs.announce_reviews()  # a person's decisions, from the HTTP side (nothing to do mostly)
            if stop.is_set() and draining_since is None:
                logger.info("stopping: sources stopped, draining frames in flight")
                self.view.state = "stopping"
                self.device.stop_sources()
                draining_since = time.monotonic()
            result = self.device.get_result(0.2)
            if result is not None:
                # Everything the device has ready, then one outbox transaction for their detection lines.
                handled = 0
                while result is not None:
                    self.frames.handle(result)
                    handled += 1
                    result = self.device.get_result(0) if handled < RESULTS_PER_COMMIT else None
                self.outputs.flush()
            elif self.device.finished():
                break
            if draining_since is not None and time.monotonic() - draining_since > DRAIN_TIMEOUT_S:
                logger.error("drain did not finish in %.0f s; stopping anyway", DRAIN_TIMEOUT_S)
                break
            now = time.monotonic()
            if now >= next_summary:
                last = self._log_summary(last, now - last_time)
                last_time, next_summary = now, now + self.config.summary_interval_s

    # --- summaries ----------------------------------------------------------------------------------------------
    def _log_summary(self, last: dict, seconds: float) -> dict:
        current = {}
        for stats in self.device.camera_stats():
            previous_processed, previous_detections = last.get(stats.camera_id, (0, 0))
            detections = self.frames.detection_counts.get(stats.camera_id, 0)
            fps = (stats.processed - previous_processed) / max(seconds, 1e-6)
            logger.info("camera %s: %s, in %d, processed %d, dropped %s, %.1f fps, detections %d (+%d)%s",
                        stats.camera_id, stats.state, stats.frames_in, stats.processed,
                        "?" if stats.value("dropped") is None else stats.dropped, fps,
                        detections, detections - previous_detections,
                        f", last error: {stats.last_error}" if stats.state in ("reconnecting", "failed") else "")
            current[stats.camera_id] = (stats.processed, detections)
        return current

    def _summaries(self) -> List[CameraSummary]:
        return [CameraSummary(s.camera_id, s.frames_in, s.processed, s.dropped, s.skipped, s.reconnects, s.errors,
                              self.frames.detection_counts.get(s.camera_id, 0), s.state)
                for s in self.device.camera_stats()]


def _warn_unfillable_batches(config: DaemonConfig) -> None:
    live = [c for c in config.cameras if c.effective_mode == "live"]
    if live and len(live) * config.effective_live_queue < config.batching.max_batch:
        logger.warning("batching.max_batch %d can never fill from %d live camera(s) holding %d frame(s) each: "
                       "every batch waits the full waiting_time_ms (%d ms); lower max_batch or raise live_queue",
                       config.batching.max_batch, len(live), config.effective_live_queue,
                       config.batching.waiting_time_ms)
