import json

import pytest

from deploy.plan import gflops, plan
from inspector.cli import main

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


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
    assert (skipping.cameras, skipping.bottleneck) == (19, "VDEC")
    # 720p: 960 fps in total (not the pixel rate's 1080), on 32 channels at most.
    small = plan("yolov4", 416, 1280, 720, 25, frame_skip=4, npu_fps=1000)
    assert small.limits["VDEC"] == pytest.approx(38.4, rel=0.01) and small.bottleneck == "VDEC channels"
    assert small.cameras == 32
    assert slow.npu_fps_source == "given"


def test_cli_plan_json(capsys):
    assert main(["plan", "--cfg", "yolov4-tiny", "--sizes", "416", "--frame-skip", "0,1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["frame_skip"] for r in rows] == [0, 1] and rows[0]["npu_fps_source"].startswith("estimated")


def test_a_letterbox_is_two_vpc_operations_and_the_host_has_a_column():
    from deploy.plan import vpc_seconds_per_frame

    # 1080p: the resize at 2074 Mpx/s (1 ms), then the paste of the 416x416 picture, bounded by the 1440
    # operations/s a small picture still costs (0.69 ms).
    assert vpc_seconds_per_frame(1920, 1080, 416) == pytest.approx(1 / 1000 + 1 / 1440, rel=1e-6)
    tiny = plan("yolov4-tiny", 416, 1920, 1080, 25, host_ms=10.0)
    assert tiny.limits["host"] == pytest.approx(4.0) and tiny.bottleneck == "host"


def test_the_npu_estimate_is_the_range_of_the_anchors():
    p = plan("yolov4", 608, 1920, 1080, 25, batch=1)
    # At 608 and batch 1 the YOLOv4 anchors are themselves the ends of the range... unless YOLOv3's scaled rate
    # is higher: 81.7 fps x 65.9 / 128.5 GFLOPs = 41.9 fps.
    assert p.npu_fps == pytest.approx(14.0, rel=0.02) and p.npu_fps_high == pytest.approx(41.9, rel=0.02)
    assert p.limits["NPU"] == pytest.approx(14.0 / 25, abs=0.05)  # cameras from the low end


def test_a_second_stage_costs_npu_time_host_time_and_a_picture_copy():
    from deploy.plan import CROP_HOST_MS_HERE, ARM_FACTOR, Stage2, plan

    single = plan("yolov4-tiny", 416, 1920, 1080, 25.0, npu_fps=300.0, host_ms=1.0)
    cascade = plan("yolov4-tiny", 416, 1920, 1080, 25.0, npu_fps=300.0, host_ms=1.0,
                   stage2=Stage2("yolov4-tiny", 96, crops_per_frame=10.0, npu_fps=2000.0))
    # NPU: 1/300 + 10/2000 s per frame instead of 1/300; 25 frames/s per camera.
    assert cascade.limits["NPU"] == pytest.approx(1.0 / ((1 / 300 + 10 / 2000) * 25.0), abs=0.05)
    assert single.limits["NPU"] == pytest.approx(12.0, abs=0.05)
    assert cascade.limits["host"] == pytest.approx(1000.0 / ((1.0 + CROP_HOST_MS_HERE * ARM_FACTOR) * 25), abs=0.05)
    assert cascade.stage2["picture_copy_mb_s_per_camera"] == pytest.approx(1920 * 1080 * 1.5 * 25 / 1e6, abs=0.05)
    assert cascade.cameras < single.cameras and single.stage2 is None


def test_plan_command_prints_the_second_stage(capsys):
    from inspector.cli import main

    assert main(["plan", "--cfg", "yolov4-tiny", "--sizes", "416", "--npu-fps", "300", "--stage2-cfg", "yolov4-tiny",
                 "--stage2-npu-fps", "2000"]) == 0
    assert "second stage: yolov4-tiny at 96, 10 crops a frame" in capsys.readouterr().out


@pytest.mark.parametrize("width, height, cameras_at_30_fps, mb", [(1280, 720, 32, 35), (1920, 1080, 16, 56),
                                                                  (3840, 2160, 4, 182)])
def test_the_vdec_budget_is_the_vendors_for_h264_and_h265_alike(width, height, cameras_at_30_fps, mb):
    """At 30 fps the VDEC's rate gives the vendor's recommended channel counts (deploy/plan.py VDEC_SOURCE); the
    table has one figure for both codecs, and the device memory per channel is its H.265 figure."""
    h264, h265 = (plan("yolov4-tiny", 416, width, height, 30, frame_skip=9, npu_fps=1e4, host_ms=1e-3, codec=codec)
                  for codec in ("h264", "h265"))
    assert h264.limits == h265.limits and h265.codec == "h265"
    assert h265.cameras == cameras_at_30_fps and h265.bottleneck.startswith("VDEC")
    assert h265.vdec_mb_per_camera == mb
    with pytest.raises(ValueError, match="codec 'mjpeg'"):
        plan("yolov4-tiny", 416, width, height, 30, codec="mjpeg")


def test_cli_plan_names_the_codec_and_the_vdec_figures(capsys):
    assert main(["plan", "--cfg", "yolov4-tiny", "--sizes", "416", "--codec", "h265", "--camera", "3840x2160"]) == 0
    out = capsys.readouterr().out
    assert "VDEC, H.264 and H.265 alike: 720p 960 fps (32 x 30, ~35 MB each), 1080p 480 fps (16 x 30, ~56 MB each), " \
           "4K 120 fps (4 x 30, ~182 MB each), 32 channels; here H.265 at 3840x2160: ~182 MB" in out
    assert "VDEC Performance Specifications" in out
    with pytest.raises(SystemExit):
        main(["plan", "--codec", "mjpeg"])
