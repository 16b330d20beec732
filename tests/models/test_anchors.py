"""Anchors fitted to boxes (k-means with 1 - IoU) and used in place of a cfg's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.anchors import fit_anchors, fitness
from models.darknet_cfg import CfgError, parse_cfg, render_cfg

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def test_the_fit_finds_the_box_shapes_and_covers_them_better():
    rng = np.random.default_rng(0)
    shapes = np.array([[10, 8], [24, 18], [90, 22], [60, 170], [280, 70], [150, 150]], float)
    sizes = np.concatenate([shape * rng.uniform(0.9, 1.1, (200, 2)) for shape in shapes])
    fitted = fit_anchors(sizes, 6)
    assert (np.diff(fitted.prod(1)) > 0).all()  # sorted by area
    for shape in shapes:  # every cluster has an anchor within 15% of its size
        assert np.abs(fitted / shape - 1).max(1).min() < 0.15, (shape, fitted)
    cfg = parse_cfg("yolov4-tiny-half", classes=2, height=416, width=416)
    assert fitness(sizes, fitted, 0.213).mean_iou > fitness(sizes, cfg.anchors, 0.213).mean_iou + 0.2
    with pytest.raises(ValueError, match="3 boxes cannot fit 6 anchors"):
        fit_anchors(sizes[:3], 6)


def test_a_cfg_takes_fitted_anchors_of_its_own_count_only():
    anchors = [(8.5, 5.9), (12.3, 10.4), (23.1, 16.6), (93.9, 21.7), (63.7, 172.2), (283.1, 67.9)]
    cfg = parse_cfg("yolov4-tiny-half", classes=4, height=416, width=416, anchors=anchors)
    assert cfg.anchors == tuple(anchors)
    again = parse_cfg("yolov4-tiny-half", classes=4, height=416, width=416)
    assert again.anchors != cfg.anchors  # the file itself is untouched
    assert render_cfg(cfg).count("anchors=8.5,5.9, 12.3,10.4, 23.1,16.6, 93.9,21.7, 63.7,172.2, 283.1,67.9") == 2
    with pytest.raises(CfgError, match="anchors: expected 6 positive"):
        parse_cfg("yolov4-tiny-half", classes=4, anchors=anchors[:3])


def test_the_anchors_command_prints_a_key_for_the_training_config(tmp_path, capsys):
    import yaml

    from inspector.cli import main
    from train.testing import write_voc_dataset

    data = write_voc_dataset(tmp_path / "voc", images=12)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"cfg": "yolov4-tiny-half", "input_size": 128,
                                    "data": {"path": str(data), "classes": ["box", "disc"]}}))
    assert main(["anchors", "--config", str(path)]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert len(report["fitted"]["anchors"]) == 6 and report["fitted"]["mean_iou"] > report["current"]["mean_iou"]
    # yolov4-tiny's heads use slots 1-5 (masks 1,2,3 and 3,4,5): five anchors fitted, slot 0 unused.
    assert report["slots_used"] == [1, 2, 3, 4, 5] and report["fitted"]["anchors"][0] == report["fitted"]["anchors"][1]
    # Per class too: the boxes of each class count once, and the overall mean is their weighted mean.
    for key in ("current", "fitted"):
        per_class = report[key]["per_class"]
        assert set(per_class) == {"box", "disc"} and sum(c["boxes"] for c in per_class.values()) == report["boxes"]
        weighted = sum(c["boxes"] * c["mean_iou"] for c in per_class.values()) / report["boxes"]
        assert weighted == pytest.approx(report[key]["mean_iou"], abs=1e-3)
    line = captured.err.strip().splitlines()[-1]
    assert line.startswith("anchors: [[") and len(yaml.safe_load(line)["anchors"]) == 6
    # The printed key is the training config's own: the network and its export take it.
    from train.config import load_train_config

    path.write_text(path.read_text() + line + "\n")
    config = load_train_config(path)
    assert [list(a) for a in config.anchors] == yaml.safe_load(line)["anchors"]
    assert parse_cfg(config.cfg, classes=2, height=128, width=128, anchors=config.anchors).anchors == \
        tuple(tuple(a) for a in yaml.safe_load(line)["anchors"])
