"""The daemon's SQLite files (the outbox, the events index): one way to open them."""

from __future__ import annotations

import sqlite3

# A writer waits this long for another connection's lock before failing: the daemon's threads each have one,
# and `inspector samples export` may read the events index while the daemon runs.
BUSY_TIMEOUT_S = 30.0


def open_wal(path: str, **options) -> sqlite3.Connection:
    """A connection in WAL mode with synchronous=NORMAL: readers never block the writer, and a committed row
    survives a killed process (each store says where it needs more)."""
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, **options)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db
