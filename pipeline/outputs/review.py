"""The review index: every event the daemon raised, what a person decided about it, and whether that decision
has gone out yet.

One SQLite file beside the outbox (`events.sqlite`, WAL). The outbox holds messages until the sinks take them;
this file holds one row per event for as long as `review.max_events` allows, so the events view can list, filter
and page them long after delivery. Each start/update/end message of an event updates its row (best score, box,
frame and snapshot; `ended` at its end). A decision (`confirmed`, `false_alarm`, or `open` again) is committed
with synchronous=FULL and counted in `revision`; `announced` is the revision that has gone to the outputs as an
`update` message. The daemon's main loop announces what is pending (also after a restart: a decision committed
just before a crash goes out on the next start), so the outbox is written by one thread only.

Thread-safe: one connection per thread (the HTTP threads read and decide, the main loop writes events).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import pathlib
import sqlite3
import threading
import uuid
from typing import Dict, List, Optional

from core.errors import UserError
from pipeline.outputs.sqlite import open_wal
from pipeline.types import RequestRefused

logger = logging.getLogger(__name__)

STATES = ("open", "confirmed", "false_alarm")
NOTE_MAX = 500  # characters of a reviewer's note
PAGE_MAX = 500  # events in one /api/events answer
TRIM_EVERY = 500  # events recorded between two retention checks

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    zone TEXT NOT NULL,
    class TEXT NOT NULL,
    started TEXT NOT NULL,
    last_time TEXT NOT NULL,
    ended INTEGER NOT NULL DEFAULT 0,
    hits INTEGER NOT NULL,
    score REAL NOT NULL,
    box TEXT NOT NULL,
    frame INTEGER NOT NULL,
    snapshot TEXT,
    state TEXT NOT NULL DEFAULT 'open',
    note TEXT NOT NULL DEFAULT '',
    reviewed TEXT,
    revision INTEGER NOT NULL DEFAULT 0,
    announced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_started ON events (started);
CREATE INDEX IF NOT EXISTS events_unannounced ON events (announced, revision);
CREATE INDEX IF NOT EXISTS events_camera ON events (camera, started);
CREATE INDEX IF NOT EXISTS events_class ON events (class, started);
CREATE INDEX IF NOT EXISTS events_state ON events (state, started);
"""
COLUMNS = ("event_id", "camera", "zone", "class", "started", "last_time", "ended", "hits", "score", "box", "frame",
           "snapshot", "state", "note", "reviewed", "revision", "announced")


class ReviewIndexError(UserError):
    """The review index cannot be opened; the message names the file."""


class BadReview(RequestRefused):
    """A filter or a decision the index refuses; the message names the key."""


class UnknownEvent(RequestRefused):
    """No event with this id."""

    status = 404


class NotStored(RequestRefused):
    """The index refused to store a decision (a full or failing disk): nothing changed, try again."""

    status = 503


class IndexClosed(RequestRefused):
    """The daemon is stopping: the index is closed (a request in its last moments)."""

    status = 503


class ReviewOff(RequestRefused):
    """The index is not kept (review.enabled: false)."""

    status = 404


def _iso_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _as_time(key: str, value: str) -> str:
    """An ISO date or time (naive means UTC) as the index stores times, so strings compare as times."""
    try:
        parsed = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadReview(f"{key}: {value!r} is not an ISO date or time (e.g. 2026-12-04 or "
                        f"2026-12-04T10:30:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")


