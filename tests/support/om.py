"""An OM model directory as `inspector convert` prepares it on a machine without atc, with a stand-in OM file."""

from __future__ import annotations

import os
import pathlib


def prepared_om(model_dir: pathlib.Path, out: pathlib.Path, **convert_options) -> pathlib.Path:
    """`convert` with no atc on PATH (it writes the AIPP config, the manifest and model.onnx, the CPU fallback
    the mock device runs), then a stand-in model.om where atc would write the real one."""
    from deploy.convert import convert

    path = os.environ["PATH"]
    os.environ["PATH"] = "/nonexistent"
    try:
        convert(model_dir, out, **convert_options)
    finally:
        os.environ["PATH"] = path
    (out / "model.om").write_bytes(b"stand-in for the OM atc would write")
    return out
