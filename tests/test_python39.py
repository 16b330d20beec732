"""The daemon side runs on Python 3.9 (the MindX SDK's Python on Atlas boxes). Checked twice:
- statically over the whole tree: vermin finds syntax and standard-library calls newer than 3.9, and with
  --eval-annotations the pydantic models' annotations (pydantic evaluates them, so `X | None` would fail on 3.9
  even under `from __future__ import annotations`). Training and export refuse older Pythons at their commands
  (core/extras.py), but their modules are imported by the command line on the box too;
- for real, where a CPython 3.9 is installed (pyenv's, or python3.9 on PATH): the package installed into a
  fresh 3.9 venv with what pip resolves for 3.9 that day, then `validate`, `render`, `plan` and the daemon on
  its embedded demo, run by that interpreter."""

import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("core", "models", "pipeline", "train", "deploy", "inspector")


def vermin(*arguments) -> subprocess.CompletedProcess:
    tool = pathlib.Path(sys.executable).with_name("vermin")
    return subprocess.run([str(tool), "--target=3.9-", "--violations", "--no-tips", "--no-parse-comments",
                           *arguments], cwd=REPO, capture_output=True, text=True, timeout=300)


def pydantic_modules() -> list[str]:
    return [str(p.relative_to(REPO)) for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))
            if "from pydantic import" in p.read_text()]


def test_every_module_runs_on_python_39():
    result = vermin(*PACKAGES)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_pydantic_annotations_evaluate_on_python_39():
    modules = pydantic_modules()
    assert "pipeline/config.py" in modules and "core/configfile.py" in modules
    result = vermin("--eval-annotations", "--feature", "union-types", *modules)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_check_can_fail(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from __future__ import annotations\nfrom typing import Optional\nfrom pydantic import "
                       "BaseModel\n\n\nclass Camera(BaseModel):\n    url: str | None = None\n")
    assert vermin("--eval-annotations", "--feature", "union-types", str(planted)).returncode != 0  # the trap
    planted.write_text("def f(x):\n    match x:\n        case 1:\n            return 2\n")
    assert vermin(str(planted)).returncode != 0


def test_the_daemon_side_imports_no_training_stack():
    # `pip install inspector` brings no MindSpore: the daemon's commands must not import it (nor the export
    # and training modules that need it) on their way to running.
    code = (
        "import importlib, sys\n"
        "from inspector.cli import build_parser\n"
        "build_parser()\n"
        "for name in ['pipeline.daemon', 'pipeline.commands', 'pipeline.tools.doctor', 'pipeline.preflight', 'deploy.plan',\n"
        "             'pipeline.devices.mock.device', 'pipeline.devices.ascend', 'models.runtime', 'pipeline.demo']:\n"
        "    importlib.import_module(name)\n"
        "heavy = [m for m in ('mindspore', 'onnx', 'pycocotools', 'matplotlib', 'tqdm', 'train.trainer', 'models.export')\n"
        "         if m in sys.modules]\n"
        "print(heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


def python39() -> str | None:
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))
    return found[-1] if found else shutil.which("python3.9")


@pytest.mark.slow
def test_the_daemon_installs_and_runs_on_a_real_python_39(tmp_path):
    interpreter = python39()
    if interpreter is None:
        pytest.skip("no CPython 3.9 here (pyenv install 3.9, or python3.9 on PATH)")
    venv = tmp_path / "venv"
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run([str(venv / "bin/pip"), "install", "-q", str(REPO)], capture_output=True, text=True,
                             timeout=1200)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    inspector = str(venv / "bin/inspector")
    version = subprocess.run([str(venv / "bin/python"), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    assert version == "(3, 9)"
    demo = REPO / "pipeline/demo/demo.yaml"
    for command in (["validate", "--config", str(demo)], ["render", "--config", str(demo)],
                    ["plan", "--codec", "h265"]):
        result = subprocess.run([inspector, *command], capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr[-3000:])
    out = tmp_path / "out"
    run = subprocess.run([inspector, "run", "--duration", "6", "--output", str(out)], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout)["cameras"][0]["processed"] > 0
    lines = (out / "detections.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line)["camera"] == "demo" for line in lines)
