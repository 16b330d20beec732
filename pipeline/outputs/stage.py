"""The daemon's output stage: the durable outbox, one delivery thread per output, and event snapshots.

Every detection line and event is committed to the outbox before any output sees it (pipeline/outputs/
outbox.py); `start` opens it and starts a Deliverer per configured sink, `stop` completes the files and gives
network outputs their grace, leaving the rest in the outbox for the next start.

A disk that cannot store a message (full, failing, the directory removed) never costs the cameras: the messages
are held in memory, in order, and stored when the disk takes them again (tried at most every STORE_RETRY_S);
beyond UNSTORED_MAX held messages the oldest detection lines are lost first, counted and logged, and what is
still held at stop is lost the same way. `problem` says what is wrong while it lasts (/healthz).
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import pathlib
import sqlite3
import threading
import time
from typing import Callable, Dict, List, Optional

from core.logcount import passed_a_mark, worth_saying
from pipeline.config import DaemonConfig
from pipeline.outputs.outbox import Outbox
from pipeline.outputs.review import ReviewIndex, review_message
from pipeline.outputs.samples import SampleKeeper, model_version
from pipeline.outputs.sinks import Deliverer, JsonlSink, MqttSink, Sink, WebhookSink
from pipeline.outputs.snapshots import Frame, SnapshotStore

logger = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite"
REVIEW_FILE = "events.sqlite"
ANNOUNCE_RUN = 100  # decisions announced in one pass of the main loop
RECENT_EVENTS = 50
JSONL_FINISH_TIMEOUT_S = 120.0
UNSTORED_MAX = 20_000  # messages held in memory while the outbox cannot store them
STORE_RETRY_S = 1.0  # while the disk refuses, how often storing is tried again
STORE_RUN = 5_000  # detection lines committed in one transaction when the held ones are stored


class OutputStage:
    def __init__(self, config: DaemonConfig, out_dir: pathlib.Path,
                 request_picture: Callable[[str], None] = lambda camera_id: None):
        self.config = config
        self.request_picture = request_picture  # the device's (BaseDevice.request_picture), for samples
        self.out_dir = out_dir
        self.outbox: Optional[Outbox] = None
        self.deliverers: List[Deliverer] = []
        self.snapshots: Optional[SnapshotStore] = None
        self.review: Optional[ReviewIndex] = None
        self.samples: Optional[SampleKeeper] = None
        self.review_due = threading.Event()  # set when a decision waits to be announced
        self.reviews_sent = {"confirmed": 0, "false_alarm": 0, "open": 0}  # decisions announced since start
        self.sinks_for: Dict[str, List[str]] = {"events": [], "detections": []}
        self.outbox_errors = 0  # messages lost: a failing disk could not store them in time
        self.store_failures = 0  # times the disk refused to store (the messages were held and tried again)
        self.review_failures = 0  # events the review index could not record, or passes it could not announce
        self.store_error: Optional[str] = None  # the disk's refusal while messages are held
        self._unstored: collections.deque = collections.deque()  # (kind, camera, payload, created), in order
        self._retry_at = 0.0
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
        if self.config.samples.enabled:
            models = {"stage1": model_version(self.config.model)}
            if self.config.stage2 is not None:
                models["stage2"] = model_version(self.config.stage2.model)
            self.samples = SampleKeeper(self.config.samples, self.out_dir / "samples", models,
                                        [camera.id for camera in self.config.cameras],
                                        request_picture=self.request_picture)
        if self.config.review.enabled:
            self.review = ReviewIndex(self.out_dir / REVIEW_FILE, self.config.review.max_events)
            self.review_due.set()  # decisions committed before a crash and never announced go out now

    def stop(self) -> None:
        if self.outbox is not None and self.review is not None:
            self.announce_reviews()
        if self.outbox is not None:
            self._retry_at = 0.0  # a last try
            self.flush()
            if self._unstored:
                held = list(self._unstored)
                self._unstored.clear()
                for kind in ("detections", "events"):
                    count = sum(1 for item in held if item[0] == kind)
                    if count:
                        self._lost(kind, count, f"still held at stop: {self.store_error}", always=True)
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
            self.outbox.close_reader()
        if self.review is not None:
            self.review.close()

    # --- messages -----------------------------------------------------------------------------------------------
    def enqueue(self, kind: str, camera: str, payload: str, created: float) -> None:
        """Detection lines wait for `flush` (one transaction per batch of results); an event is committed at
        once, after the lines before it, so nothing a sink sees is out of order."""
        if kind == "detections":
            self._lines.append((kind, camera, payload, created))
            return
        self.flush()
        self._store([(kind, camera, payload, created)])

    def flush(self) -> None:
        """Commit the detection lines enqueued since the last flush (the daemon flushes after every batch of
        results it takes from the device, and before stopping), and whatever the disk refused before."""
        lines, self._lines = self._lines, []
        self._store(lines)
        # No wake-up: the delivery threads poll every 0.2 s and take detection lines in large batches (one
        # fsync each); waking them per batch costs the main thread more than it saves.

    @property
    def problem(self) -> Optional[str]:
        """Why messages are held right now (/healthz), or None."""
        if self.store_error is None:
            return None
        return (f"outbox {self.outbox.path}: cannot store messages ({self.store_error}); {len(self._unstored)} "
                f"held in memory, stored when the disk takes them")

    def _store(self, items: list) -> None:
        """Store `items` after those still held, in order: detection lines a run per transaction, each event on
        its own (synchronous=FULL). What the disk refuses stays held for the next try."""
        self._unstored.extend(items)
        if len(self._unstored) > UNSTORED_MAX:
            self._drop_oldest(len(self._unstored) - UNSTORED_MAX)
        if not self._unstored or time.monotonic() < self._retry_at:
            return
        while self._unstored:
            kind = self._unstored[0][0]
            run = [self._unstored[0]] if kind == "events" else \
                list(itertools.islice(itertools.takewhile(lambda item: item[0] == kind, self._unstored), STORE_RUN))
            try:
                if kind == "events":
                    self.outbox.enqueue(*run[0][:3], self.sinks_for[kind], run[0][3])
                else:
                    self.outbox.enqueue_many(run, self.sinks_for[kind])
            except sqlite3.Error as exc:  # a full or failing disk: hold, count, say it, try again later
                self._refused(exc)
                return
            for _ in run:
                self._unstored.popleft()
        if self.store_error is not None:
            logger.warning("outbox %s: storing again; every held message is stored", self.outbox.path)
            self.store_error = None

    def _refused(self, exc: Exception) -> None:
        self.store_failures += 1
        self.store_error = str(exc)
        self._retry_at = time.monotonic() + STORE_RETRY_S
        if worth_saying(self.store_failures):
            logger.error("%s (%d refusals so far)", self.problem, self.store_failures)

    def _drop_oldest(self, count: int) -> None:
        """Beyond UNSTORED_MAX: the oldest detection lines go first, events only when no line is left."""
        held = list(self._unstored)
        lines = [i for i, item in enumerate(held) if item[0] == "detections"][:count]
        others = [i for i, item in enumerate(held) if item[0] != "detections"][:count - len(lines)]
        dropped = set(lines) | set(others)
        self._unstored = collections.deque(item for i, item in enumerate(held) if i not in dropped)
        for kind, dropped_of_kind in (("detections", lines), ("events", others)):
            if dropped_of_kind:
                self._lost(kind, len(dropped_of_kind), f"more than {UNSTORED_MAX} held: {self.store_error or '-'}")

    def _lost(self, kind: str, count: int, reason: str, always: bool = False) -> None:
        """Messages that will never be stored: counted and said (rate-limited while it goes on)."""
        self.outbox.dropped[kind] += count
        before, self.outbox_errors = self.outbox_errors, self.outbox_errors + count
        if always or passed_a_mark(before, self.outbox_errors):
            logger.error("outbox %s: %d %s messages lost (%s); %d lost so far", self.outbox.path, count, kind,
                         reason, self.outbox_errors)

    def emit_event(self, event: dict, best_frame: Optional[Frame]) -> None:
        """The event's snapshot (written when its best frame is new), then the event itself to the outbox."""
        event["snapshot"] = self._snapshot(event, best_frame)
        if event["type"] == "end":
            self._snapshot_frames.pop(event["event_id"], None)
        self.enqueue("events", event["camera"], json.dumps(event, separators=(",", ":")), time.time())
        if self.review is not None:
            self._record(event)
        if self.samples is not None and self.config.samples.events:
            self.samples.keep_event(event, best_frame)
        for deliverer in self.deliverers:
            deliverer.wake.set()
        self.events_written += 1
        with self._recent_lock:
            self.recent_events.appendleft(event)
        logger.info("camera %s: event %s %s %s in %s (score %.2f)", event["camera"], event["type"],
                    event["event_id"][:8], event["class"], event["zone"], event["score"])

    def _record(self, event: dict) -> None:
        """The event into the review index; a refusal (a full disk) is said and the event goes out regardless."""
        try:
            self.review.record(event)
        except sqlite3.Error as exc:
            self.review_failures += 1
            if worth_saying(self.review_failures):
                logger.error("review index %s: event %s not recorded (%s); %d so far", self.review.path,
                             event["event_id"][:8], exc, self.review_failures)

    def decide(self, event_id: str, decision: object) -> dict:
        """A person's decision (from the HTTP side's thread): stored, then announced by the main loop."""
        row = self.review.decide(event_id, decision)
        if row["announced"] < row["revision"]:
            self.review_due.set()
        return row

    def announce_reviews(self) -> int:
        """Decisions not yet sent, each as an `update` message through the outbox (main thread only, as every
        other message); returns how many."""
        if self.review is None or not self.review_due.is_set():
            return 0
        self.review_due.clear()
        sent = 0
        try:
            rows = self.review.unannounced(ANNOUNCE_RUN)
            if len(rows) == ANNOUNCE_RUN:
                self.review_due.set()  # more wait: the next pass takes them
            for row in rows:
                message = review_message(row)
                self.enqueue("events", row["camera"], json.dumps(message, separators=(",", ":")), time.time())
                self.review.mark_announced(row["event_id"], row["revision"])
                self.reviews_sent[row["state"]] += 1
                with self._recent_lock:
                    self.recent_events.appendleft(message)
                sent += 1
        except sqlite3.Error as exc:
            self.review_due.set()  # tried again at the next pass
            self.review_failures += 1
            if worth_saying(self.review_failures):
                logger.error("review index %s: decisions not announced yet (%s)", self.review.path, exc)
        if sent:
            for deliverer in self.deliverers:
                deliverer.wake.set()
        return sent

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

    def keeping(self) -> dict:
        """/metrics: the decisions sent and the samples kept, for what is enabled."""
        found: dict = {}
        if self.review is not None:
            found["reviews"] = dict(self.reviews_sent)
        if self.samples is not None:
            found["samples"] = {"kept": dict(self.samples.kept), "deleted": self.samples.deleted,
                                "skipped": self.samples.skipped}
        return found

    def dropped(self) -> dict:
        return dict(self.outbox.dropped) if self.outbox else {}

    def status(self) -> List[dict]:
        backlog = self.outbox.backlog() if self.outbox is not None else {}
        return [{"sink": d.sink.name, "backlog": backlog.get(d.sink.name, 0), "delivered": d.delivered,
                 "failures": d.failures, "healthy": d.healthy, "last_error": d.last_error} for d in self.deliverers]

    def event_snapshot(self, event_id: str) -> Optional[bytes]:
        path = self.snapshots.find(event_id) if self.snapshots is not None else None
        return path.read_bytes() if path is not None else None
