"""Shared fixtures. MindSpore needs ONEDNN_MAX_CPU_ISA before its import (models.msenv sets it)."""

import os
import pathlib

import pytest

os.environ.setdefault("GLOG_v", "3")
from models import msenv  # noqa: E402,F401
from models.darknet_cfg import parse_cfg  # noqa: E402
from models.testing import random_state  # noqa: E402
from models.weights import write_darknet_weights  # noqa: E402
from tests.support.disk import small_disk  # noqa: E402,F401 (a fixture: a real small file system to fill)

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: tests that read ../shared are skipped")
    return SHARED


@pytest.fixture(scope="session")
def weights_factory(tmp_path_factory):
    """Deterministic random .weights files written by the test itself (no download), cached per session."""
    cache: dict = {}

    def make(cfg_name: str, classes: int, seed: int = 0) -> pathlib.Path:
        key = (cfg_name, classes, seed)
        if key not in cache:
            cfg = parse_cfg(cfg_name, classes=classes)
            path = tmp_path_factory.mktemp("weights") / f"{cfg_name}-{classes}-{seed}.weights"
            write_darknet_weights(path, cfg, random_state(cfg, seed))
            cache[key] = path
        return cache[key]

    return make


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> pathlib.Path:
    """This machine's runtime dependency wheels, downloaded once per session (pip's cache makes it cheap after the
    install) and handed to every test bundle as --find-links."""
    from deploy.bundle import Target, build_wheel, download_dependencies, runtime_requirements

    directory = tmp_path_factory.mktemp("wheelhouse")
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    download_dependencies(runtime_requirements(wheel), Target.host(), directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> pathlib.Path:
    """YOLOv4-tiny at quarter width, 320x320, for ['insulator', 'defect'] with deterministic random weights,
    exported to ONNX (dynamic batch, gears 1,2,4,8): the model the daemon tests run. Committed
    (tests/support/models, made by tests/support/make_models.py) so the daemon's tests need no MindSpore;
    a copy, as tests may change it."""
    return committed_model("tiny", tmp_path_factory)


@pytest.fixture(scope="session")
def stage2_model_dir(tmp_path_factory) -> pathlib.Path:
    """A second-stage export (quarter-width YOLOv4-tiny at 96x96 for ['defect'], deterministic random weights)
    whose manifest says where it looks, as `inspector train` with data.crops writes it. Committed, as above."""
    return committed_model("stage2", tmp_path_factory)


def committed_model(name: str, tmp_path_factory) -> pathlib.Path:
    import shutil

    from tests.support.make_models import MODELS_DIR

    out = tmp_path_factory.mktemp(name) / name
    shutil.copytree(MODELS_DIR / name, out)
    return out
