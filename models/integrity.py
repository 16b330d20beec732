"""Is a model directory whole? Checksums and a load of the CPU model, before anything runs on it.

`inspector export` writes `model.sha256` (sha256sum's format) beside the model file and `inspector convert`
carries it along; a copy cut short on its way to a box (a full disk, an interrupted scp) fails here, naming
the file, instead of as a runtime traceback at the first frame.
"""

from __future__ import annotations

import hashlib
import pathlib

from models.errors import ModelError
from models.spec import ModelSpec

CHECKSUM_FILE = "model.sha256"


def sha256_file(path: str | pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(directory: str | pathlib.Path, names: list[str]) -> pathlib.Path:
    directory = pathlib.Path(directory)
    path = directory / CHECKSUM_FILE
    path.write_text("".join(f"{sha256_file(directory / name)}  {name}\n" for name in names), encoding="utf-8")
    return path


def check_checksums(directory: str | pathlib.Path) -> list[str]:
    """Problems with the files `model.sha256` lists (none when it is absent: older exports had none)."""
    directory = pathlib.Path(directory)
    listing = directory / CHECKSUM_FILE
    if not listing.is_file():
        return []
    problems = []
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        name = name.strip().lstrip("*")
        if len(digest) != 64 or not name:
            problems.append(f"{listing}:{number}: not a sha256sum line")
            continue
        path = directory / name
        if not path.is_file():
            problems.append(f"{path}: listed in {CHECKSUM_FILE} but missing")
        elif sha256_file(path) != digest:
            problems.append(f"{path}: checksum differs from {CHECKSUM_FILE} (a truncated or altered copy?)")
    return problems


def manifest_problems(directory: str | pathlib.Path, spec: ModelSpec) -> list[str]:
    """The manifest against itself: a decoded model's scores have one column per class it names (a manifest
    edited to other classes would otherwise fail at the first detection, hours into a run)."""
    tensors = {t.get("name"): t.get("shape") for t in spec.outputs.get("tensors", [])} if spec.outputs else {}
    scores, boxes = tensors.get("scores"), tensors.get("boxes")
    if not spec.outputs.get("decoded") or not scores:
        return []
    where = pathlib.Path(directory) / "manifest.json"
    problems = []
    if isinstance(scores[-1], int) and scores[-1] != len(spec.class_names):
        problems.append(f"{where}: names {len(spec.class_names)} classes ({', '.join(spec.class_names)}), but the "
                        f"model scores {scores[-1]}: the class names do not belong to this model")
    if boxes and boxes[1:2] != scores[1:2]:
        problems.append(f"{where}: boxes {boxes} and scores {scores} disagree on the candidate count")
    return problems


def cpu_model_path(directory: str | pathlib.Path, spec: ModelSpec) -> pathlib.Path:
    """The file the CPU runtimes run (ModelSpec.cpu_model_name) in its directory."""
    return pathlib.Path(directory) / str(spec.cpu_model_name)


def check_cpu_model(directory: str | pathlib.Path, spec: ModelSpec) -> list[str]:
    """The CPU model loads, and its input is what the manifest says (N, 3, input_height, input_width)."""
    path = cpu_model_path(directory, spec)
    if not path.is_file():
        return [f"{path}: the model file manifest.json names is missing"]
    if path.suffix.lower() != ".onnx":
        return []  # MINDIR: loading it needs MindSpore's graph compiler; the runtime checks it at start
    from models.runtime import OnnxRuntimeSession  # onnxruntime: imported only when a check runs

    try:
        session = OnnxRuntimeSession(path, threads=1)
    except ModelError as exc:
        return [str(exc)]
    shape = session.input_shape
    expected = [3, spec.input_height, spec.input_width]
    if len(shape) != 4 or [d if isinstance(d, int) else None for d in shape[1:]] != expected:
        return [f"{path}: input shape {shape} differs from manifest.json's (N, 3, {spec.input_height}, "
                f"{spec.input_width})"]
    problems = []
    outputs = {o.name: o.shape for o in session.session.get_outputs()}
    for tensor in spec.outputs.get("tensors", []) if spec.outputs else []:
        actual = outputs.get(tensor.get("name"))
        if actual is None:
            problems.append(f"{path}: has no output {tensor.get('name')!r} (manifest.json's outputs)")
            continue
        wanted = [d if isinstance(d, int) else None for d in tensor.get("shape", [])[1:]]
        if [d if isinstance(d, int) else None for d in actual[1:]] != wanted:
            problems.append(f"{path}: output {tensor['name']!r} is {actual}, manifest.json says {tensor['shape']}")
    return problems
