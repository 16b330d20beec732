"""The MindSpore network against OpenCV's Darknet importer (an independent implementation), through the CLI."""

import json

import pytest

from models import verify as verify_module
from models.darknet_cfg import parse_cfg
from models.testing import synthetic_image
from inspector.cli import main


@pytest.mark.parametrize("cfg, size, batch", [
    ("yolov4-tiny", "416", 1),
    ("yolov4-tiny", "416", 3),
    pytest.param("yolov4", "320", 1, marks=pytest.mark.slow),  # full YOLOv4 builds
    pytest.param("yolov4", "320", 2, marks=pytest.mark.slow),
])
def test_cli_verify_agrees_with_opencv(cfg, size, batch, weights_factory, capsys):
    weights = weights_factory(cfg, 3, seed=1)
    code = main(["model", "verify", "--cfg", cfg, "--weights", str(weights), "--size", size,
                 "--batch", str(batch)])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["ok"] and result["batch"] == batch and result["classes"] == 3
    assert result["max_box_diff_px"] <= result["tolerance"]["box_px"]
    assert max(result["max_score_diff"], result["max_objectness_diff"]) <= result["tolerance"]["score"]


def test_verify_catches_a_decode_difference(weights_factory, monkeypatch):
    """OpenCV given scale_x_y 1.0 instead of the cfg's 1.05: the comparison must fail, in the boxes only."""
    cfg = parse_cfg("yolov4-tiny", classes=3)
    original = verify_module.render_cfg
    monkeypatch.setattr(verify_module, "render_cfg", lambda c: original(c).replace("scale_x_y=1.05", "scale_x_y=1.0"))
    result = verify_module.verify(cfg, weights_factory("yolov4-tiny", 3, seed=1), [synthetic_image(300, 500)])
    assert not result.ok
    assert result.max_box_diff_px > 0.1
    assert result.max_score_diff <= result.tolerance["score"]


def test_cli_verify_uses_the_file_class_count(weights_factory, capsys):
    """An 80-class file with the bundled cfg: the importer derives the class count, both sides agree."""
    code = main(["model", "verify", "--cfg", "yolov4-tiny", "--weights", str(weights_factory("yolov4-tiny", 5)),
                 "--size", "256"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["classes"] == 5


def test_cli_verify_refuses_a_backbone_only_file(tmp_path, capsys):
    from models.testing import random_state
    from models.weights import write_darknet_weights

    cfg = parse_cfg("yolov4-tiny", classes=2)
    path = tmp_path / "tiny.conv.15"
    write_darknet_weights(path, cfg, random_state(cfg), last_layer=14)
    assert main(["model", "verify", "--cfg", "yolov4-tiny", "--weights", str(path)]) == 1
    assert "backbone-only" in capsys.readouterr().err
