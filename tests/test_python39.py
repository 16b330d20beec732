"""The daemon side runs on Python 3.9 (the MindX SDK's Python on Atlas boxes). No 3.9 interpreter can be
installed here, so this is checked statically: vermin finds syntax and standard-library calls newer than 3.9,
and with --eval-annotations the pydantic models' annotations (pydantic evaluates them, so `X | None` would
fail on 3.9 even under `from __future__ import annotations`). A real 3.9 run happens on the box
(docs/deploy.md). The whole tree is checked: training and export refuse older Pythons at their commands
(core/extras.py), but their modules are imported by the command line on the box too."""

import pathlib
import subprocess
import sys

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
        "for name in ['pipeline.daemon', 'pipeline.commands', 'pipeline.doctor', 'pipeline.preflight', 'deploy.plan',\n"
        "             'pipeline.devices.mock.device', 'pipeline.devices.ascend', 'models.runtime', 'pipeline.demo']:\n"
        "    importlib.import_module(name)\n"
        "heavy = [m for m in ('mindspore', 'onnx', 'pycocotools', 'matplotlib', 'tqdm', 'train.trainer', 'deploy.export')\n"
        "         if m in sys.modules]\n"
        "print(heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"
