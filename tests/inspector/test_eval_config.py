"""`inspector eval --config`: the cascade a daemon config deploys, measured with that config's rule (its
thresholds, NMS and max_crops), on CPLID pictures the bundled models never trained on."""

from __future__ import annotations

import json

import pytest

from inspector.cli import main
from tests.support.daemon import require_demo_model

pytest.importorskip("pycocotools")


def held_out(tmp_path, shared_dir) -> str:
    """About 20 of CPLID's pictures, from the bundled models' own held-out split (the demo configs' seed 0;
    val_fraction 0.03 takes its first pictures of each folder's permutation, all of them in the 0.15 split)."""
    path = tmp_path / "held-out.yaml"
    path.write_text(json.dumps({"data": {"path": str(shared_dir / "datasets" / "cplid"), "classes": ["defect"],
                                         "val_fraction": 0.03, "split_seed": 0}, "out": str(tmp_path / "unused")}))
    return str(path)


def evaluate(capsys, argv) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_config_measures_the_cascade_with_the_daemons_rule(tmp_path, shared_dir, capsys):
    model = require_demo_model()
    data = held_out(tmp_path, shared_dir)
    daemon = {"cameras": [{"id": "a", "url": "clip.mp4"}], "model": str(model), "stage2": {
        "model": str(model.parent / "stage2"), "max_crops": 3, "thresholds": {"score": 0.3, "nms_iou": 0.3}},
        "thresholds": {"score": 0.3, "nms_iou": 0.45}}
    config = tmp_path / "daemon.yaml"
    config.write_text(json.dumps(daemon))
    report = evaluate(capsys, ["eval", "--config", str(config), "--held-out-of", data])
    assert report["rule"] == {"parents": ["insulator"], "parent_scores": {"insulator": 0.3}, "stage1_nms_iou": 0.45,
                              "stage2_nms_iou": 0.3, "max_crops": 3}
    assert 0 < report["crops_per_picture"] <= 3
    # The same models with eval's own rule (every parent above 0.25, up to 32 crops): other crops, other figures.
    alone = evaluate(capsys, ["eval", "--model", str(model), "--stage2", str(model.parent / "stage2"),
                              "--held-out-of", data])
    assert alone["crops_per_picture"] > 3 * report["crops_per_picture"]
    assert alone["stage1"] == report["stage1"]  # stage 1 alone is measured the same way by both
    # What each would report: at the config's stage-2 score, and at eval's own (everything kept).
    point, everything = report["cascade"]["at_threshold"]["defect"], alone["cascade"]["at_threshold"]["defect"]
    assert (point["score"], everything["score"]) == (0.3, 0.001)
    assert point["found"] + point["missed"] == everything["found"] + everything["missed"] > 0
    assert point["false_alarms"] < everything["false_alarms"]
    # A parent threshold the config raises beyond every insulator's score: nothing is cropped.
    daemon["thresholds"]["per_class"] = {"insulator": 0.9999}
    config.write_text(json.dumps(daemon))
    none = evaluate(capsys, ["eval", "--config", str(config), "--held-out-of", data])
    assert none["crops_per_picture"] == 0 and none["cascade"]["mAP50"] <= 0


def test_eval_config_refuses_a_second_stage_problem_naming_the_key(tmp_path, capsys):
    model = require_demo_model()
    config = tmp_path / "daemon.yaml"
    config.write_text(json.dumps({"cameras": [{"id": "a", "url": "clip.mp4"}], "model": str(model),
                                  "stage2": {"model": str(model)}}))
    assert main(["eval", "--config", str(config), "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{config}: stage2.model: " in err and "is not a second-stage model" in err and "Traceback" not in err
    assert main(["eval", "--config", str(config), "--model", str(model), "--data", str(tmp_path)]) == 1
    assert "leave out --model" in capsys.readouterr().err