@dataclasses.dataclass(frozen=True)
class EventFilter:
    """What /api/events and the events view select; every field optional. Times are ISO strings in UTC."""
    camera: Optional[str] = None
    class_name: Optional[str] = None
    state: Optional[str] = None
    since: Optional[str] = None  # started at or after
    until: Optional[str] = None  # started before
    limit: int = 50
    offset: int = 0

    QUERY_KEYS = ("camera", "class", "state", "since", "until", "limit", "offset")

    @classmethod
    def from_query(cls, query: Dict[str, List[str]]) -> "EventFilter":
        """From a URL's parsed query (urllib.parse.parse_qs); an unknown key or a bad value names the key."""
        unknown = sorted(set(query) - set(cls.QUERY_KEYS))
        if unknown:
            raise BadReview(f"{unknown[0]}: not a filter (filters: {', '.join(cls.QUERY_KEYS)})")
        value = {key: values[-1] for key, values in query.items() if values and values[-1] != ""}
        state = value.get("state")
        if state is not None and state not in STATES:
            raise BadReview(f"state: {state!r} is not one of {', '.join(STATES)}")
        numbers = {}
        for key, default, top in (("limit", 50, PAGE_MAX), ("offset", 0, None)):
            text = value.get(key, str(default))
            if not text.isdigit() or (top is not None and not 1 <= int(text) <= top):
                raise BadReview(f"{key}: {text!r} is not a whole number" + (f" from 1 to {top}" if top else " >= 0"))
            numbers[key] = int(text)
        return cls(camera=value.get("camera"), class_name=value.get("class"), state=state,
                   since=_as_time("since", value["since"]) if "since" in value else None,
                   until=_as_time("until", value["until"]) if "until" in value else None, **numbers)

    def where(self) -> tuple:
        clauses, args = [], []
        for column, wanted in (("camera", self.camera), ("class", self.class_name), ("state", self.state)):
            if wanted is not None:
                clauses.append(f"{column} = ?")
                args.append(wanted)
        if self.since is not None:
            clauses.append("started >= ?")
            args.append(self.since)
        if self.until is not None:
            clauses.append("started < ?")
            args.append(self.until)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _row(values: tuple) -> dict:
    row = dict(zip(COLUMNS, values))
    row["box"] = json.loads(row["box"])
    row["ended"] = bool(row["ended"])
    return row


