import pathlib

import pytest

from models.darknet_cfg import parse_cfg
from models.testing import random_state
from models.weights import write_darknet_weights


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
