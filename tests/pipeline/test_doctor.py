import json

from pipeline.cli import main
from pipeline.doctor import report


def test_this_machine_runs_the_mock(capsys):
    assert main(["doctor"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["daemon_device"] == "mock" and result["mindx_sdk"]["importable"] is False
    assert "onnxruntime" in result["cpu_runtimes"] and result["packages"]["mindspore"]
    assert main(["doctor", "--require", "ascend"]) == 1
    assert "no MindX SDK" in capsys.readouterr().err


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
