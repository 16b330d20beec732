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
    assert main(["eval", "--config", str(config), "--held-out-of", data, "--draw", str(tmp_path / "drawn")]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["rule"] == {"parents": ["insulator"], "parent_scores": {"insulator": 0.3}, "stage1_nms_iou": 0.45,
                              "stage2_nms_iou": 0.3, "max_crops": 3, "merged": ["defect"]}
    assert 0 < report["crops_per_picture"] <= 3
    # The same models with eval's own rule (every parent above 0.25, up to 32 crops): other crops, other figures.
    alone = evaluate(capsys, ["eval", "--model", str(model), "--stage2", str(model.parent / "stage2"),
                              "--held-out-of", data])
    assert alone["crops_per_picture"] > 3 * report["crops_per_picture"]
    # Stage 1 decoded as each rule says: without a config, as `eval --model` measures it; with one, as it deploys.
    single = evaluate(capsys, ["eval", "--model", str(model), "--held-out-of", data])
    assert alone["stage1"]["per_class_AP50"] == single["per_class_AP50"]
    assert report["stage1"]["at_threshold"]["insulator"]["score"] == 0.3
    assert alone["stage1"]["at_threshold"]["insulator"]["score"] == 0.25  # the parents eval crops
    # What each would report: at the config's stage-2 score, and at eval's own (everything kept).
    point, everything = report["cascade"]["at_threshold"]["defect"], alone["cascade"]["at_threshold"]["defect"]
    assert (point["score"], everything["score"]) == (0.3, 0.001)
    assert point["found"] + point["missed"] == everything["found"] + everything["missed"] > 0
    assert point["false_alarms"] < everything["false_alarms"]
    # --draw: every picture, with what the config reports of both stages (the counts at its thresholds).
    reported = sum(p["found"] + p["false_alarms"] for p in report["stage1"]["at_threshold"].values()) + \
        point["found"] + point["false_alarms"]
    assert len(list((tmp_path / "drawn").glob("*.jpg"))) == report["pictures"]
    assert f"{report['pictures']} pictures with labels and {reported} detections drawn" in captured.err
    # A parent threshold the config raises beyond every insulator's score, the first model's defects left out:
    # nothing is cropped, nothing found.
    daemon["thresholds"]["per_class"] = {"insulator": 0.9999}
    daemon["stage2"]["shared_classes"] = "second"
    blind = tmp_path / "blind.yaml"
    blind.write_text(json.dumps(daemon))
    none = evaluate(capsys, ["eval", "--config", str(blind), "--held-out-of", data])
    assert none["crops_per_picture"] == 0 and none["cascade"]["mAP50"] <= 0
    # --against that config: the same first stage (its curve does not depend on the thresholds), and the
    # children's difference is all of this cascade's AP.
    compared = evaluate(capsys, ["eval", "--config", str(config), "--held-out-of", data, "--against", str(blind)])
    assert compared["cascade"]["per_class_AP50"] == report["cascade"]["per_class_AP50"]
    assert compared["against"] == {"crops_per_picture": 0.0, "rule": dict(report["rule"], merged=[],
                                                                          parent_scores={"insulator": 0.9999})}
    assert {v["difference"] for v in compared["stage1"]["against"]["difference_AP50"].values()} == {0.0}
    ap = report["cascade"]["per_class_AP50"]["defect"]
    assert ap > 0 and compared["cascade"]["against"]["difference_AP50"]["defect"]["difference"] == round(ap, 4)
    # --against an export: in the first model's place, with this config's second stage and rule.
    itself = evaluate(capsys, ["eval", "--config", str(config), "--held-out-of", data, "--against", str(model)])
    assert itself["against"] == {"crops_per_picture": report["crops_per_picture"], "rule": report["rule"]}
    assert {v["difference"] for v in itself["cascade"]["against"]["difference_AP50"].values()} == {0.0}


def test_eval_config_of_one_stage_counts_what_the_daemon_keeps(tmp_path, shared_dir, capsys):
    """A config without a second stage: its model decoded with its NMS and cap, and at its thresholds exactly the
    boxes the daemon's own decoding keeps, counted here independently of the evaluation."""
    import cv2
    import numpy as np

    from models.cascade import decode
    from models.letterbox import preprocess_bgr
    from models.runtime import open_session
    from models.spec import ModelSpec
    from pipeline.config import ThresholdConfig
    from pipeline.postprocess import decoding
    from train.config import load_train_config
    from train.datasets import split_sources

    model = require_demo_model()
    data = held_out(tmp_path, shared_dir)
    # NMS 0.1, far from eval's own 0.6, which would keep boxes the daemon suppresses.
    thresholds = {"score": 0.3, "nms_iou": 0.1, "per_class": {"defect": 0.1}}
    config = tmp_path / "daemon.yaml"
    config.write_text(json.dumps({"cameras": [{"id": "a", "url": "clip.mp4"}], "model": str(model),
                                  "thresholds": thresholds}))
    assert main(["eval", "--config", str(config), "--held-out-of", data, "--draw", str(tmp_path / "drawn"),
                 "--bootstrap", "50", "--against", str(model)]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    low, high = report["bootstrap"]["per_class_AP50"]["insulator"]
    assert low <= report["per_class_AP50"]["insulator"] <= high and low < high
    # Against itself, decoded the same way: no difference in any resample.
    assert report["against"]["per_class_AP50"] == report["per_class_AP50"]
    assert all(v == {"difference": 0.0, "interval": [0.0, 0.0]}
               for v in report["against"]["difference_AP50"].values())
    spec = ModelSpec.load(model)
    session = open_session(f"{model}/{spec.cpu_model_name}")
    rule = decoding(spec, ThresholdConfig(**thresholds))
    kept, objects = {name: 0 for name in spec.class_names}, {name: 0 for name in spec.class_names}
    train_config = load_train_config(data).data
    _, pictures = split_sources(train_config.source_list(), spec.class_names, train_config.val_fraction,
                                train_config.split_seed)
    for sample in pictures.samples:
        tensor, geometry = preprocess_bgr(cv2.imread(sample.image), spec)
        boxes, scores = session.run(tensor[None])
        _, _, class_ids = decode(boxes[0], scores[0], geometry, sample.width, sample.height, rule)
        for k, name in enumerate(spec.class_names):
            kept[name] += int((class_ids == k).sum())
            objects[name] += int((np.asarray(sample.labels) == k).sum())
    assert kept["insulator"] > 0 and objects["defect"] > 0
    for name, point in report["at_threshold"].items():
        assert point["score"] == (0.1 if name == "defect" else 0.3)
        assert (point["found"] + point["false_alarms"], point["found"] + point["missed"]) == (kept[name], objects[name])
    # --draw draws those same boxes, on every picture.
    assert f"{len(pictures.samples)} pictures with labels and {sum(kept.values())} detections drawn" in captured.err


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
    # --against: two single-stage models of the same classes only.
    single = tmp_path / "single.yaml"
    single.write_text(json.dumps({"cameras": [{"id": "a", "url": "clip.mp4"}], "model": str(model)}))
    assert main(["eval", "--config", str(single), "--against", str(model.parent / "stage2"), "--data",
                 str(tmp_path)]) == 1
    assert "its classes ['defect'] are not" in capsys.readouterr().err
    cascade = tmp_path / "cascade.yaml"
    cascade.write_text(json.dumps({"cameras": [{"id": "a", "url": "clip.mp4"}], "model": str(model),
                                   "stage2": {"model": str(model.parent / "stage2")}}))
    assert main(["eval", "--config", str(single), "--against", str(cascade), "--data", str(tmp_path)]) == 1
    assert f"eval --against {cascade}: a cascade cannot be compared with a single stage" in capsys.readouterr().err
    # A threshold for a class the model does not have is refused, naming the key, as `inspector validate` does.
    config.write_text(json.dumps({"cameras": [{"id": "a", "url": "clip.mp4"}], "model": str(model),
                                  "thresholds": {"per_class": {"flashover": 0.5}}}))
    assert main(["eval", "--config", str(config), "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{config}: thresholds.per_class.flashover: not a class of the model" in err and "Traceback" not in err
