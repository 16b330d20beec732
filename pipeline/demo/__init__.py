"""The embedded default: a bundled clip (8 held-out CPLID photos, see make_clip.py) and the bundled insulator
model (pipeline/demo/model, trained with train/configs/demo-insulator.yaml), followed by the bundled defect
model on crops of its insulators when pipeline/demo/stage2 is there (train/configs/demo-defect-stage2.yaml;
docs/cascade.md).

Should the model directory be missing (a trimmed install), the demo exports YOLOv4-tiny with deterministic
random weights into a cache directory on first use, and says so: the pipeline runs, the detections mean
nothing.
"""

from __future__ import annotations

import logging
import os
import pathlib

import yaml

from pipeline.config import DaemonConfig, parse_config

logger = logging.getLogger(__name__)

DEMO_DIR = pathlib.Path(__file__).resolve().parent
DEMO_CLASSES = ("insulator", "defect")
DEMO_SIZE = 416


def cache_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "inspector"


def demo_model_dir() -> pathlib.Path:
    bundled = DEMO_DIR / "model"
    if (bundled / "manifest.json").is_file():
        return bundled
    generated = cache_dir() / f"demo-untrained-yolov4-tiny-{DEMO_SIZE}"
    if not (generated / "manifest.json").is_file():
        logger.warning("the trained demo model is missing from %s: exporting YOLOv4-tiny with deterministic "
                       "random weights to %s (its detections are meaningless)", bundled, generated)
        export_untrained(generated)
    return generated


def export_untrained(out: pathlib.Path) -> None:
    import tempfile

    from models.export import export_model
    from models.darknet_cfg import parse_cfg
    from models.testing import random_state
    from models.weights import write_darknet_weights

    cfg = parse_cfg("yolov4-tiny", classes=len(DEMO_CLASSES), height=DEMO_SIZE, width=DEMO_SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        weights = pathlib.Path(tmp) / "untrained.weights"
        write_darknet_weights(weights, cfg, random_state(cfg, seed=0))
        export_model("yolov4-tiny", weights, list(DEMO_CLASSES), "onnx", out, size=(DEMO_SIZE, DEMO_SIZE))


def demo_config(output_directory: str = "inspector-out") -> DaemonConfig:
    data = yaml.safe_load((DEMO_DIR / "demo.yaml").read_text(encoding="utf-8"))
    data["model"] = str(demo_model_dir())
    stage2 = DEMO_DIR / data["stage2"]["model"]
    if data["model"] == str(DEMO_DIR / "model") and (stage2 / "manifest.json").is_file():
        data["stage2"]["model"] = str(stage2)
    else:  # a trimmed install: the untrained stand-in's boxes would crop nothing worth a second look
        del data["stage2"]
    data["output"] = {"directory": str(pathlib.Path(output_directory).resolve())}
    return parse_config(data, str(DEMO_DIR / "demo.yaml"), DEMO_DIR)
