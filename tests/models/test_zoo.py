"""The checkpoints in models/zoo are the bundled models' own (the stage-1 checkpoint
beside its ONNX, so that stage 2, and users, can start from its backbone): exported again, each gives the bundled ONNX's
outputs. The field model (models/zoo/field) is a daemon config that validates and, evaluated as it deploys, gives
the figures docs/transfer.md shows."""

import json
import pathlib
import threading

import numpy as np
import pytest
import yaml

from inspector.cli import main
from models.export import export_model
from models.runtime import open_session
from models.spec import ModelSpec
from pipeline.config import parse_config
from pipeline.daemon import Daemon
from pipeline.events.rules import iou_matrix

REPO = pathlib.Path(__file__).resolve().parents[2]
PAIRS = [("models/zoo/demo-insulator/best.ckpt", "pipeline/demo/model"),
         ("models/zoo/demo-defect-stage2/best.ckpt", "pipeline/demo/stage2"),
         ("models/zoo/field-insulator/best.ckpt", "models/zoo/field/model"),
         ("models/zoo/field-defects/best.ckpt", "models/zoo/field/stage2")]
FIELD_CONFIG = REPO / "models/zoo/field/field.yaml"


@pytest.mark.parametrize("checkpoint, bundled", PAIRS,
                         ids=["insulator", "defect-stage2", "field-insulator", "field-defects"])
def test_the_checkpoint_exports_to_the_bundled_model(checkpoint, bundled, tmp_path):
    spec = ModelSpec.load(REPO / bundled)
    overrides = {"crops": spec.crops} if spec.crops else None
    export_model(REPO / bundled / "network.cfg", REPO / checkpoint, list(spec.class_names), "onnx", tmp_path,
                 size=(spec.input_height, spec.input_width), spec_overrides=overrides)
    images = np.random.default_rng(0).random((2, 3, spec.input_height, spec.input_width), np.float32)
    ours = open_session(str(tmp_path / "model.onnx")).run(images)
    theirs = open_session(str(REPO / bundled / "model.onnx")).run(images)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def test_the_field_config_validates():
    assert main(["validate", "--config", str(FIELD_CONFIG)]) == 0


@pytest.mark.slow
def test_the_daemon_runs_the_field_config(tmp_path):
    """The config as it is, on 120 frames of its clip (8 pictures of 20 frames; the 6th to the 8th show missing
    caps): insulators from the first model, the defects the second finds on their crops attached to them, the
    first model's own defects merged with them."""
    data = yaml.safe_load(FIELD_CONFIG.read_text())
    data["cameras"][0].update(loop=False, max_frames=120)
    data["output"] = {"directory": str(tmp_path / "out")}
    data["http"] = {"enabled": False}
    daemon = Daemon(parse_config(data, str(FIELD_CONFIG), FIELD_CONFIG.parent))
    summary = daemon.run(threading.Event())
    assert summary.cameras[0].processed == 120
    lines = [json.loads(line) for line in (tmp_path / "out" / "detections.jsonl").read_text().splitlines()]
    found = [d for line in lines for d in line["detections"]]
    assert sum(d["class"] == "insulator" for d in found) >= 120  # two or three strings a picture
    defects = [(line, d) for line in lines for d in line["detections"] if d["class"] != "insulator"]
    assert any(d["class"] == "missing-cap" for _, d in defects), "frames 100-119 show a missing cap"
    for line, d in defects:  # the second model's, on an insulator's crops, or the first model's, merged
        if "parent" in d:
            assert line["detections"][d["parent"]]["class"] == "insulator", d
            continue
        assert d["score"] >= 0.5, d  # the second model's threshold, whichever model found it
        for other in line["detections"]:  # once: no other detection of its class overlaps it beyond the NMS
            if other is not d and other["class"] == d["class"]:
                assert iou_matrix(np.asarray([other["box"]]), np.asarray([d["box"]]))[0, 0] <= 0.45, (d, other)


@pytest.mark.slow
def test_the_field_model_gives_its_banked_figures(shared_dir, capsys):
    """docs/bench/field-model-eval.json (docs/transfer.md's tables) is what the config deploys, measured on the
    pictures both stages held out."""
    pytest.importorskip("pycocotools")
    banked = json.loads((REPO / "docs/bench/field-model-eval.json").read_text())
    assert main(["eval", "--config", str(FIELD_CONFIG), "--held-out-of",
                 str(REPO / "train/configs/field-insulator.yaml")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rule"] == banked["rule"]
    for stage in ("stage1", "cascade"):
        for source, figures in banked[stage]["per_source"].items():
            assert report[stage]["per_source"][source]["per_class_AP50"] == pytest.approx(
                figures["per_class_AP50"], abs=1e-3), (stage, source)
    # What the daemon reports at its thresholds (the insulators it crops, the defects), within a box a class
    # (scores at the threshold's edge).
    for stage in ("stage1", "cascade"):
        for name, point in banked[stage]["at_threshold"].items():
            measured = report[stage]["at_threshold"][name]
            assert measured["score"] == point["score"], (stage, name)
            for key in ("found", "false_alarms", "missed"):
                assert abs(measured[key] - point[key]) <= 1, (stage, name, key, measured, point)
