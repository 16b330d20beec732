"""`inspector convert`: an exported model directory -> everything `atc` needs, the exact command, and the OM.

Output directory (a model directory the daemon runs on either device):
- `aipp.cfg`: static AIPP rendered from the manifest's normalisation (models/aipp.py: BT.601 limited range,
  rbuv_swap false for NV12, rows in the network's colour order), so the OM takes the decoder's NV12 directly;
- `atc.sh`: the exact `atc` command, runnable on a machine with CANN;
- `model.onnx`: the exported model, kept as the CPU fallback the mock device runs;
- `manifest.json`: the OM's manifest: model_file model.om, gears, AIPP, output contract, cpu_model_file;
- `model.om`: when `atc` is on PATH and succeeds.

Before `atc` runs, the ONNX is checked for what `atc` is known to reject (models/onnx_check.py), each
offending node named.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import shlex
import shutil
import subprocess

from core.errors import UserError
from models.aipp import DEFAULT_MATRIX, AippConfig
from models.export import INPUT_NAME  # the ONNX input the export names
from models.integrity import check_checksums, write_checksums
from models.spec import CFG_NAME, ModelSpec

logger = logging.getLogger(__name__)

DEFAULT_SOC = "Ascend310"
OUTPUT_TYPES = ("FP16", "FP32")


class ConvertError(UserError):
    """The model cannot be converted as asked; the message says which file or node and why."""


@dataclasses.dataclass(frozen=True)
class ConvertResult:
    directory: str
    command: list[str]
    ran_atc: bool
    om_file: str | None
    message: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"command_line": shlex.join(self.command)}


def atc_command(spec: ModelSpec, model_path: str, output_stem: str, aipp_path: str, soc_version: str = DEFAULT_SOC,
                output_type: str = "FP32", framework: int = 5) -> list[str]:
    """The `atc` argument list for this model. Dynamic batch: `-1` batch in --input_shape and the manifest's
    gears in --dynamic_batch_size; a fixed-batch export (one gear, no symbolic batch) converts as it is."""
    if output_type not in OUTPUT_TYPES:
        raise ConvertError(f"output type {output_type!r} is not one of {', '.join(OUTPUT_TYPES)}")
    tensors = spec.outputs.get("tensors") or []
    fixed = [t["shape"][0] for t in tensors if isinstance(t["shape"][0], int)]
    batch = str(fixed[0]) if fixed else "-1"
    command = ["atc", f"--model={model_path}", f"--framework={framework}", f"--output={output_stem}",
               "--input_format=NCHW", f"--input_shape={INPUT_NAME}:{batch},3,{spec.input_height},{spec.input_width}"]
    if not fixed:
        command.append(f"--dynamic_batch_size={','.join(str(g) for g in spec.batch_gears)}")
    command += [f"--soc_version={soc_version}", f"--insert_op_conf={aipp_path}", f"--output_type={output_type}",
                "--log=error"]
    return command


def convert(model_dir: str | pathlib.Path, out_dir: str | pathlib.Path, *, soc_version: str = DEFAULT_SOC,
            output_type: str = "FP32", gears: tuple[int, ...] | None = None, yuv_matrix: str = DEFAULT_MATRIX,
            require_atc: bool = False, atc: str | None = None) -> ConvertResult:
    import onnx

    from models.onnx_check import check_onnx_for_atc

    source = pathlib.Path(model_dir)
    out = pathlib.Path(out_dir)
    if out.resolve() == source.resolve():
        # The converted directory's manifest names the OM: written over the export it would end the export.
        raise ConvertError(f"--out {out_dir}: it is the export being converted ({model_dir}); give the converted "
                           f"model its own directory (e.g. {source.name}-om beside it)")
    spec = ModelSpec.load(source)
    if spec.model_format != "onnx":
        raise ConvertError(f"{source}: manifest.json names a {spec.model_format!r} model; convert takes an ONNX "
                           "export (`inspector export --format onnx`; AIR exports need an Ascend host)")
    if not spec.outputs.get("decoded"):
        raise ConvertError(f"{source}: a raw-head export cannot run in the daemon; export without --raw")
    onnx_path = source / spec.model_file
    damaged = check_checksums(source)
    if damaged:
        raise ConvertError("\n".join(damaged))
    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # OSError, protobuf DecodeError, ValueError: all mean "not a readable ONNX file"
        raise ConvertError(f"{onnx_path}: cannot read the ONNX model: {exc}") from exc
    problems = check_onnx_for_atc(model)
    if problems:
        raise ConvertError(f"{onnx_path}: atc would refuse this model:\n  " + "\n  ".join(map(str, problems)))
    if gears:
        if any(isinstance(t["shape"][0], int) for t in spec.outputs.get("tensors", [])):
            raise ConvertError(f"{source}: the export has a fixed batch; re-export without --batch to use gears")
        spec = dataclasses.replace(spec, batch_gears=tuple(gears))

    out.mkdir(parents=True, exist_ok=True)
    aipp = AippConfig.from_spec(spec, yuv_matrix)
    aipp_path = out / "aipp.cfg"
    aipp_path.write_text(aipp.render(spec.input_width, spec.input_height), encoding="utf-8")
    cpu_model = out / "model.onnx"
    if cpu_model.resolve() != onnx_path.resolve():
        shutil.copyfile(onnx_path, cpu_model)
    for extra in (CFG_NAME, "labels.txt"):
        if (source / extra).is_file() and (out / extra).resolve() != (source / extra).resolve():
            shutil.copyfile(source / extra, out / extra)
    # Paths relative to the output directory, so atc.sh runs wherever the directory is copied.
    command = atc_command(spec, "model.onnx", "model", "aipp.cfg", soc_version, output_type)
    (out / "atc.sh").write_text("#!/bin/sh\n# Convert model.onnx to model.om on a machine with CANN (source its "
                                "set_env.sh first).\nset -e\ncd \"$(dirname \"$0\")\"\n" + shlex.join(command) + "\n",
                                encoding="utf-8")
    os.chmod(out / "atc.sh", 0o755)
    om_spec = dataclasses.replace(spec, model_file="model.om", model_format="om", cpu_model_file="model.onnx",
                                  aipp=dataclasses.asdict(aipp) | {"soc_version": soc_version,
                                                                   "output_type": output_type})
    om_spec.save(out)
    write_checksums(out, ["model.onnx"])  # model.om is added once atc has written it

    atc_binary = atc or shutil.which("atc")
    if atc_binary is None:
        message = (f"atc is not on PATH: conversion was NOT run. The files and the exact command are in {out}; "
                   f"run {out / 'atc.sh'} on a machine with CANN (Ascend toolkit) installed.")
        if require_atc:
            raise ConvertError(message)
        logger.warning("%s", message)
        return ConvertResult(str(out), command, False, None, message)
    logger.info("running %s", shlex.join(command))
    completed = subprocess.run([atc_binary] + command[1:], cwd=out, capture_output=True, text=True)
    om_path = out / "model.om"
    if completed.returncode != 0 or not om_path.is_file():
        tail = (completed.stdout + completed.stderr).strip().splitlines()[-20:]
        raise ConvertError(f"atc failed (exit {completed.returncode}); its last lines:\n  " + "\n  ".join(tail))
    os.chmod(om_path, 0o640)  # the MindX SDK refuses an OM readable by others or writable by the group
    write_checksums(out, ["model.onnx", "model.om"])
    return ConvertResult(str(out), command, True, str(om_path), f"converted: {om_path}")
