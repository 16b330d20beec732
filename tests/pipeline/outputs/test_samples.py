"""Frames worth labelling: what is kept (an event's best frame, an uncertain frame, a random one), at most how
often, with which predictions and model versions, and the quota that deletes the oldest first."""

from __future__ import annotations

import json
import os
import time

import cv2
import numpy as np
import pytest

from pipeline.config import SamplesConfig
from pipeline.outputs.samples import SampleKeeper, model_version
from pipeline.outputs.snapshots import Frame

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)

MODELS = {"stage1": {"path": "/opt/m", "model_file": "model.onnx", "sha256": "ab" * 32, "classes": ["insulator"]}}


def frame(frame_id: int, scores=(), camera: str = "cam", width: int = 320, height: int = 240) -> Frame:
    """A grey NV12 frame with a white square, and detections of the given scores."""
    nv12 = np.full((height * 3 // 2, width), 128, np.uint8)
    nv12[40:80, 40:80] = 235
    boxes = np.asarray([[40, 40, 80, 80]] * len(scores), np.float32).reshape(-1, 4)
    return Frame(camera, frame_id, 1_764_000_000.0 + frame_id, nv12, width, height, boxes,
                 tuple("insulator" for _ in scores), np.asarray(scores, np.float32))


def keeper(tmp_path, **config) -> SampleKeeper:
    settings = SamplesConfig(**{"enabled": True, "random_interval_s": 0, "min_free_megabytes": 0, **config})
    return SampleKeeper(settings, tmp_path / "samples", MODELS, ["cam", "yard"], seed=3)


def kept(tmp_path) -> list:
    found = [json.loads(p.read_text()) | {"picture": str(p.with_suffix(".jpg"))}
             for p in (tmp_path / "samples").glob("*/*/*.json")]
    return sorted(found, key=lambda s: (s["camera"], s["frame"]))


def test_an_uncertain_frame_is_kept_at_most_once_per_interval_per_camera(tmp_path):
    samples = keeper(tmp_path, uncertain=[0.3, 0.5], uncertain_interval_s=3600)
    assert samples.consider(frame(1, [0.9])) is None  # sure
    assert samples.consider(frame(2, [])) is None  # nothing found: only the random sample takes such frames
    assert samples.consider(frame(3, [0.2, 0.45])) == "uncertain"  # its best score is in the band
    assert samples.consider(frame(4, [0.4])) is None  # this camera had one within the interval
    assert samples.consider(frame(5, [0.4], camera="yard")) == "uncertain"
    found = kept(tmp_path)
    assert [(s["camera"], s["frame"], s["reason"]) for s in found] == [("cam", 3, "uncertain"), ("yard", 5, "uncertain")]
    sample = found[0]
    assert sample["models"] == MODELS and sample["width"] == 320 and sample["event_id"] is None
    assert [p["score"] for p in sample["predictions"]] == [0.2, 0.45]
    assert sample["predictions"][0] == {"class": "insulator", "score": 0.2, "box": [40.0, 40.0, 80.0, 80.0]}
    picture = cv2.imread(sample["picture"])
    # Full resolution, no boxes drawn: the white square and grey around it, as decoded.
    assert picture.shape == (240, 320, 3) and picture[60, 60].min() > 200 and abs(int(picture[10, 10, 0]) - 128) < 12


def test_random_frames_come_about_every_interval_with_or_without_detections(tmp_path, monkeypatch):
    from pipeline.outputs import samples as module

    clock = {"now": 1000.0}
    monkeypatch.setattr(module.time, "monotonic", lambda: clock["now"])
    samples = keeper(tmp_path, uncertain=None, random_interval_s=60)
    reasons = []
    for i in range(3600):  # an hour at 1 frame/s
        clock["now"] += 1.0
        reasons.append(samples.consider(frame(i, [] if i % 2 else [0.9])))
    count = reasons.count("random")
    assert 40 <= count <= 85, count  # about 60 an hour (exponential gaps, seeded)
    assert samples.kept["random"] == count and set(reasons) == {None, "random"}


def test_an_event_keeps_its_best_frame_rewritten_only_when_it_changes(tmp_path):
    samples = keeper(tmp_path, uncertain=None)
    event = {"event_id": "11111111-2222-4333-8444-555555555555", "type": "start"}
    samples.keep_event(event, frame(10, [0.8]))
    samples.keep_event(dict(event, type="update"), frame(10, [0.8]))  # the same best frame: not written again
    samples.keep_event(dict(event, type="update"), frame(14, [0.95]))
    samples.keep_event(dict(event, type="end"), frame(14, [0.95]))
    assert samples.kept["event"] == 2
    found = kept(tmp_path)
    assert len(found) == 1 and found[0]["frame"] == 14 and found[0]["reason"] == "event"
    assert found[0]["event_id"] == event["event_id"] and found[0]["picture"].endswith(f"event-{event['event_id']}.jpg")


def test_the_quota_deletes_the_oldest_picture_with_its_sidecar(tmp_path, caplog):
    samples = keeper(tmp_path, uncertain=[0.3, 0.5], uncertain_interval_s=0, max_megabytes=0.02)
    for i in range(12):
        assert samples.consider(frame(i, [0.4], width=640, height=480)) == "uncertain"
        for path in (tmp_path / "samples").glob(f"*/*/uncertain-*-{i}.*"):
            os.utime(path, (time.time() - 1000 + i, time.time() - 1000 + i))  # written in this order
    samples.enforce_retention(force=True)
    left = kept(tmp_path)
    total = sum(p.stat().st_size for p in (tmp_path / "samples").rglob("*") if p.is_file())
    assert total <= 0.02 * 2**20 and samples.deleted == 12 - len(left) > 0
    assert [s["frame"] for s in left] == list(range(12 - len(left), 12))  # the newest stay
    assert not list((tmp_path / "samples").glob("*/*/*.jpg")) or all(
        p.with_suffix(".json").exists() for p in (tmp_path / "samples").glob("*/*/*.jpg"))


def test_nothing_is_kept_on_a_disk_short_of_space(tmp_path, caplog):
    samples = keeper(tmp_path, min_free_megabytes=10**9)  # more than any disk has
    assert samples.consider(frame(1, [0.4])) is None and samples.skipped == 1
    assert "a frame not kept (less than" in caplog.text and kept(tmp_path) == []


def test_a_bad_band_is_refused():
    with pytest.raises(ValueError, match=r"uncertain: \[0.6, 0.4\] is not a band"):
        SamplesConfig(uncertain=[0.6, 0.4])


def test_a_model_version_is_its_directory_and_digest(tmp_path):
    from pipeline.demo import DEMO_DIR

    version = model_version(DEMO_DIR / "model")
    assert version["sha256"] == (DEMO_DIR / "model" / "model.sha256").read_text().split()[0]
    assert version["classes"] and version["model_file"] == "model.onnx"


def test_a_device_without_pictures_is_asked_for_the_next_one(tmp_path):
    """Frames without their picture (the Ascend device hands one on only when asked): a due frame or a new
    event asks for the camera's next picture, once, and that frame is kept in its place."""
    asked = []
    settings = SamplesConfig(enabled=True, uncertain=[0.3, 0.5], uncertain_interval_s=3600, random_interval_s=0,
                             min_free_megabytes=0)
    samples = SampleKeeper(settings, tmp_path / "samples", MODELS, ["cam", "yard"], request_picture=asked.append)
    assert samples.consider_without_picture("cam", np.asarray([0.9], np.float32)) is None and asked == []
    assert samples.consider_without_picture("cam", np.asarray([0.4], np.float32)) == "uncertain"
    assert samples.consider_without_picture("cam", np.asarray([0.4], np.float32)) is None  # asked already
    assert asked == ["cam"]
    assert samples.consider(frame(8, [0.9])) == "uncertain"  # the next picture, whatever its scores
    samples.keep_event({"event_id": "11111111-2222-4333-8444-555555555555", "type": "start", "camera": "yard"},
                       None)
    assert asked == ["cam", "yard"]
    assert samples.consider(frame(9, [0.95], camera="yard")) == "event"
    found = kept(tmp_path)
    assert [(s["camera"], s["frame"], s["reason"], s["event_id"]) for s in found] == [
        ("cam", 8, "uncertain", None), ("yard", 9, "event", "11111111-2222-4333-8444-555555555555")]
    assert not samples.awaiting


def test_a_picture_that_never_comes_is_given_up(tmp_path, monkeypatch):
    """A camera that goes silent after its picture was asked for: after AWAIT_S the asking is given up
    (counted), and the camera's samples go on."""
    from pipeline.outputs import samples as module

    clock = {"now": 100.0}
    monkeypatch.setattr(module.time, "monotonic", lambda: clock["now"])
    asked = []
    settings = SamplesConfig(enabled=True, uncertain=[0.3, 0.5], uncertain_interval_s=1, random_interval_s=0,
                             min_free_megabytes=0)
    samples = SampleKeeper(settings, tmp_path / "samples", MODELS, ["cam"], request_picture=asked.append)
    assert samples.consider_without_picture("cam", np.asarray([0.4], np.float32)) == "uncertain"
    clock["now"] += 5
    assert samples.consider_without_picture("cam", np.asarray([0.4], np.float32)) is None and samples.skipped == 0
    clock["now"] += module.AWAIT_S
    assert samples.consider_without_picture("cam", np.asarray([0.4], np.float32)) == "uncertain"
    assert samples.skipped == 1 and asked == ["cam", "cam"]
