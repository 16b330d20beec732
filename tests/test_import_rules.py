"""STYLE rules 1 and 7, checked rather than remembered: one device boundary, import-pure modules."""

import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("models", "pipeline", "train", "deploy")
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
