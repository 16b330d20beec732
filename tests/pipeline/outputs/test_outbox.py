"""The durable outbox: per-sink pending rows, acknowledgement, survival across a restart, the size limit."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3

import pytest

from pipeline.outputs.outbox import Outbox
from tests.support.disk import fill

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def payload(i: int) -> str:
    return json.dumps({"n": i})


def test_each_sink_acknowledges_on_its_own(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(5):
        box.enqueue("events", "cam", payload(i), ["jsonl", "mqtt"], 0.0)
    box.enqueue("detections", "cam", payload(99), ["jsonl"], 0.0)
    assert box.backlog() == {"jsonl": 6, "mqtt": 5}
    assert [json.loads(m.payload)["n"] for m in box.fetch("mqtt", 3)] == [0, 1, 2]
    box.ack("mqtt", [m.id for m in box.fetch("mqtt", 3)])
    assert [json.loads(m.payload)["n"] for m in box.fetch("mqtt")] == [3, 4]
    # jsonl still holds all of them: a message lives until every sink has it.
    assert [json.loads(m.payload)["n"] for m in box.fetch("jsonl")] == [0, 1, 2, 3, 4, 99]
    box.ack("jsonl", [m.id for m in box.fetch("jsonl")])
    box.ack("mqtt", [m.id for m in box.fetch("mqtt")])
    assert box.backlog() == {}
    assert box._connection().execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    assert box.enqueue("detections", "cam", payload(1), [], 0.0) is None  # nobody wants it: not stored


def _writer(path: str, count: int) -> None:
    box = Outbox(path)
    for i in range(count):
        box.enqueue("events", "cam", payload(i), ["mqtt"], 0.0)
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no cleanup: as a crash


def test_committed_messages_survive_a_killed_writer(tmp_path):
    path = str(tmp_path / "o.sqlite")
    process = multiprocessing.get_context("fork").Process(target=_writer, args=(path, 300))
    process.start()
    process.join(30)
    assert process.exitcode == -signal.SIGKILL
    box = Outbox(path)
    assert [json.loads(m.payload)["n"] for m in box.fetch("mqtt", 1000)] == list(range(300))


def test_the_limit_drops_oldest_detections_before_events(tmp_path, caplog):
    box = Outbox(tmp_path / "o.sqlite", max_messages=1000)
    for i in range(600):
        box.enqueue("events", "cam", payload(i), ["mqtt"], 0.0)
    for i in range(600):
        box.enqueue("detections", "cam", payload(1000 + i), ["mqtt"], 0.0)
    box.enforce_cap()
    kept = [json.loads(m.payload)["n"] for m in box.fetch("mqtt", 5000)]
    assert len(kept) == 1000 and box.dropped == {"events": 0, "detections": 200}
    assert kept[:600] == list(range(600))  # every event kept
    assert kept[600:] == list(range(1200, 1600))  # the newest detections kept
    assert "outbox full" in caplog.text


def test_a_full_disk_raises_its_own_error_not_a_rollback_one(small_disk):
    """SQLite rolls a transaction back itself when the disk is full at COMMIT; the outbox must not roll back
    again (that raised "cannot rollback - no transaction is active" and hid the real error)."""
    box = Outbox(small_disk / "o.sqlite")
    box.enqueue_many([("detections", "cam", json.dumps({"n": i, "pad": "x" * 200}), 0.0) for i in range(500)],
                     ["jsonl"])
    filler = fill(small_disk)
    for attempt in (lambda: box.enqueue_many([("detections", "cam", "{}", 0.0)] * 50, ["jsonl"]),
                    lambda: box.ack("jsonl", [m.id for m in box.fetch("jsonl", 200)])):
        with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
            attempt()
    filler.unlink()
    box.ack("jsonl", [m.id for m in box.fetch("jsonl", 200)])  # the same connection works again
    assert box.backlog() == {"jsonl": 300}
