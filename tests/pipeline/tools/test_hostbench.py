"""The host-only benchmark drives the daemon's own per-frame code; its figures add up and its detections are
real ones (they reach the JSON lines and start events)."""

from pipeline.tools.hostbench import format_host_report, host_case, run_host_bench
from tests.support.daemon import require_demo_model


def test_host_case_counts_every_frame_and_every_stage():
    model = require_demo_model()
    case = host_case(model, cameras=2, detections=5, frames=120)
    assert case["frames"] == 120 and case["events"] >= 2  # a static object per camera starts an event
    stages = sum(case["stages_us"].values())
    assert 0 < stages <= case["us_per_frame"] * 1.05  # the stages are the main thread's time, nothing else
    empty = host_case(model, cameras=1, detections=0, frames=60)
    assert empty["events"] == 0


def test_report_lists_each_case():
    report = run_host_bench(require_demo_model(), [1], [0, 5], 40)
    text = format_host_report(report)
    assert len(report["cases"]) == 2 and "us/frame" in text and "outbox" in text
