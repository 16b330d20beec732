"""The checkpoints in models/zoo are the bundled models' own (the stage-1 checkpoint
beside its ONNX, so that stage 2, and users, can start from its backbone): exported again, each gives the bundled ONNX's
outputs."""

import pathlib

import numpy as np
import pytest

from models.export import export_model
from models.runtime import open_session
from models.spec import ModelSpec

REPO = pathlib.Path(__file__).resolve().parents[2]
PAIRS = [("models/zoo/demo-insulator/best.ckpt", "pipeline/demo/model"),
         ("models/zoo/demo-defect-stage2/best.ckpt", "pipeline/demo/stage2")]


@pytest.mark.parametrize("checkpoint, bundled", PAIRS, ids=["insulator", "defect-stage2"])
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
