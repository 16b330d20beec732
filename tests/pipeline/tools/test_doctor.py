import importlib.util
import json
import sys

import pytest

from inspector.cli import main
from pipeline.tools.doctor import report

SDK_HERE = importlib.util.find_spec("StreamManagerApi") is not None


@pytest.mark.skipif(SDK_HERE, reason="the MindX SDK is installed here (an Atlas box): see test_on_a_box")
def test_this_machine_runs_the_mock(capsys):
    assert main(["doctor"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["daemon_device"] == "mock" and result["mindx_sdk"]["importable"] is False
    assert "onnxruntime" in result["cpu_runtimes"]
    assert main(["doctor", "--require", "ascend"]) == 1
    assert "no MindX SDK" in capsys.readouterr().err


@pytest.mark.skipif(not SDK_HERE, reason="no MindX SDK on this machine")
def test_on_a_box(capsys):
    assert main(["doctor"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mindx_sdk"]["importable"] is True, result["mindx_sdk"]


def test_doctor_says_why_the_sdk_does_not_import(tmp_path, monkeypatch):
    # What a box without `source set_env.sh` shows: the module is there, its shared library is not.
    (tmp_path / "StreamManagerApi.py").write_text(
        "raise ImportError('libstreammanager.so: cannot open shared object file: No such file or directory')\n")
    (tmp_path / "MxpiDataType_pb2.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("StreamManagerApi", "MxpiDataType_pb2"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    result = report(str(tmp_path / "no-cann"), str(tmp_path))
    assert "libstreammanager.so: cannot open shared object file" in result["mindx_sdk"]["error"]
    assert "libstreammanager.so" in result["why"]


def test_cann_atc_and_npus_are_found_where_they_are(tmp_path, monkeypatch):
    home = tmp_path / "Ascend"
    (home / "ascend-toolkit/latest").mkdir(parents=True)
    (home / "ascend-toolkit/latest/version.cfg").write_text("runtime_running_version=[7.0.0:7.0.0]\nversion=7.0.0\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "atc").write_text("#!/bin/sh\necho 'ATC version 7.0.0'\n")
    (bin_dir / "atc").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "davinci0").touch()
    (dev / "davinci_manager").touch()
    result = report(str(home), str(dev))
    assert result["cann"]["installed"] and "7.0.0" in result["cann"]["version"]
    assert result["cann"]["atc_version"] == ["ATC version 7.0.0"]
    assert result["npus"]["devices"] == ["davinci0"]
    # NPUs alone are not enough: without the SDK the daemon still runs the mock.
    assert result["daemon_device"] == "mock" and result["why"].startswith("no MindX SDK")


def test_require_ascend_fails_for_a_user_who_does_not_own_the_sdk(tmp_path, monkeypatch, capsys):
    """SDK importable, an NPU visible, but this process's user is not the SDK's owner: the SDK would refuse
    InitManager, so doctor says the Ascend device cannot run, and why."""
    for name in ("StreamManagerApi", "MxpiDataType_pb2"):
        (tmp_path / f"{name}.py").write_text("InProtobufVector = MxProtobufIn = StreamManagerApi = StringVector = 0\n")
        # setitem, not delitem: the stand-in modules this test imports are removed again afterwards.
        monkeypatch.setitem(sys.modules, name, None)
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(tmp_path))
    sdk = tmp_path / "mxVision"
    (sdk / "lib").mkdir(parents=True)
    (sdk / "lib/libmxbase.so").write_bytes(b"x")
    monkeypatch.setenv("MX_SDK_HOME", str(sdk))
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "davinci0").touch()
    assert report(str(tmp_path / "no-cann"), str(dev))["daemon_device"] == "ascend"  # the owner runs it
    import os

    monkeypatch.setattr(os, "getuid", lambda: 4242)
    result = report(str(tmp_path / "no-cann"), str(dev))
    assert result["daemon_device"] == "mock"
    assert "libmxbase.so belongs to uid" in result["why"] and "run the daemon as the user that installed" in \
        result["why"]
