"""Shared fixtures. MindSpore needs ONEDNN_MAX_CPU_ISA before its import (models.msenv sets it)."""

import os
import pathlib

import pytest

os.environ.setdefault("GLOG_v", "3")
from models import msenv  # noqa: E402,F401

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: tests that read ../shared are skipped")
    return SHARED
