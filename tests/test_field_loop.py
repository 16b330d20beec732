"""From the field back to training and onto the box again, end to end: a demo daemon keeps frames and raises
events; a person marks one a false alarm; the kept frames are exported with pre-labels; a short fine-tune of
the demo model reads them next to CPLID; its export is converted and bundled; the bundle upgrades a box that
runs the demo model, and the daemon there runs the new model (a release that fails its health check is rolled
back by the same install path: tests/deploy/test_bundle.py)."""

from __future__ import annotations

import json
import os
import pathlib
import urllib.request

import pytest
import yaml

from inspector.cli import main
from pipeline.config import load_config
from pipeline.demo import DEMO_DIR
from pipeline.outputs.samples import model_version
from tests.deploy.test_bundle import current_version, install, make_bundle, stop_installed
from tests.support.clips import DEMO_CLIP
from tests.support.daemon import RunningDaemon, require_demo_model
from tests.support.om import prepared_om

REPO = pathlib.Path(__file__).resolve().parents[1]


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the bundle's install gives the stand-in SDK to another user: root")
def test_review_export_fine_tune_and_upgrade_the_box(shared_dir, tmp_path, wheelhouse):  # noqa: F811
    require_demo_model()
    # 1. The field: a demo daemon that keeps frames; a person marks the first event a false alarm.
    daemon_yaml = tmp_path / "daemon.yaml"
    daemon_yaml.write_text(yaml.safe_dump({
        "cameras": [{"id": "tower-3", "url": str(DEMO_DIR / "insulators.mp4"), "loop": True, "rate_fps": 8}],
        "model": str(DEMO_DIR / "model"), "output": {"directory": str(tmp_path / "field")},
        "alarm": {"min_hits": 2, "lost_after_s": 1, "update_interval_s": 1, "cooldown_s": 0},
        "samples": {"enabled": True, "uncertain": [0.3, 0.9], "uncertain_interval_s": 0.5, "random_interval_s": 1,
                    "min_free_megabytes": 0},
        "http": {"port": 0}}))
    with RunningDaemon(load_config(daemon_yaml)) as running:
        running.wait(lambda: running.daemon.events_written >= 2 and running.daemon.outputs.samples.kept["uncertain"]
                     + running.daemon.outputs.samples.kept["random"] >= 12, 120)
        event = json.loads(running.get("/api/events")[2])["events"][-1]
        assert post_json(f"{running.base}/api/events/{event['event_id']}/review",
                         {"state": "false_alarm", "note": "loop test"})["state"] == "false_alarm"

    # 2. The kept frames as a data set with pre-labels.
    labels = tmp_path / "labels"
    assert main(["samples", "export", "--config", str(daemon_yaml), "--out", str(labels), "--format", "coco"]) == 0
    provenance = [json.loads(line) for line in (labels / "provenance.jsonl").read_text().splitlines()]
    assert any(p["review"] and p["review"]["state"] == "false_alarm" for p in provenance)

    # 3. A short fine-tune of the demo model on them, next to (a few of) the original photographs.
    train_yaml = tmp_path / "train.yaml"
    train_yaml.write_text(yaml.safe_dump({
        "cfg": "yolov4-tiny-half", "input_size": 320,
        "data": {"classes": ["insulator", "defect"], "sources": [
            {"name": "tower-3", "path": str(labels), "format": "coco", "val_fraction": 0.25},
            {"name": "cplid", "path": str(shared_dir / "datasets" / "cplid"), "format": "voc", "val_fraction": 0.97}]},
        "transfer": {"weights": str(REPO / "models" / "zoo" / "demo-insulator" / "best.ckpt")},
        "epochs": 1, "batch_size": 8, "eval_every": 1, "augment": {"mosaic": 0.0},
        "optim": {"lr": 0.001, "warmup_epochs": 0}, "out": str(tmp_path / "run")}))
    assert main(["train", "--config", str(train_yaml), "--no-progress"]) == 0
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert set(metrics[-1]["per_source"]) == {"tower-3", "cplid"}
    new_model = tmp_path / "run" / "export-onnx"
    assert model_version(new_model)["sha256"] != model_version(DEMO_DIR / "model")["sha256"]

    # 4. Converted, bundled, and installed over a box that runs the demo model.
    root = tmp_path / "root"
    try:
        v1 = make_bundle(prepared_om(DEMO_DIR / "model", tmp_path / "om-demo"), tmp_path, root, "1.0.0", DEMO_CLIP,
                         wheelhouse)
        assert install(v1, root).returncode == 0
        new_om = prepared_om(new_model, tmp_path / "om-new")
        v2 = make_bundle(new_om, tmp_path, root, "1.1.0", DEMO_CLIP, wheelhouse)
        result = install(v2, root)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "installed 1.1.0 (previous: 1.0.0)" in result.stdout and current_version(root) == "releases/1.1.0"
        installed = root / "opt/inspector/current/model"
        assert (installed / "model.onnx").read_bytes() == (new_om / "model.onnx").read_bytes()
        status = json.loads((root / "var/lib/inspector/out/status.json").read_text())
        assert status["state"] == "running" and status["cameras"][0]["processed"] > 0
    finally:
        stop_installed(root)
