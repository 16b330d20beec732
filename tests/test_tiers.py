"""The tiers keep their promises (README "Tests"): the unit tier and the daemon's tests pass where only
`pip install .` (the daemon: no MindSpore, no onnx, no pycocotools) and pytest are installed, as on a box or a
developer's laptop. The rest of the suite needs the [test] extra."""

import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_unit_tier_and_the_daemons_tests_need_only_the_daemons_install(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run([str(venv / "bin/pip"), "install", "-q", "-c", str(REPO / "constraints.txt"),
                              str(REPO), "pytest"], capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    python = str(venv / "bin/python")
    absent = subprocess.run([python, "-c", "import importlib.util as u; print([m for m in ('mindspore', 'onnx', "
                                           "'pycocotools') if u.find_spec(m)])"], capture_output=True, text=True)
    assert absent.stdout.strip() == "[]"
    for selection in (["-m", "unit"], ["-m", "not slow", "tests/pipeline"]):
        run = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", "--tb=short",
                              *selection], cwd=REPO, capture_output=True, text=True, timeout=1800)
        lines = run.stdout.splitlines()  # the failing tests' names first, then what they raised
        failures = ([line for line in lines if line.startswith(("FAILED", "ERROR"))]
                    + [line for line in lines if line.startswith("E ")])
        assert run.returncode == 0, "\n".join([" ".join(selection)] + failures[:60] + [run.stderr[-2000:]])
        # No daemon test stepped aside for MindSpore (the Ascend tests' setup converts: those skip for onnx).
        skipped = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
        assert not any("mindspore" in line for line in skipped if "tests/pipeline" in selection), skipped
