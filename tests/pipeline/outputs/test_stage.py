"""The output stage: detection lines committed per batch, an event after the lines before it, nothing lost on
stop."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pipeline.config import parse_config
from pipeline.outputs.stage import OutputStage

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def stage_for(tmp_path, **output):
    config = parse_config({"cameras": [{"id": "cam", "url": "rtsp://127.0.0.1:9/s"}], "model": "m",
                           "output": {"directory": str(tmp_path), **output}, "snapshots": {"enabled": False}})
    stage = OutputStage(config, tmp_path)
    stage.start()
    return stage


def event(n: int) -> dict:
    """An event message with every field pipeline/events/rules.py gives it."""
    return {"id": f"m-{n}", "event_id": f"00000000-0000-0000-0000-{n:012d}", "type": "start", "camera": "cam",
            "zone": "frame", "class": "defect", "started": "2026-12-01T10:00:00.000+00:00",
            "time": "2026-12-01T10:00:00.000+00:00", "hits": 3, "score": 0.9, "box": [1, 2, 3, 4], "frame": n}


def test_lines_wait_for_flush_and_an_event_follows_the_lines_before_it(tmp_path):
    stage = stage_for(tmp_path)
    # What reaches the outbox, in commit order (the delivery threads may already have taken and removed the
    # lines from the table, so the order is watched at the commits, not read back).
    stored = []
    many, one = stage.outbox.enqueue_many, stage.outbox.enqueue
    stage.outbox.enqueue_many = lambda run, *a, **k: (stored.extend(item[0] for item in run), many(run, *a, **k))[1]
    stage.outbox.enqueue = lambda kind, *a, **k: (stored.append(kind), one(kind, *a, **k))[1]
    for i in range(3):
        stage.enqueue("detections", "cam", json.dumps({"n": i}), 0.0)
    assert stored == []  # not yet: one commit per batch
    stage.emit_event(event(1), None)  # commits the three lines first, then the event
    assert stored == ["detections"] * 3 + ["events"]
    stage.enqueue("detections", "cam", json.dumps({"n": 3}), 0.0)
    stage.stop()  # the last batch is committed and delivered before the files close
    lines = (tmp_path / "detections.jsonl").read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines] == [0, 1, 2, 3]
    assert json.loads((tmp_path / "events.jsonl").read_text())["event_id"] == event(1)["event_id"]


def test_what_the_disk_refuses_is_held_in_order_and_stored_when_it_takes_it(tmp_path, monkeypatch, caplog):
    from pipeline.outputs import stage as stage_module

    stage = stage_for(tmp_path)
    real = stage.outbox.enqueue_many
    full = {"on": True}

    def refusing(*args, **kwargs):
        if full["on"]:
            raise sqlite3.OperationalError("database or disk is full")
        return real(*args, **kwargs)

    monkeypatch.setattr(stage.outbox, "enqueue_many", refusing)
    monkeypatch.setattr(stage_module, "STORE_RETRY_S", 0.0)
    for i in range(5):
        stage.enqueue("detections", "cam", json.dumps({"n": i}), 0.0)
    stage.flush()
    assert stage.outbox_errors == 0 and stage.store_failures == 1
    assert "cannot store messages (database or disk is full); 5 held in memory" in stage.problem
    stage.enqueue("detections", "cam", json.dumps({"n": 5}), 0.0)
    full["on"] = False  # space again: the held lines first, then the new one, in one order
    stage.flush()
    assert stage.problem is None and "storing again" in caplog.text
    stage.stop()
    lines = (tmp_path / "detections.jsonl").read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines] == list(range(6))


def test_held_messages_beyond_the_bound_or_at_stop_are_lost_counted(tmp_path, monkeypatch, caplog):
    from pipeline.outputs import stage as stage_module

    monkeypatch.setattr(stage_module, "UNSTORED_MAX", 4)
    stage = stage_for(tmp_path)

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(stage.outbox, "enqueue_many", full)
    monkeypatch.setattr(stage.outbox, "enqueue", full)
    for i in range(3):
        stage.enqueue("detections", "cam", json.dumps({"n": i}), 0.0)
    stage.emit_event(event(1), None)  # held after the three lines
    for i in range(3, 5):
        stage.enqueue("detections", "cam", json.dumps({"n": i}), 0.0)
    stage.flush()  # 6 held, bound 4: the two oldest lines go, the event stays
    assert stage.outbox.dropped == {"events": 0, "detections": 2} and stage.outbox_errors == 2
    assert [item[0] for item in stage._unstored] == ["detections", "events", "detections", "detections"]
    stage.stop()  # still full: what is held is lost, counted and said
    assert stage.outbox.dropped == {"events": 1, "detections": 5} and stage.outbox_errors == 6
    assert "1 events messages lost (still held at stop: database or disk is full)" in caplog.text