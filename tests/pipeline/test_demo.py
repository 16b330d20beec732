"""The embedded default: `inspector run` with no arguments runs the bundled clip through the bundled model."""

import json
import subprocess
import sys

import pytest

from pipeline.demo import DEMO_DIR


@pytest.mark.slow
def test_embedded_default_finds_insulators(tmp_path):
    if not (DEMO_DIR / "model" / "manifest.json").is_file():
        pytest.skip("no trained demo model is bundled yet (pipeline/demo/model)")
    result = subprocess.run([sys.executable, "-m", "inspector", "run", "--duration", "20", "--output", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(l) for l in (tmp_path / "detections.jsonl").read_text().splitlines()]
    assert len(lines) >= 10
    # The clip shows insulators in every photo: the model finds them in most frames.
    with_insulator = sum(any(d["class"] == "insulator" for d in l["detections"]) for l in lines)
    assert with_insulator >= 0.5 * len(lines), (with_insulator, len(lines))
