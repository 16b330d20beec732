"""The durable outbox: every output message is committed to SQLite (WAL) before any sink sees it.

A message is stored once with a pending row per sink that wants it; a sink fetches its oldest pending messages,
delivers them and acknowledges, which deletes its pending rows (and the message once no sink still needs it).
A crash or SIGKILL between delivery and acknowledgement re-delivers on the next start: delivery is at least
once, and every message carries an `id` receivers de-duplicate on.

Durability: WAL with synchronous=NORMAL survives a killed process (a committed row is in the OS's cache);
events are committed with synchronous=FULL so they also survive a power cut. Per-frame detections may lose the
last moments before a power cut, never on a process crash.

The outbox is bounded (`max_messages`): beyond it the oldest detections are dropped first, events only when
nothing else is left, each drop counted and logged, so a broker that is away for weeks cannot fill the disk.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import sqlite3
import threading

from core.errors import UserError
from pipeline.outputs.sqlite import open_wal

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    camera TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    sink TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (sink, message_id)
) WITHOUT ROWID;
"""
CAP_CHECK_EVERY = 1000  # enqueues between two size checks


class OutboxError(UserError):
    """The outbox file cannot be opened or used; the message names it."""


@dataclasses.dataclass(frozen=True)
class Message:
    id: int
    kind: str  # "events" | "detections"
    camera: str
    payload: str  # one JSON object


class Outbox:
    """Thread-safe: one SQLite connection per thread, writers serialised by SQLite's lock (busy timeout)."""

    def __init__(self, path: str | pathlib.Path, max_messages: int = 1_000_000):
        self.path = str(path)
        self.max_messages = max_messages
        self.dropped = {"events": 0, "detections": 0}
        self._local = threading.local()
        self._since_check = 0
        # One connection for the status readers (HTTP and metrics threads come and go: a connection each would
        # be a descriptor each, never closed).
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        try:
            with self._connection() as db:
                db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            self.close()
            # Never replaced automatically: it may hold undelivered events.
            raise OutboxError(f"{self.path}: cannot open the outbox ({exc}); if the file is damaged, move it aside "
                              f"(its undelivered messages stay in it) and start again") from exc

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = open_wal(self.path, isolation_level=None)
            self._local.db = db
        return db

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def close_reader(self) -> None:
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def enqueue(self, kind: str, camera: str, payload: str, sinks: list[str], created: float) -> int | None:
        """Store one message for `sinks`; returns its id (None when no sink wants it). An event is committed
        with synchronous=FULL: it survives a power cut, not only a crash."""
        if not sinks:
            return None
        return self._insert([(kind, camera, payload, created)], sinks, durable=kind == "events")[0]

    def enqueue_many(self, items, sinks: list[str]) -> int:
        """Store several messages of one kind ((kind, camera, payload, created) each) for `sinks` in ONE
        transaction: the commit, not the inserts, is what costs per message (the daemon commits a batch's
        detection lines together). Not for events, which are committed one by one with synchronous=FULL."""
        if not sinks or not items:
            return 0
        return len(self._insert(items, sinks, durable=False))

    def _insert(self, items, sinks: list[str], durable: bool) -> list[int]:
        """One transaction: every item's message and its pending row per sink, or nothing."""
        db = self._connection()

        def insert(db: sqlite3.Connection) -> list[int]:
            ids = [db.execute("INSERT INTO messages (kind, camera, payload, created) VALUES (?, ?, ?, ?)",
                              item).lastrowid for item in items]
            db.executemany("INSERT INTO pending (sink, message_id) VALUES (?, ?)",
                           [(sink, message_id) for message_id in ids for sink in sinks])
            return ids

        if durable:
            db.execute("PRAGMA synchronous=FULL")
        try:
            ids = self._transaction(insert)
        finally:
            if durable:
                db.execute("PRAGMA synchronous=NORMAL")
        self._since_check += len(ids)
        if self._since_check >= CAP_CHECK_EVERY:
            self._since_check = 0
            try:
                self.enforce_cap()
            except sqlite3.Error as exc:  # the messages above are stored; the size is checked again later
                logger.warning("outbox %s: size check failed (%s); checked again after %d messages", self.path, exc,
                               CAP_CHECK_EVERY)
        return ids

    def fetch(self, sink: str, limit: int = 100) -> list[Message]:
        """The sink's oldest pending messages, oldest first."""
        rows = self._connection().execute(
            "SELECT m.id, m.kind, m.camera, m.payload FROM pending p JOIN messages m ON m.id = p.message_id "
            "WHERE p.sink = ? ORDER BY p.message_id LIMIT ?", (sink, limit)).fetchall()
        return [Message(*row) for row in rows]

    def ack(self, sink: str, ids: list[int]) -> None:
        """Delivered: forget the sink's pending rows and every message no sink still waits for."""
        if not ids:
            return
        def forget(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM pending WHERE sink = ? AND message_id = ?", [(sink, i) for i in ids])
            db.executemany("DELETE FROM messages WHERE id = ? AND NOT EXISTS "
                           "(SELECT 1 FROM pending WHERE message_id = ?)", [(i, i) for i in ids])

        self._transaction(forget)

    def _transaction(self, work):
        """`work(db)` in one write transaction, committed, or rolled back and raised. SQLite rolls a transaction
        back by itself on some failures (a full disk at COMMIT): rolling back again would raise "no transaction
        is active" and hide the real error."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error as exc:  # the original error is the one worth raising
                    logger.debug("outbox %s: rollback failed: %s", self.path, exc)
            raise
        return result

    def backlog(self) -> dict[str, int]:
        """Pending messages per sink (including sinks no longer configured), from any thread."""
        with self._reader_lock:
            if self._reader is None:
                self._reader = open_wal(self.path, isolation_level=None, check_same_thread=False)
            rows = self._reader.execute("SELECT sink, COUNT(*) FROM pending GROUP BY sink").fetchall()
        return dict(rows)

    @staticmethod
    def _delete(db: sqlite3.Connection, ids: list[int]) -> None:
        rows = [(i,) for i in ids]
        db.executemany("DELETE FROM pending WHERE message_id = ?", rows)
        db.executemany("DELETE FROM messages WHERE id = ?", rows)

    def enforce_cap(self) -> None:
        db = self._connection()
        total = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        excess = total - self.max_messages
        for kind in ("detections", "events"):
            if excess <= 0:
                break
            ids = [r[0] for r in db.execute("SELECT id FROM messages WHERE kind = ? ORDER BY id LIMIT ?",
                                            (kind, excess)).fetchall()]
            if not ids:
                continue
            self._transaction(lambda db: self._delete(db, ids))
            self.dropped[kind] += len(ids)
            excess -= len(ids)
            log = logger.error if kind == "events" else logger.warning
            log("outbox full (%d messages): the %d oldest undelivered %s dropped (%d so far)", self.max_messages,
                len(ids), kind, self.dropped[kind])
