"""What the daemon shows of itself: a camera is degraded while reconnecting, failed, or silent past its
watchdog; unmeasured counters are null, not zero."""

from __future__ import annotations

import time
import types

import pytest

from pipeline.config import parse_config
from pipeline.status import StatusView
from pipeline.types import CameraStats

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def view_with(stats, last_result):
    config = parse_config({"cameras": [{"id": s.camera_id, "url": f"rtsp://127.0.0.1:9/{s.camera_id}",
                                        "no_frame_timeout_s": 2} for s in stats], "model": "m"})
    device = types.SimpleNamespace(camera_stats=lambda: stats, lost_frames=lambda: 3)
    frames = types.SimpleNamespace(last_result=last_result, latest={}, detection_counts={s.camera_id: 0 for s in stats})
    outputs = types.SimpleNamespace(status=lambda: [], outbox_errors=0, recent=lambda: [], problem=None)
    view = StatusView(config, device, frames, outputs, metrics=None)
    view.state = "running"
    return view


def test_degradation_reasons():
    now = time.monotonic()
    stats = [CameraStats("fresh", state="running"), CameraStats("silent", state="running"),
             CameraStats("retrying", state="reconnecting"), CameraStats("done", state="finished")]
    view = view_with(stats, {"fresh": now, "silent": now - 5.0, "retrying": now, "done": now - 100})
    reasons = view.degradation()
    assert reasons["fresh"] is None and reasons["done"] is None and reasons["retrying"] == "reconnecting"
    assert reasons["silent"].startswith("no frame for")
    code, body = view.health()
    assert code == 200 and body["device_lost_frames"] == 3


def test_unmeasured_counters_are_null():
    stats = [CameraStats("npu", state="started", dropped=0, unmeasured=("dropped", "reconnects"))]
    status = view_with(stats, {"npu": time.monotonic()}).status()
    assert status["cameras"][0]["dropped"] is None and status["cameras"][0]["reconnects"] is None
