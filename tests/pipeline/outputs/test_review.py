"""The review index: events recorded from their messages, filtered and paged, a person's decisions stored
durably and announced once through the outputs, also after a crash between the two."""

from __future__ import annotations

import json
import logging

import pytest

from pipeline.config import parse_config
from pipeline.outputs.review import BadReview, EventFilter, ReviewIndex, UnknownEvent
from pipeline.outputs.stage import REVIEW_FILE, OutputStage

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def message(n: int, kind: str = "start", camera: str = "cam", class_name: str = "defect", day: int = 1,
            score: float = 0.9, snapshot: str | None = "cam/x.jpg") -> dict:
    """An event message as pipeline/events/rules.py and the output stage write it."""
    started = f"2026-12-{day:02d}T10:00:{n % 60:02d}.000+00:00"
    return {"id": f"m-{n}-{kind}", "event_id": f"00000000-0000-0000-0000-{n:012d}", "type": kind, "camera": camera,
            "zone": "all", "class": class_name, "started": started, "time": started, "hits": 3, "score": score,
            "box": [1.0, 2.0, 30.5, 40.0], "frame": 7 + n, "snapshot": snapshot}


def test_an_event_row_follows_its_messages(tmp_path):
    index = ReviewIndex(tmp_path / "e.sqlite", 1000)
    index.record(message(1))
    update = dict(message(1, "update"), score=0.95, hits=9, frame=40, time="2026-12-01T10:00:09.000+00:00")
    index.record(update)
    assert not index.get(update["event_id"])["ended"]
    # The end carries the best frame so far, as every message of an event; no snapshot of its own.
    index.record(dict(update, type="end", snapshot=None, time="2026-12-01T10:00:20.000+00:00"))
    row = index.get(message(1)["event_id"])
    assert row["ended"] and row["score"] == 0.95 and row["hits"] == 9 and row["frame"] == 40
    assert row["snapshot"] == "cam/x.jpg"  # an end without a snapshot keeps the one it had
    assert row["last_time"] == "2026-12-01T10:00:20.000+00:00" and row["box"] == [1.0, 2.0, 30.5, 40.0]
    assert (row["state"], row["note"], row["revision"], row["announced"]) == ("open", "", 0, 0)
    with pytest.raises(UnknownEvent, match="no event 00000000-0000-0000-0000-000000000099"):
        index.get("00000000-0000-0000-0000-000000000099")


