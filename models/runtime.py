"""CPU inference runtimes for an exported model, selected by a `type` key.

Measured on this project's 2-core machine (docs/models.md, `inspector model bench`): ONNX Runtime runs the
exported YOLOv4-tiny 1.24-1.44x faster than MindSpore loading the MINDIR, so it is the default; on full YOLOv4
MindSpore is 8-14% faster, and is chosen by exporting `--format mindir` (the runtime follows the file).
"""

from __future__ import annotations

import pathlib
from typing import Callable

import numpy as np

from models.errors import ModelError

DEFAULT_RUNTIME = "onnxruntime"


class RuntimeSession:
    """One loaded model. `run(images)` takes an NCHW float32 batch and returns the outputs in contract order."""

    name = "base"

    def run(self, images: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError


class OnnxRuntimeSession(RuntimeSession):
    name = "onnxruntime"

    def __init__(self, path: pathlib.Path, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: ONNX Runtime's default (one per core)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime's own types (InvalidProtobuf, Fail, ...): a damaged file
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({reason[:200]})") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = self.session.get_inputs()[0].shape  # symbolic dimensions are strings
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(images, np.float32)})


class MindSporeSession(RuntimeSession):
    name = "mindspore"

    def __init__(self, path: pathlib.Path, threads: int = 0):
        from models import msenv  # noqa: F401
        import mindspore as ms
        from mindspore import nn

        ms.set_context(mode=ms.GRAPH_MODE)
        if threads:
            ms.set_context(runtime_num_threads=threads)  # a deprecated alias, kept for 2.x
        self.cell = nn.GraphCell(ms.load(str(path)))
        self._ms = ms

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        outputs = self.cell(self._ms.Tensor(np.ascontiguousarray(images, np.float32)))
        if not isinstance(outputs, (tuple, list)):
            outputs = (outputs,)
        return [o.asnumpy() for o in outputs]


RUNTIMES: dict[str, tuple[str, Callable[..., RuntimeSession]]] = {
    "onnxruntime": (".onnx", OnnxRuntimeSession),
    "mindspore": (".mindir", MindSporeSession),
}


def open_session(path: str | pathlib.Path, runtime: str | None = None, threads: int = 0) -> RuntimeSession:
    """Open `path` with `runtime` (default: chosen by the file's suffix)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if runtime is None:
        runtime = next((key for key, (suffix, _) in RUNTIMES.items() if suffix == path.suffix.lower()), None)
        if runtime is None:
            raise ModelError(f"{path}: no CPU runtime reads {path.suffix!r} files "
                             f"(known: {', '.join(s for s, _ in RUNTIMES.values())})")
    if runtime not in RUNTIMES:
        raise ModelError(f"runtime {runtime!r} is not in the runtime registry (valid: {', '.join(RUNTIMES)})")
    suffix, factory = RUNTIMES[runtime]
    if path.suffix.lower() != suffix:
        raise ModelError(f"{path}: runtime {runtime!r} reads {suffix} files")
    return factory(path, threads)
