import json

import pytest

from deploy.plan import gflops, plan
from inspector.cli import main


@pytest.mark.parametrize("cfg, size, darknet_bflops", [("yolov4", 608, 128.5), ("yolov4", 416, 60.1),
                                                        ("yolov4-tiny", 416, 6.9)])
def test_computation_matches_darknets_own_figures(cfg, size, darknet_bflops):
    # Darknet prints these totals when it loads the cfg (80 classes).
    assert gflops(cfg, size) == pytest.approx(darknet_bflops, rel=0.01)


def test_the_bottleneck_moves_with_frame_skip_and_a_given_npu_rate():
    # A measured 100 inferences/s: 4 cameras at 25 fps, NPU-bound; skipping 4 of 5 frames moves the limit to
    # decoding (every frame is still decoded): 480 fps of 1080p / 25 = 19.2 cameras.
    slow = plan("yolov4", 416, 1920, 1080, 25, frame_skip=0, npu_fps=100)
    assert (slow.cameras, slow.bottleneck) == (4, "NPU")
    skipping = plan("yolov4", 416, 1920, 1080, 25, frame_skip=4, npu_fps=100)
    assert (skipping.cameras, skipping.bottleneck) == (16, "VDEC channels")
    small = plan("yolov4", 416, 1280, 720, 25, frame_skip=4, npu_fps=1000)
    assert small.limits["VDEC"] == pytest.approx(43.2, rel=0.01) and small.bottleneck == "VDEC channels"
    assert slow.npu_fps_source == "given"


def test_cli_plan_json(capsys):
    assert main(["plan", "--cfg", "yolov4-tiny", "--sizes", "416", "--frame-skip", "0,1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["frame_skip"] for r in rows] == [0, 1] and rows[0]["npu_fps_source"].startswith("estimated")
