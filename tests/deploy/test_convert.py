"""`inspector convert`: the atc command and AIPP (golden files), the pre-check, and the run-and-check path."""

import json
import os
import pathlib
import shlex
import stat

import pytest

onnx = pytest.importorskip("onnx")  # the [export] extra
helper = onnx.helper

from deploy.convert import ConvertError, atc_command, convert
from models.export import output_contract
from models.aipp import AippConfig
from models.darknet_cfg import parse_cfg
from models.spec import ModelSpec
from inspector.cli import main

GOLDEN = pathlib.Path(__file__).with_name("golden")


@pytest.mark.parametrize("arch", ["yolov4-tiny", "yolov4"])
@pytest.mark.parametrize("size", [416, 608])
def test_atc_command_and_aipp_match_the_reviewed_golden_files(arch, size):
    cfg = parse_cfg(arch, classes=2, height=size, width=size)
    spec = ModelSpec.from_cfg(cfg, ["insulator", "defect"], model_file="model.onnx", model_format="onnx",
                              outputs=output_contract(cfg, False, None), batch_gears=(1, 2, 4, 8))
    command = shlex.join(atc_command(spec, "model.onnx", "model", "aipp.cfg")) + "\n"
    assert command == (GOLDEN / f"{arch}-{size}.atc.txt").read_text()
    assert AippConfig.from_spec(spec).render(size, size) == (GOLDEN / f"{arch}-{size}.aipp.cfg").read_text()


def test_convert_without_atc_writes_everything_and_says_so(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    out = tmp_path / "om"
    assert main(["convert", "--model", str(tiny_model_dir), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["ran_atc"] is False and "conversion was NOT run" in printed["message"]
    assert {p.name for p in out.iterdir()} >= {"aipp.cfg", "atc.sh", "model.onnx", "manifest.json", "labels.txt"}
    assert "--input_shape=images:-1,3,320,320" in (out / "atc.sh").read_text()
    spec = ModelSpec.load(out)
    assert (spec.model_file, spec.model_format, spec.cpu_model_file) == ("model.om", "om", "model.onnx")
    assert spec.aipp["matrix"][0] == [298, 0, 409] and spec.aipp["rbuv_swap"] is False
    # Asked to require atc: a clear failure.
    assert main(["convert", "--model", str(tiny_model_dir), "--out", str(out), "--require-atc"]) == 1
    assert "atc is not on PATH" in capsys.readouterr().err


def test_convert_runs_atc_and_checks_its_result(tiny_model_dir, tmp_path):
    """A stand-in `atc` records its arguments and writes an OM: the command is run as rendered, the OM gets
    mode 640. A failing `atc` is reported with its last lines."""
    log = tmp_path / "args.txt"
    fake = tmp_path / "atc"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {log}\necho OM > model.om\n")
    fake.chmod(0o755)
    result = convert(tiny_model_dir, tmp_path / "om", atc=str(fake), gears=(1, 2, 4))
    assert result.ran_atc and result.om_file.endswith("model.om")
    assert stat.S_IMODE(os.stat(result.om_file).st_mode) == 0o640
    assert "--dynamic_batch_size=1,2,4" in log.read_text()
    broken = tmp_path / "atc-broken"
    broken.write_text("#!/bin/sh\necho 'E19010: No parser is registered for Op [planted]' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(ConvertError, match="(?s)atc failed \\(exit 1\\).*E19010"):
        convert(tiny_model_dir, tmp_path / "om2", atc=str(broken))


def test_convert_refuses_what_atc_would_reject(tiny_model_dir, tmp_path):
    source = tmp_path / "planted"
    source.mkdir()
    for name in ("manifest.json", "labels.txt", "network.cfg"):
        (source / name).write_bytes((tiny_model_dir / name).read_bytes())
    model = onnx.load(str(tiny_model_dir / "model.onnx"))
    model.graph.node.append(helper.make_node("Shape", ["images"], ["s"], name="dyn_shape"))
    model.graph.node.append(helper.make_node("Cast", ["s"], ["sc"], name="dyn_cast", to=1))
    model.graph.node.append(helper.make_node("Resize", ["images", "", "sc"], ["r"], name="dyn_resize"))
    model.graph.node.append(helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["n"], name="nms"))
    onnx.save(model, str(source / "model.onnx"))
    with pytest.raises(ConvertError) as info:
        convert(source, tmp_path / "om")
    message = str(info.value)
    assert "node 'dyn_resize' (Resize): scales/sizes computed at run time" in message
    assert "node 'nms' (NonMaxSuppression): operator not in the atc allow-list" in message
    assert not (tmp_path / "om").exists()  # nothing half-written


def test_convert_refuses_a_mindir_export(tiny_model_dir, tmp_path):
    data = json.loads((tiny_model_dir / "manifest.json").read_text())
    data["model_format"], data["model_file"] = "mindir", "model.mindir"
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ConvertError, match="names a 'mindir' model"):
        convert(tmp_path, tmp_path / "om")


def test_convert_refuses_to_write_over_the_export(tiny_model_dir, tmp_path, capsys):
    import shutil

    export = tmp_path / "export"
    shutil.copytree(tiny_model_dir, export)
    before = {p.name: p.read_bytes() for p in export.iterdir()}
    for out in (export, tmp_path / "x" / ".." / "export"):
        assert main(["convert", "--model", str(export), "--out", str(out)]) != 0
        assert "it is the export being converted" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in export.iterdir()} == before  # untouched


def test_the_mock_runs_a_converted_directory(tiny_model_dir, tmp_path, monkeypatch):
    """The same directory serves both devices: the mock takes the ONNX kept beside the OM."""
    from pipeline.devices.mock.device import cpu_model_file

    monkeypatch.setenv("PATH", "/nonexistent")
    out = tmp_path / "om"
    convert(tiny_model_dir, out)
    spec = ModelSpec.load(out)
    assert spec.model_format == "om" and cpu_model_file(out, spec, "modelPath") == out / "model.onnx"


def test_the_mock_applies_the_aipp_recorded_in_the_om_manifest(tiny_model_dir, tmp_path, monkeypatch):
    """Converted with BT.709: the mock emulates exactly that AIPP, not the default."""
    from models.aipp import YUV_MATRICES, AippConfig

    monkeypatch.setenv("PATH", "/nonexistent")
    convert(tiny_model_dir, tmp_path / "om", yuv_matrix="bt709-limited")
    aipp = AippConfig.for_model(ModelSpec.load(tmp_path / "om"))
    assert aipp.matrix == YUV_MATRICES["bt709-limited"][0] and aipp.yuv_matrix == "bt709-limited"
    assert AippConfig.for_model(ModelSpec.load(tiny_model_dir)) == AippConfig.from_spec(ModelSpec.load(tiny_model_dir))
