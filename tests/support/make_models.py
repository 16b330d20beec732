"""The daemon tests' models, committed under tests/support/models so that those tests need no MindSpore: a
first stage (insulator, defect; 320x320) and a second stage (defect on crops of insulators; 96x96), both
quarter-width YOLOv4-tiny (models/darknet/yolov4-tiny-quarter.cfg, 1.5 MB each) with deterministic random
weights, exported to ONNX with dynamic batch. tests/deploy/test_test_models.py exports them again and compares.
Regenerate (MindSpore needed) after a change to the export: `python -m tests.support.make_models`.
"""

from __future__ import annotations

import pathlib
import tempfile

MODELS_DIR = pathlib.Path(__file__).resolve().parent / "models"
CFG = "yolov4-tiny-quarter"
STAGE2_CROPS = {"parents": ["insulator"], "margin": 0.25, "max_aspect": 1.5, "overlap": 0.25, "min_side": 32,
                "max_side": 0.3}
# name: (classes, weights seed, input size, manifest overrides)
MODELS = {"tiny": (["insulator", "defect"], 4, (320, 320), None),
          "stage2": (["defect"], 7, (96, 96), {"crops": STAGE2_CROPS})}


def export(name: str, out: pathlib.Path) -> pathlib.Path:
    from models.export import export_model
    from models.darknet_cfg import parse_cfg
    from models.testing import random_state
    from models.weights import write_darknet_weights

    classes, seed, size, overrides = MODELS[name]
    cfg = parse_cfg(CFG, classes=len(classes))
    with tempfile.TemporaryDirectory() as scratch:
        weights = pathlib.Path(scratch) / "random.weights"
        write_darknet_weights(weights, cfg, random_state(cfg, seed))
        export_model(CFG, weights, classes, "onnx", out, size=size, spec_overrides=overrides)
    return out


if __name__ == "__main__":  # pragma: no cover
    for model in MODELS:
        print(export(model, MODELS_DIR / model))