class ReviewIndex:
    def __init__(self, path: str | pathlib.Path, max_events: int):
        self.path = str(path)
        self.max_events = max_events
        self.trimmed = 0  # rows removed beyond max_events
        self._since_trim = 0
        self._local = threading.local()
        self._connections: List[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self.closed = False
        try:
            with self._db() as db:
                db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            self.close()
            raise ReviewIndexError(f"{self.path}: cannot open the review index ({exc}); if the file is damaged, "
                                   f"move it aside (its decisions stay in it) and start again") from exc

    def _db(self) -> sqlite3.Connection:
        if self.closed:
            raise IndexClosed("the daemon is stopping: the events index is closed")
        db = getattr(self._local, "db", None)
        if db is None:
            db = open_wal(self.path, check_same_thread=False)
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        self.closed = True
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    # --- the daemon's events ------------------------------------------------------------------------------------
    def record(self, event: dict) -> None:
        """One start/update/end message of an event (rules.py's fields and its snapshot) into its row."""
        db = self._db()
        with db:
            db.execute(
                "INSERT INTO events (event_id, camera, zone, class, started, last_time, ended, hits, score, box, "
                "frame, snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET "
                "last_time = excluded.last_time, ended = excluded.ended, hits = excluded.hits, "
                "score = excluded.score, box = excluded.box, frame = excluded.frame, "
                "snapshot = COALESCE(excluded.snapshot, events.snapshot)",
                (event["event_id"], event["camera"], event["zone"], event["class"], event["started"], event["time"],
                 int(event["type"] == "end"), event["hits"], event["score"], json.dumps(event["box"]),
                 event["frame"], event.get("snapshot")))
        self._since_trim += 1
        if self._since_trim >= TRIM_EVERY:
            self._since_trim = 0
            self.trim()

    def trim(self) -> int:
        """Rows beyond max_events, the oldest first, removed (counted and said); returns how many."""
        db = self._db()
        with db:
            removed = db.execute("DELETE FROM events WHERE event_id IN (SELECT event_id FROM events ORDER BY "
                                 "started DESC LIMIT -1 OFFSET ?)", (self.max_events,)).rowcount
        if removed:
            self.trimmed += removed
            logger.info("review index %s: %d oldest events removed (review.max_events %d; %d so far)", self.path,
                        removed, self.max_events, self.trimmed)
        return removed

    # --- what a person reads and decides ------------------------------------------------------------------------
    def query(self, selection: EventFilter) -> dict:
        """The selected events, newest first, a page of them, with the total and the per-state counts of the
        selection without its state, and the cameras and classes there are to filter by."""
        db = self._db()
        where, args = selection.where()
        rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM events{where} ORDER BY started DESC, event_id "
                          f"LIMIT ? OFFSET ?", args + [selection.limit, selection.offset]).fetchall()
        total = db.execute(f"SELECT COUNT(*) FROM events{where}", args).fetchone()[0]
        stateless, stateless_args = dataclasses.replace(selection, state=None).where()
        counts = dict.fromkeys(STATES, 0)
        counts.update(db.execute(f"SELECT state, COUNT(*) FROM events{stateless} GROUP BY state",
                                 stateless_args).fetchall())
        return {"events": [_row(r) for r in rows], "total": total, "counts": counts,
                "cameras": [r[0] for r in db.execute("SELECT DISTINCT camera FROM events ORDER BY camera")],
                "classes": [r[0] for r in db.execute("SELECT DISTINCT class FROM events ORDER BY class")]}

    def get(self, event_id: str) -> dict:
        found = self._db().execute(f"SELECT {', '.join(COLUMNS)} FROM events WHERE event_id = ?",
                                   (event_id,)).fetchone()
        if found is None:
            raise UnknownEvent(f"no event {event_id} (events older than review.max_events are removed)")
        return _row(found)

    def decide(self, event_id: str, decision: object) -> dict:
        """A person's decision ({"state": ..., "note": ...}) stored durably (synchronous=FULL); the event's row
        after it. The same state again with the same note changes nothing and is not announced again."""
        if not isinstance(decision, dict):
            raise BadReview("the body must be a JSON object with a state (and a note)")
        unknown = sorted(set(decision) - {"state", "note"})
        if unknown:
            raise BadReview(f"{unknown[0]}: not a review key (keys: state, note)")
        state, note = decision.get("state"), decision.get("note", "")
        if state not in STATES:
            raise BadReview(f"state: {state!r} is not one of {', '.join(STATES)}")
        if not isinstance(note, str) or len(note) > NOTE_MAX:
            raise BadReview(f"note: must be text of at most {NOTE_MAX} characters")
        db = self._db()
        current = self.get(event_id)
        if (current["state"], current["note"]) == (state, note):
            return current
        try:
            db.execute("PRAGMA synchronous=FULL")  # a person's decision survives a power cut
            try:
                with db:
                    db.execute("UPDATE events SET state = ?, note = ?, reviewed = ?, revision = revision + 1 "
                               "WHERE event_id = ?", (state, note, _iso_now(), event_id))
            finally:
                db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            logger.error("review index %s: a decision on event %s not stored (%s)", self.path, event_id[:8], exc)
            raise NotStored(f"the decision was not stored ({exc}): nothing changed, try again") from exc
        logger.info("camera %s: event %s marked %s", current["camera"], event_id[:8], state)
        return self.get(event_id)

    # --- announcing decisions -----------------------------------------------------------------------------------
    def unannounced(self, limit: int = 100) -> List[dict]:
        rows = self._db().execute(f"SELECT {', '.join(COLUMNS)} FROM events WHERE announced < revision "
                                  f"ORDER BY reviewed LIMIT ?", (limit,)).fetchall()
        return [_row(r) for r in rows]

    def mark_announced(self, event_id: str, revision: int) -> None:
        db = self._db()
        with db:
            db.execute("UPDATE events SET announced = MAX(announced, ?) WHERE event_id = ?", (revision, event_id))


def review_message(row: dict) -> dict:
    """The `update` message that tells the outputs of a decision: the event's own fields (as its other
    messages carry them) and `review`."""
    return {"id": str(uuid.uuid4()), "event_id": row["event_id"], "type": "update", "camera": row["camera"],
            "zone": row["zone"], "class": row["class"], "started": row["started"], "time": _iso_now(),
            "hits": row["hits"], "score": row["score"], "box": row["box"], "frame": row["frame"],
            "snapshot": row["snapshot"],
            "review": {"state": row["state"], "note": row["note"], "time": row["reviewed"],
                       "revision": row["revision"]}}