def test_filters_select_page_and_count(tmp_path):
    index = ReviewIndex(tmp_path / "e.sqlite", 1000)
    for n in range(10):
        index.record(message(n, camera="tower-3" if n % 2 else "yard", class_name="broken" if n < 4 else "defect",
                             day=1 + n // 5))
    index.decide(message(3)["event_id"], {"state": "false_alarm"})
    index.decide(message(5)["event_id"], {"state": "confirmed", "note": "cap gone"})

    def select(**query):
        return index.query(EventFilter.from_query({k: [str(v)] for k, v in query.items()}))

    everything = select()
    assert everything["total"] == 10 and everything["counts"] == {"open": 8, "confirmed": 1, "false_alarm": 1}
    assert [e["event_id"][-1] for e in everything["events"]] == list("9876543210")  # newest first
    assert everything["cameras"] == ["tower-3", "yard"] and everything["classes"] == ["broken", "defect"]
    tower = select(camera="tower-3")
    assert tower["total"] == 5 and {e["camera"] for e in tower["events"]} == {"tower-3"}
    # The counts are the selection's without its state: the tabs of the view.
    assert select(camera="tower-3", state="open")["counts"] == {"open": 3, "confirmed": 1, "false_alarm": 1}
    assert [e["note"] for e in select(state="confirmed")["events"]] == ["cap gone"]
    assert select(**{"class": "broken"})["total"] == 4
    assert select(since="2026-12-02")["total"] == 5 and select(until="2026-12-02")["total"] == 5
    assert select(since="2026-12-01T10:00:03Z", until="2026-12-01T10:00:05+00:00")["total"] == 2
    page = select(limit=3, offset=3)
    assert [e["event_id"][-1] for e in page["events"]] == list("654") and page["total"] == 10


@pytest.mark.parametrize("query, message_", [
    ({"camera": ["a"], "colour": ["red"]}, "colour: not a filter"),
    ({"state": ["closed"]}, "state: 'closed' is not one of open, confirmed, false_alarm"),
    ({"limit": ["0"]}, "limit: '0' is not a whole number from 1 to 500"),
    ({"limit": ["5000"]}, "limit: '5000'"),
    ({"offset": ["-1"]}, "offset: '-1' is not a whole number >= 0"),
    ({"since": ["yesterday"]}, "since: 'yesterday' is not an ISO date or time"),
])
def test_a_bad_filter_names_its_key(query, message_):
    with pytest.raises(BadReview, match=message_):
        EventFilter.from_query(query)


@pytest.mark.parametrize("decision, message_", [
    ({"state": "wrong"}, "state: 'wrong' is not one of"),
    ({"note": "x"}, "state: None is not one of"),
    ({"state": "confirmed", "note": "x" * 501}, "note: must be text of at most 500"),
    ({"state": "confirmed", "by": "me"}, "by: not a review key"),
    (["confirmed"], "the body must be a JSON object"),
])
def test_a_bad_decision_names_its_key_and_changes_nothing(tmp_path, decision, message_):
    index = ReviewIndex(tmp_path / "e.sqlite", 1000)
    index.record(message(1))
    with pytest.raises(BadReview, match=message_):
        index.decide(message(1)["event_id"], decision)
    assert index.get(message(1)["event_id"])["revision"] == 0


def test_decisions_survive_a_restart_and_only_changes_count(tmp_path):
    path = tmp_path / "e.sqlite"
    index = ReviewIndex(path, 1000)
    index.record(message(1))
    event_id = message(1)["event_id"]
    first = index.decide(event_id, {"state": "false_alarm", "note": "a gull"})
    assert first["revision"] == 1 and first["reviewed"]
    assert index.decide(event_id, {"state": "false_alarm", "note": "a gull"})["revision"] == 1  # no change
    index.close()
    again = ReviewIndex(path, 1000)
    row = again.get(event_id)
    assert (row["state"], row["note"], row["revision"], row["announced"]) == ("false_alarm", "a gull", 1, 0)
    assert [r["event_id"] for r in again.unannounced()] == [event_id]
    again.mark_announced(event_id, 1)
    assert again.unannounced() == []
    assert again.decide(event_id, {"state": "open"})["revision"] == 2 and len(again.unannounced()) == 1


def test_the_oldest_events_go_beyond_max_events(tmp_path, caplog):
    caplog.set_level(logging.INFO, "pipeline.outputs.review")
    index = ReviewIndex(tmp_path / "e.sqlite", 100)
    for n in range(130):
        index.record(dict(message(n), started=f"2026-12-01T10:{n // 60:02d}:{n % 60:02d}.000+00:00"))
    assert index.trim() == 30 and index.trimmed == 30
    kept = index.query(EventFilter(limit=500))["events"]
    assert len(kept) == 100 and min(int(e["event_id"][-3:]) for e in kept) == 30
    assert "30 oldest events removed (review.max_events 100" in caplog.text


def stage_for(tmp_path, **config):
    stage = OutputStage(parse_config({"cameras": [{"id": "cam", "url": "rtsp://127.0.0.1:9/s"}], "model": "m",
                                      "output": {"directory": str(tmp_path)}, "snapshots": {"enabled": False},
                                      **config}), tmp_path)
    stage.start()
    return stage


def sent_events(tmp_path) -> list:
    return [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]


def test_a_decision_goes_out_once_as_an_update_with_its_review(tmp_path):
    stage = stage_for(tmp_path)
    stage.emit_event(message(1), None)
    event_id = message(1)["event_id"]
    row = stage.decide(event_id, {"state": "false_alarm", "note": "reflection"})
    assert row["announced"] == 0 and stage.review_due.is_set()
    assert stage.announce_reviews() == 1 and stage.announce_reviews() == 0
    stage.decide(event_id, {"state": "false_alarm", "note": "reflection"})  # the same again: nothing to send
    assert stage.announce_reviews() == 0
    stage.stop()
    sent = sent_events(tmp_path)
    assert [m["type"] for m in sent] == ["start", "update"]
    update = sent[1]
    assert update["event_id"] == event_id and update["id"] != sent[0]["id"]
    assert update["review"]["state"] == "false_alarm" and update["review"]["note"] == "reflection"
    assert (update["camera"], update["class"], update["box"]) == ("cam", "defect", [1.0, 2.0, 30.5, 40.0])


def test_a_decision_not_announced_before_a_crash_goes_out_at_the_next_start(tmp_path):
    stage = stage_for(tmp_path)
    stage.emit_event(message(1), None)
    stage.stop()
    # The decision is committed, the process dies before the main loop announced it.
    index = ReviewIndex(tmp_path / REVIEW_FILE, 1000)
    index.decide(message(1)["event_id"], {"state": "confirmed"})
    index.close()
    restarted = stage_for(tmp_path)
    assert restarted.announce_reviews() == 1
    restarted.stop()
    assert [(m["type"], m.get("review", {}).get("state")) for m in sent_events(tmp_path)] == \
        [("start", None), ("update", "confirmed")]


def test_no_index_when_review_is_off(tmp_path):
    stage = stage_for(tmp_path, review={"enabled": False})
    stage.emit_event(message(1), None)
    assert stage.review is None and stage.announce_reviews() == 0
    stage.stop()
    assert not (tmp_path / REVIEW_FILE).exists()


def test_a_decision_the_disk_refuses_is_a_clear_refusal_and_changes_nothing(tmp_path, small_disk):
    from pipeline.outputs.review import NotStored
    from tests.support.disk import fill

    index = ReviewIndex(small_disk / "e.sqlite", 1000)
    index.record(message(1))
    filler = fill(small_disk)
    try:
        with pytest.raises(NotStored, match="the decision was not stored .*full.*try again"):
            index.decide(message(1)["event_id"], {"state": "confirmed", "note": "n" * 400})
    finally:
        filler.unlink()
    assert index.get(message(1)["event_id"])["state"] == "open"
    assert index.decide(message(1)["event_id"], {"state": "confirmed"})["state"] == "confirmed"


def test_a_request_in_the_daemons_last_moments_is_told_it_is_stopping(tmp_path):
    from pipeline.outputs.review import IndexClosed

    index = ReviewIndex(tmp_path / "e.sqlite", 1000)
    index.record(message(1))
    index.close()
    with pytest.raises(IndexClosed, match="stopping") as refused:
        index.query(EventFilter())
    assert refused.value.status == 503
