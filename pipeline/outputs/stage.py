"""The daemon's output stage: the durable outbox, one delivery thread per output, and event snapshots.

Every detection line and event is committed to the outbox before any output sees it (pipeline/outputs/
outbox.py); `start` opens it and starts a Deliverer per configured sink, `stop` completes the files and gives
network outputs their grace, leaving the rest in the outbox for the next start. A disk that cannot store a
message costs that message (counted, logged), never the cameras.
"""

from __future__ import annotations

import collections
import json
import logging
import pathlib
import sqlite3
import threading
import time
from typing import Dict, List, Optional

from pipeline.config import DaemonConfig
from pipeline.outputs.outbox import Outbox
from pipeline.outputs.sinks import Deliverer, JsonlSink, MqttSink, Sink, WebhookSink
from pipeline.outputs.snapshots import Frame, SnapshotStore

logger = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite"
RECENT_EVENTS = 50
JSONL_FINISH_TIMEOUT_S = 120.0


class OutputStage:
    def __init__(self, config: DaemonConfig, out_dir: pathlib.Path):
        self.config = config
        self.out_dir = out_dir
        self.outbox: Optional[Outbox] = None
        self.deliverers: List[Deliverer] = []
        self.snapshots: Optional[SnapshotStore] = None
        self.sinks_for: Dict[str, List[str]] = {"events": [], "detections": []}
        self.outbox_errors = 0  # messages a failing disk could not store
        self.events_written = 0
        self.backlog_at_exit: Dict[str, int] = {}
        self.recent_events: collections.deque = collections.deque(maxlen=RECENT_EVENTS)
        self._recent_lock = threading.Lock()
        self._snapshot_frames: Dict[str, int] = {}  # event id -> frame id of its snapshot on disk
        self._lines: List[tuple] = []  # detection lines of the current batch, committed together by flush()

    # --- lifecycle ----------------------------------------------------------------------------------------------
    def _make_sinks(self) -> List[Sink]:
        output = self.config.output
        sinks: List[Sink] = []
        if output.jsonl.enabled:
            sinks.append(JsonlSink(self.out_dir, output.jsonl.messages, output.jsonl.max_bytes, output.jsonl.backups))
        if output.mqtt is not None:
            sinks.append(MqttSink(output.mqtt))
        if output.webhook is not None:
            sinks.append(WebhookSink(output.webhook, self.out_dir))
        return sinks

    def start(self) -> None:
        self.outbox = Outbox(self.out_dir / OUTBOX_FILE, self.config.output.outbox_max_messages)
        sinks = self._make_sinks()  # a missing credential variable fails here, before any camera starts
        names = {sink.name for sink in sinks}
        self.sinks_for = {kind: [sink.name for sink in sinks if kind in sink.kinds] for kind in ("events", "detections")}
        for name, count in self.outbox.backlog().items():
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

    def stop(self) -> None:
        if self.outbox is not None:
            self.flush()
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

    # --- messages -----------------------------------------------------------------------------------------------
    def enqueue(self, kind: str, camera: str, payload: str, created: float) -> None:
        """Detection lines wait for `flush` (one transaction per batch of results); an event is committed at
        once, after the lines before it, so nothing a sink sees is out of order."""
        if kind == "detections":
            self._lines.append((kind, camera, payload, created))
            return
        self.flush()
        try:
            self.outbox.enqueue(kind, camera, payload, self.sinks_for[kind], created)
        except sqlite3.Error as exc:  # a full or failing disk: keep the cameras running, count and say it
            self._lost(kind, 1, exc)

    def flush(self) -> None:
        """Commit the detection lines enqueued since the last flush (the daemon flushes after every batch of
        results it takes from the device, and before stopping)."""
        lines, self._lines = self._lines, []
        if not lines:
            return
        try:
            self.outbox.enqueue_many(lines, self.sinks_for["detections"])
        except sqlite3.Error as exc:
            self._lost("detections", len(lines), exc)
        # No wake-up: the delivery threads poll every 0.2 s and take detection lines in large batches (one
        # fsync each); waking them per batch costs the main thread more than it saves.

    def _lost(self, kind: str, count: int, exc: Exception) -> None:
        """A full or failing disk: keep the cameras running, count and say it."""
        self.outbox.dropped[kind] += count
        before, self.outbox_errors = self.outbox_errors, self.outbox_errors + count
        if any(before < mark <= self.outbox_errors for mark in (1, 10, 100)) or \
                self.outbox_errors // 1000 != before // 1000:
            logger.error("outbox %s: cannot store a %s message (%s); %d lost so far", self.outbox.path, kind,
                         exc, self.outbox_errors)

    def emit_event(self, event: dict, best_frame: Optional[Frame]) -> None:
        """The event's snapshot (written when its best frame is new), then the event itself to the outbox."""
        event["snapshot"] = self._snapshot(event, best_frame)
        if event["type"] == "end":
            self._snapshot_frames.pop(event["event_id"], None)
        self.enqueue("events", event["camera"], json.dumps(event, separators=(",", ":")), time.time())
        for deliverer in self.deliverers:
            deliverer.wake.set()
        self.events_written += 1
        with self._recent_lock:
            self.recent_events.appendleft(event)
        logger.info("camera %s: event %s %s %s in %s (score %.2f)", event["camera"], event["type"],
                    event["event_id"][:8], event["class"], event["zone"], event["score"])

    def _snapshot(self, event: dict, best_frame: Optional[Frame]) -> Optional[str]:
        if self.snapshots is None or best_frame is None:
            return None
        event_id = event["event_id"]
        path = self.snapshots.path_for(best_frame.camera_id, event_id)
        if self._snapshot_frames.get(event_id) == best_frame.frame_id and path.exists():
            return str(path.relative_to(self.snapshots.directory))
        try:  # the first, or a better frame than the one on disk
            snapshot = self.snapshots.write_event(event, best_frame)
        except (OSError, ValueError) as exc:
            logger.error("snapshot of event %s not written: %s", event_id, exc)
            return None
        if snapshot is not None:
            self._snapshot_frames[event_id] = best_frame.frame_id
        return snapshot

    # --- what the HTTP side reads -------------------------------------------------------------------------------
    def recent(self) -> list:
        with self._recent_lock:
            return list(self.recent_events)

    def dropped(self) -> dict:
        return dict(self.outbox.dropped) if self.outbox else {}

    def status(self) -> List[dict]:
        backlog = self.outbox.backlog() if self.outbox is not None else {}
        return [{"sink": d.sink.name, "backlog": backlog.get(d.sink.name, 0), "delivered": d.delivered,
                 "failures": d.failures, "healthy": d.healthy, "last_error": d.last_error} for d in self.deliverers]

    def event_snapshot(self, event_id: str) -> Optional[bytes]:
        path = self.snapshots.find(event_id) if self.snapshots is not None else None
        return path.read_bytes() if path is not None else None
