"""What the daemon shows of itself: per-camera degradation, /healthz, /api/status, snapshots, /metrics and the
events to review (the HTTP side's StatusSource, pipeline/web/server.py), and the status.json heartbeat an
installer's health check and a supervisor read."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import time
from typing import Dict, Optional, Tuple

from core.logcount import worth_saying
from pipeline.config import DaemonConfig
from pipeline.frames import FrameHandler
from pipeline.outputs.review import EventFilter, ReviewIndex, ReviewOff
from pipeline.outputs.snapshots import annotate, encode_jpeg
from pipeline.outputs.stage import OutputStage
from pipeline.web.metrics import Metrics

logger = logging.getLogger(__name__)

STATUS_FILE = "status.json"
RATE_WINDOW_S = 3.0  # processed fps per camera over at least this long


class StatusView:
    def __init__(self, config: DaemonConfig, device, frames: FrameHandler, outputs: OutputStage, metrics: Metrics):
        self.config, self.device, self.frames, self.outputs, self.metrics = config, device, frames, outputs, metrics
        self.cameras = {c.id: c for c in config.cameras}
        self.state = "starting"
        self.started = time.monotonic()
        self.rates = {c.id: 0.0 for c in config.cameras}
        self._rate_base: Optional[Tuple[float, dict]] = None
        self._jpeg_cache: Dict[str, Tuple[int, bytes]] = {}
        self.server = None  # the StatusServer, once listening (its address goes into status.json)
        self.status_failures = 0
        self.status_error: Optional[str] = None  # why status.json is not being written, while it lasts

    # --- status.json and rates ----------------------------------------------------------------------------------
    def update_rates(self) -> None:
        """Processed fps per camera over the last few seconds (status page, health)."""
        now = time.monotonic()
        current = {s.camera_id: s.processed for s in self.device.camera_stats()}
        if self._rate_base is None:
            self._rate_base = (now, current)
            return
        then, counts = self._rate_base
        if now - then < RATE_WINDOW_S:
            return
        for camera, processed in current.items():
            self.rates[camera] = (processed - counts.get(camera, 0)) / (now - then)
        self._rate_base = (now, current)

    def heartbeat(self, path: pathlib.Path, state: str) -> None:
        """status.json, replaced atomically. A write the disk refuses (full, the directory removed) is counted
        and said, never raised: the cameras go on, and the next heartbeat tries again (recreating the directory)."""
        status = {"state": state, "time": time.time(), "pid": os.getpid(),
                  "http": {"host": self.server.host, "port": self.server.port} if self.server else None,
                  "cameras": [{"id": s.camera_id, "state": s.state, "processed": s.processed,
                               "dropped": s.value("dropped")} for s in self.device.camera_stats()]}
        temporary = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(status), encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            self.status_failures += 1
            self.status_error = f"{path}: cannot write: {exc.strerror or exc}"
            if worth_saying(self.status_failures):
                logger.error("%s (%d failures so far; the cameras go on)", self.status_error, self.status_failures)
            try:
                temporary.unlink(missing_ok=True)  # a partial file must not hold the disk's last bytes
            except OSError:
                pass
            return
        if self.status_error is not None:
            logger.warning("%s: written again after %d failures", path, self.status_failures)
            self.status_error = None

    # --- health -------------------------------------------------------------------------------------------------
    def degradation(self) -> Dict[str, Optional[str]]:
        """Per camera: None when healthy, else why it is degraded."""
        now = time.monotonic()
        reasons = {}
        for stats in self.device.camera_stats():
            camera = self.cameras[stats.camera_id]
            last = self.frames.last_result.get(stats.camera_id)
            silent = now - (last if last is not None else self.started)
            if stats.state in ("reconnecting", "failed"):
                reasons[stats.camera_id] = stats.state
            elif stats.state != "finished" and self.state == "running" and silent > camera.no_frame_timeout_s:
                reasons[stats.camera_id] = f"no frame for {silent:.0f} s"
            else:
                reasons[stats.camera_id] = None
        return reasons

    def camera_health(self) -> Dict[str, bool]:
        return {camera: reason is None for camera, reason in self.degradation().items()}

    # --- StatusSource (pipeline/web/server.py) ------------------------------------------------------------------
    def health(self) -> Tuple[int, dict]:
        reasons = self.degradation()
        outputs = self.outputs.status()  # one backlog query for the outputs and the problems
        body = {"state": self.state,
                "cameras": [{"id": c, "healthy": r is None, "reason": r} for c, r in reasons.items()],
                "outputs": [{"sink": o["sink"], "healthy": o["healthy"], "backlog": o["backlog"]} for o in outputs],
                "outbox_write_errors": self.outputs.outbox_errors, "device_lost_frames": self.device.lost_frames(),
                "problems": self.problems(outputs)}
        return (200 if self.state == "running" else 503), body

    def problems(self, outputs: Optional[list] = None) -> list:
        """What is degraded beyond the cameras, each with its reason (the daemon runs on). `outputs`: the
        outputs' status when the caller has it already."""
        found = [self.status_error, self.outputs.problem]
        found += [f"output {o['sink']}: {o['last_error']}" for o in (outputs if outputs is not None else
                                                                      self.outputs.status()) if not o["healthy"]]
        return [problem for problem in found if problem]

    def status(self) -> dict:
        reasons = self.degradation()
        now = time.monotonic()
        cameras = []
        for stats in self.device.camera_stats():
            camera_id = stats.camera_id
            frame = self.frames.latest.get(camera_id)
            last = self.frames.last_result.get(camera_id)
            cameras.append({"id": camera_id, "state": stats.state, "degraded": reasons[camera_id] is not None,
                            "reason": reasons[camera_id], "last_error": stats.last_error,
                            "fps": round(self.rates.get(camera_id, 0.0), 2),
                            "frames_in": stats.frames_in, "processed": stats.processed,
                            "dropped": stats.value("dropped"), "reconnects": stats.value("reconnects"),
                            "detections": self.frames.detection_counts[camera_id],
                            "last_frame": frame.frame_id if frame else None,
                            "last_frame_age_s": round(now - last, 2) if last is not None else None})
        outputs = self.outputs.status()
        return {"state": self.state, "uptime_s": round(now - self.started, 1), "cameras": cameras,
                "events": self.outputs.recent(), "outputs": outputs, "problems": self.problems(outputs)}

    def snapshot_jpeg(self, camera_id: str) -> Optional[bytes]:
        frame = self.frames.latest.get(camera_id)
        if frame is None:
            return None
        cached = self._jpeg_cache.get(camera_id)
        if cached is not None and cached[0] == frame.frame_id:
            return cached[1]
        data = encode_jpeg(annotate(frame), self.config.snapshots.jpeg_quality)
        self._jpeg_cache[camera_id] = (frame.frame_id, data)
        return data

    def event_snapshot(self, event_id: str) -> Optional[bytes]:
        return self.outputs.event_snapshot(event_id)

    def events(self, query: Dict[str, list]) -> dict:
        """/api/events: the review index's selection (pipeline/outputs/review.py); raises BadReview."""
        return self._review().query(EventFilter.from_query(query))

    def event(self, event_id: str) -> dict:
        return self._review().get(event_id)

    def decide(self, event_id: str, decision: object) -> dict:
        self._review()
        return self.outputs.decide(event_id, decision)

    def _review(self) -> ReviewIndex:
        if self.outputs.review is None:
            raise ReviewOff("the events view is off: review.enabled is false in the daemon's config")
        return self.outputs.review

    def metrics_text(self) -> Tuple[bytes, str]:
        return self.metrics.render()
