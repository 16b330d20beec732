"""The events view of a running demo daemon, driven in headless Chromium (Playwright): a person marks an event a
false alarm with a note, filters by state in the URL, the decision goes out as an `update` message, and a
restarted daemon still knows it (and does not send it again). The frames the daemon kept are exported with the
false alarm's box removed, and the trainer reads the export. Screenshots are kept beside the test's files."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

import yaml

from inspector.cli import main
from pipeline.config import load_config
from pipeline.demo import DEMO_DIR
from pipeline.events.rules import iou_matrix
from tests.support.daemon import RunningDaemon, require_demo_model

TOKEN = "view-Token-3301-planted"
CHROMIUM = shutil.which("chromium")


def demo_config(tmp_path):
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump({
        "cameras": [{"id": "tower-3", "url": str(DEMO_DIR / "insulators.mp4"), "loop": True, "rate_fps": 8}],
        "model": str(DEMO_DIR / "model"),
        "alarm": {"min_hits": 2, "lost_after_s": 1, "update_interval_s": 1, "cooldown_s": 0},
        "output": {"directory": str(tmp_path / "out")},
        "samples": {"enabled": True, "uncertain": [0.3, 0.9], "uncertain_interval_s": 1, "random_interval_s": 2,
                    "min_free_megabytes": 0},
        "http": {"port": 0, "token_env": "VIEW_TOKEN"}}))
    return path


def launch(playwright):
    # Debian's Chromium, as root and on a closed network (the flags of /work's browser notes).
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"])


def not_blank(path) -> bool:
    image = cv2.imread(str(path))
    return image is not None and image.shape[1] >= 1000 and float(image.std()) > 10


def test_a_person_marks_a_false_alarm_in_the_browser(tmp_path, monkeypatch):
    require_demo_model()
    if CHROMIUM is None:
        pytest.skip("chromium not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    monkeypatch.setenv("VIEW_TOKEN", TOKEN)
    out = tmp_path / "out"
    config_file = demo_config(tmp_path)
    with RunningDaemon(load_config(config_file)) as running:
        running.wait(lambda: running.daemon.events_written >= 2, 90)
        with sync_api.sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{running.base}/events?token={TOKEN}")
            assert "token" not in page.url  # the token became a cookie; the address bar does not keep it
            card = page.locator(".event").first
            card.wait_for(timeout=30_000)
            event_id = card.get_attribute("id").removeprefix("event-")
            assert card.get_attribute("data-state") == "open"
            # The snapshot is its own request, lazily loaded and slow on a loaded machine, and the list is drawn
            # anew every 10 s: wait until the first card's picture has arrived (a missing one never does).
            page.wait_for_function("() => { const img = document.querySelector('.event img');"
                                   " return img !== null && img.complete && img.naturalWidth > 0; }",
                                   timeout=30_000)
            page.screenshot(path=str(tmp_path / "events-open.png"), full_page=True)

            card.locator("input").fill("a gull on the crossarm")
            card.locator("button.false_alarm").click()
            marked = page.locator(f"#event-{event_id}[data-state=false_alarm]")
            marked.wait_for(timeout=15_000)
            assert "a gull on the crossarm" in marked.locator(".state").inner_text()

            page.select_option("select[name=state]", "false_alarm")
            page.wait_for_url("**/events?state=false_alarm")
            page.wait_for_function("document.querySelectorAll('.event').length === 1 && "
                                   "document.querySelector('.event').dataset.state === 'false_alarm'")
            page.screenshot(path=str(tmp_path / "events-false-alarm.png"), full_page=True)
            # The filters are in the URL: opened anew, the page shows the same selection.
            page.goto(f"{running.base}/events?state=false_alarm")
            page.locator(f"#event-{event_id}").wait_for(timeout=15_000)
            assert page.locator("select[name=state]").input_value() == "false_alarm"
            assert page.locator(".event").count() == 1
            browser.close()
        status, _, body = running.get(f"/api/events/{event_id}", token=TOKEN)
        assert status == 200 and json.loads(body)["state"] == "false_alarm"
        event_box = np.asarray([json.loads(body)["box"]], np.float64)
        running.wait(lambda: any(e.get("review") for e in running.daemon.outputs.recent()), 30)
        from prometheus_client.parser import text_string_to_metric_families

        metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(
            running.get("/metrics", token=TOKEN)[2].decode()) for s in f.samples}
        assert metrics[("inspector_reviews_total", (("state", "false_alarm"),))] == 1
        assert metrics[("inspector_samples_kept_total", (("reason", "event"),))] >= 1
        assert ("inspector_samples_deleted_total", ()) in metrics
    assert not_blank(tmp_path / "events-open.png") and not_blank(tmp_path / "events-false-alarm.png")

    sent = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    reviews = [m for m in sent if m.get("review")]
    assert [(m["event_id"], m["type"], m["review"]["state"], m["review"]["note"]) for m in reviews] == \
        [(event_id, "update", "false_alarm", "a gull on the crossarm")]

    # Restarted on the same output directory: the decision is still there and is not sent again.
    with RunningDaemon(load_config(config_file)) as running:
        status, _, body = running.get("/api/events?state=false_alarm", token=TOKEN)
        assert [e["event_id"] for e in json.loads(body)["events"]] == [event_id]
        assert json.loads(running.get(f"/api/events/{event_id}", token=TOKEN)[2])["announced"] == 1
    sent = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert len([m for m in sent if m.get("review")]) == 1
    for path in out.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path

    # The frames kept to label, exported as the daemon's config says: the false alarm's picture is there without
    # the box a person rejected, the others with the predictions as pre-labels; the trainer reads it.
    from train.datasets import load_dataset

    assert main(["samples", "export", "--config", str(config_file), "--out", str(tmp_path / "labels"),
                 "--format", "coco"]) == 0
    dataset = load_dataset(tmp_path / "labels", "coco", ["insulator"])
    provenance = [json.loads(line) for line in (tmp_path / "labels" / "provenance.jsonl").read_text().splitlines()]
    assert not dataset.issues and len(dataset.samples) == len(provenance)
    assert {p["reason"] for p in provenance} >= {"event", "uncertain"}
    marked = next(p for p in provenance if p["event_id"] == event_id)
    assert marked["review"]["state"] == "false_alarm" and marked["models"]["stage1"]["sha256"]
    sample = next(s for s in dataset.samples if s.image.endswith(marked["file"]))
    assert len(sample.boxes) == 0 or iou_matrix(sample.boxes.astype(np.float64), event_box).max() < 0.5
    others = [s for s in dataset.samples if not s.image.endswith(marked["file"])]
    assert sum(len(s.boxes) for s in others) > 0  # the other kept frames carry their pre-labels
