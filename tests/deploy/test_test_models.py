"""The committed test models (tests/support/models) are what the export writes today: a change to the export or
the manifest shows here first (regenerate with `python -m tests.support.make_models`)."""

import json

import numpy as np
import pytest

from tests.support.make_models import MODELS, MODELS_DIR, export


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_committed_test_model_is_todays_export(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    fresh = export(name, tmp_path / name)
    committed = MODELS_DIR / name
    assert json.loads((fresh / "manifest.json").read_text()) == json.loads((committed / "manifest.json").read_text())
    for text in ("labels.txt", "network.cfg"):
        assert (fresh / text).read_text() == (committed / text).read_text(), text
    manifest = json.loads((committed / "manifest.json").read_text())
    batch = np.random.default_rng(1).random((2, 3, manifest["input_height"], manifest["input_width"]),
                                            dtype=np.float32)
    outputs = [ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {
        "images": batch}) for d in (fresh, committed)]
    for new, old in zip(*outputs):
        np.testing.assert_allclose(new, old, rtol=1e-4, atol=1e-4)
