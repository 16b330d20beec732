"""STYLE rules 1 and 7, checked rather than remembered: one device boundary, import-pure modules, and one
direction of imports between the layers (the contract in setup.cfg, [importlinter])."""

import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("core", "models", "pipeline", "train", "deploy", "inspector")
ASCEND_ONLY = re.compile(r"^\s*(import|from)\s+(StreamManagerApi|mindx|acl|MxpiDataType_pb2)\b", re.M)
BOUNDARY = REPO / "pipeline" / "devices" / "ascend.py"


def modules():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path


def test_ascend_sdk_is_imported_only_behind_the_device_boundary():
    offenders = [str(p.relative_to(REPO)) for p in modules() if p != BOUNDARY and ASCEND_ONLY.search(p.read_text())]
    assert offenders == []
    # And in the boundary itself only inside a function (indented), never at module level.
    assert not re.search(r"^(import|from)\s+StreamManagerApi", BOUNDARY.read_text(), re.M)


def test_importing_every_module_starts_nothing():
    names = [".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for p in modules()]
    names = [n for n in names if not n.endswith("__main__")]
    code = (
        "import importlib, logging, sys, threading\n"
        f"names = {names!r}\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "assert threading.active_count() == 1, [t.name for t in threading.enumerate()]\n"
        "assert not logging.getLogger().handlers, logging.getLogger().handlers\n"
        "print(len(names))\n")
    result = subprocess.run([sys.executable, "-c", code, "--bogus-argument"], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.strip().splitlines()[-1]) == len(names)


def test_ascend_device_says_what_is_missing():
    from pipeline.devices.base import DeviceError, create_device
    import pytest

    with pytest.raises(DeviceError, match="MindX SDK"):
        create_device("ascend")
    with pytest.raises(DeviceError, match="not in the device registry \\(valid: mock, ascend\\)"):
        create_device("gpu")


def test_imports_go_one_way_between_the_layers():
    # core < models (with the export) < train, pipeline < the release (convert, bundle, plan) < the command
    # line; inside pipeline, the tools above the daemon. A module that imports a layer above it (even lazily,
    # inside a function) breaks the contract and this test.
    lint = pathlib.Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout  # the layers; the mock and the Ascend device apart; pipeline


def test_the_contract_can_fail(tmp_path):
    # The same contract on a copy of the tree with one import against the direction: broken, and named.
    import shutil

    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.onnx", "*.mp4"))
    shutil.copy(REPO / "setup.cfg", tmp_path / "setup.cfg")
    target = tmp_path / "models" / "spec.py"
    target.write_text(target.read_text() + "\n\ndef _planted():\n    from pipeline import daemon  # noqa\n")
    lint = pathlib.Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "models.spec -> pipeline.daemon" in result.stdout, result.stdout[-3000:]
    # And the devices: the Ascend device borrowing the mock's code is named too.
    target.write_text(target.read_text().replace("    from pipeline import daemon  # noqa\n", "    pass\n"))
    ascend = tmp_path / "pipeline" / "devices" / "ascend.py"
    ascend.write_text(ascend.read_text() + "\n\ndef _planted():\n    from pipeline.devices.mock import queues  # noqa\n")
    result = subprocess.run([str(lint), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "pipeline.devices.ascend -> pipeline.devices.mock.queues" in result.stdout, \
        result.stdout[-3000:]
    # And inside pipeline: the daemon reaching up to a tool is named.
    ascend.write_text(ascend.read_text().replace("    from pipeline.devices.mock import queues  # noqa\n", "    pass\n"))
    daemon = tmp_path / "pipeline" / "daemon.py"
    daemon.write_text(daemon.read_text() + "\n\ndef _planted():\n    from pipeline.tools import bench  # noqa\n")
    result = subprocess.run([str(lint), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "pipeline.daemon -> pipeline.tools.bench" in result.stdout, result.stdout[-3000:]
