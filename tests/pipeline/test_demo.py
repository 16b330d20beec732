"""The embedded default: `inspector run` with no arguments runs the bundled clip through the bundled model."""

import json
import subprocess
import sys

import pytest

from pipeline.demo import DEMO_DIR


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One 20 s run of `inspector run` with no arguments (the bundled models, cascade included), shared by the
    tests below: its output directory."""
    if not (DEMO_DIR / "model" / "manifest.json").is_file():
        pytest.skip("no trained demo model is bundled yet (pipeline/demo/model)")
    out = tmp_path_factory.mktemp("demo-run")
    result = subprocess.run([sys.executable, "-m", "inspector", "run", "--duration", "20", "--output", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.slow
def test_embedded_default_finds_insulators(demo_run):
    lines = [json.loads(l) for l in (demo_run / "detections.jsonl").read_text().splitlines()]
    assert len(lines) >= 10
    # The clip shows insulators in every photo: the model finds them in most frames.
    with_insulator = sum(any(d["class"] == "insulator" for d in l["detections"]) for l in lines)
    assert with_insulator >= 0.5 * len(lines), (with_insulator, len(lines))


@pytest.mark.slow
def test_embedded_default_runs_the_cascade_and_finds_the_defects(demo_run):
    """With the bundled defect model, `inspector run` finds defects inside insulators in the clip's defective
    photos (the last three of its eight, make_clip.PHOTOS), and raises events for them."""
    from pipeline.demo.make_clip import FPS, PHOTOS, SECONDS_EACH

    if not (DEMO_DIR / "stage2" / "manifest.json").is_file():
        pytest.skip("no second-stage demo model is bundled (pipeline/demo/stage2)")
    lines = [json.loads(l) for l in (demo_run / "detections.jsonl").read_text().splitlines()]
    per_photo = FPS * SECONDS_EACH
    clip_frames = per_photo * len(PHOTOS)
    defective = {i for i, name in enumerate(PHOTOS) if name.startswith("Defective")}
    seen = [l for l in lines if (l["frame"] % clip_frames) // per_photo in defective]
    assert len(seen) >= per_photo, "the run did not reach the defective photos"
    hits = [l for l in seen if any(d["class"] == "defect" for d in l["detections"])]
    assert len(hits) >= 0.5 * len(seen), (len(hits), len(seen))
    for line in hits:
        for d in line["detections"]:
            if d["class"] == "defect":
                assert line["detections"][d["parent"]]["class"] == "insulator"
    events = [json.loads(l) for l in (demo_run / "events.jsonl").read_text().splitlines()]
    assert any(e["class"] == "defect" for e in events)
