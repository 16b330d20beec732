"""`inspector samples export`: kept frames as a COCO, VOC or YOLO data set that the trainer's own loaders read
back, pre-labels from the predictions, a false alarm's box removed, provenance beside it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inspector.cli import main
from pipeline.outputs.review import ReviewIndex
from pipeline.outputs.samples import SampleKeeper
from pipeline.config import SamplesConfig
from tests.pipeline.outputs.test_samples import MODELS, frame

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)

FALSE_EVENT = "11111111-2222-4333-8444-555555555555"
TRUE_EVENT = "22222222-2222-4333-8444-555555555555"


def event_message(event_id: str, box) -> dict:
    return {"id": "m", "event_id": event_id, "type": "start", "camera": "cam", "zone": "frame", "class": "insulator",
            "started": "2026-12-01T10:00:00.000+00:00", "time": "2026-12-01T10:00:00.000+00:00", "hits": 3,
            "score": 0.9, "box": box, "frame": 1}


@pytest.fixture
def kept(tmp_path):
    """Four kept frames: a false alarm (its box and another box), a confirmed event, an uncertain frame and a
    random frame without detections; the decisions in a review index."""
    samples = SampleKeeper(SamplesConfig(enabled=True, random_interval_s=0, min_free_megabytes=0),
                           tmp_path / "samples", MODELS, ["cam"])
    false_frame = frame(1, [0.9, 0.7])
    false_frame = false_frame.__class__(**{**false_frame.__dict__, "boxes": np.asarray(
        [[40, 40, 80, 80], [200, 100, 260, 180]], np.float32)})
    samples.keep_event({"event_id": FALSE_EVENT, "type": "start"}, false_frame)
    samples.keep_event({"event_id": TRUE_EVENT, "type": "start"}, frame(2, [0.95]))
    assert samples.consider(frame(3, [0.4])) == "uncertain"
    samples.rng.seed(0)
    samples._next_random["cam"] = 0.0  # a random sample is due now
    assert samples.consider(frame(4, [])) == "random"
    index = ReviewIndex(tmp_path / "events.sqlite", 1000)
    index.record(event_message(FALSE_EVENT, [41.0, 40.0, 80.0, 79.0]))
    index.record(event_message(TRUE_EVENT, [40.0, 40.0, 80.0, 80.0]))
    index.decide(FALSE_EVENT, {"state": "false_alarm", "note": "a shadow"})
    index.decide(TRUE_EVENT, {"state": "confirmed"})
    index.close()
    return tmp_path


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_an_export_is_read_back_by_the_trainer(kept, tmp_path, fmt, capsys):
    from train.datasets import load_dataset

    out = tmp_path / f"export-{fmt}"
    assert main(["samples", "export", "--samples", str(kept / "samples"), "--review", str(kept / "events.sqlite"),
                 "--out", str(out), "--format", fmt]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pictures"] == 4 and summary["false_alarms"] == 1 and summary["classes"] == ["insulator"]
    assert summary["reasons"] == {"event": 2, "uncertain": 1, "random": 1}
    dataset = load_dataset(out, fmt, ["insulator"])
    assert not dataset.issues, dataset.issues
    by_frame = {}
    provenance = [json.loads(line) for line in (out / "provenance.jsonl").read_text().splitlines()]
    for sample in dataset.samples:
        record = next(p for p in provenance if sample.image.endswith(p["file"]))
        by_frame[record["frame"]] = (sample, record)
    assert sorted(by_frame) == [1, 2, 3, 4]
    false_alarm, record = by_frame[1]
    # The false alarm keeps the picture and its other box; the box a person rejected is gone.
    assert record["review"] == {"state": "false_alarm", "note": "a shadow"} and record["event_id"] == FALSE_EVENT
    np.testing.assert_allclose(false_alarm.boxes, [[200, 100, 260, 180]], atol=0.05)
    np.testing.assert_allclose(by_frame[2][0].boxes, [[40, 40, 80, 80]], atol=0.05)
    assert by_frame[2][1]["review"]["state"] == "confirmed" and by_frame[3][1]["reason"] == "uncertain"
    assert len(by_frame[4][0].boxes) == 0 and by_frame[4][1]["reason"] == "random"
    assert record["models"] == MODELS and (false_alarm.width, false_alarm.height) == (320, 240)


def test_an_export_never_writes_over_files_and_names_bad_arguments(kept, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(["samples", "export", "--samples", str(kept / "samples"), "--out", str(out)]) == 1
    assert "busy: not empty" in capsys.readouterr().err and (out / "mine.txt").read_text() == "keep"
    assert main(["samples", "export", "--samples", str(kept / "samples"), "--out", str(tmp_path / "x"),
                 "--reasons", "event,blurry"]) == 1
    assert "--reasons: 'blurry' is not one of" in capsys.readouterr().err
    assert main(["samples", "export", "--samples", str(tmp_path / "nowhere"), "--out", str(tmp_path / "y")]) == 1
    assert "nowhere: no samples folder" in capsys.readouterr().err
    # Only the events, without decisions: every prediction stays a pre-label.
    assert main(["samples", "export", "--samples", str(kept / "samples"), "--out", str(tmp_path / "events"),
                 "--reasons", "event"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pictures"] == 2 and summary["boxes"] == {"insulator": 3} and summary["false_alarms"] == 0


def test_corrected_labels_come_back_in_cvats_coco_layout(kept, tmp_path, capsys):
    """CVAT exports COCO as annotations/instances_default.json beside images/ (file names without a folder):
    the trainer reads that folder as a source too."""
    from train.datasets import load_dataset

    out = tmp_path / "export"
    assert main(["samples", "export", "--samples", str(kept / "samples"), "--out", str(out)]) == 0
    capsys.readouterr()
    corrected = tmp_path / "cvat"
    (corrected / "annotations").mkdir(parents=True)
    data = json.loads((out / "annotations.json").read_text())
    for image in data["images"]:
        image["file_name"] = image["file_name"].removeprefix("images/")
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 1]  # a person deleted a box
    (corrected / "annotations" / "instances_default.json").write_text(json.dumps(data))
    (out / "images").rename(corrected / "images")
    dataset = load_dataset(corrected, "coco", ["insulator"])
    assert not dataset.issues and len(dataset.samples) == 4
    assert sum(len(s.boxes) for s in dataset.samples) == sum(1 for a in data["annotations"])
