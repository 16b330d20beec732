"""One contract, both devices (pipeline/devices/base.py): the same scenario with a second stage on the CPU mock
device (a real H.264 clip through the committed test models) and on the Ascend device (the SDK double feeding
what the OMs would give). What `get_result` hands the host, in order, with the picture's size, the letterbox,
the tensors, the first stage decoded once with the config's rule and every crop naming its parent in it; the
counters; stop, drain and destroy."""

import time

import numpy as np
import pytest

from models.cascade import decode
from models.letterbox import letterbox_geometry
from models.spec import ModelSpec
from pipeline.config import parse_config
from pipeline.runplan import plan_run
from pipeline.devices.base import create_device
from pipeline.stage2 import cascade_rule
from pipeline.types import Detections

FRAMES = 6
WIDTH, HEIGHT = 640, 480


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def mock_device(tmp_path, model, stage2):
    from tests.support.clips import encode_clip

    clip = encode_clip(tmp_path / "clip.mp4", frames=FRAMES, width=WIDTH, height=HEIGHT)
    config = parse_config({"cameras": [{"id": "cam0", "url": str(clip)}], "model": str(model),
                           "output": {"directory": str(tmp_path / "out")}, "batching": {"max_batch": 4},
                           # Random weights: a low insulator threshold, so that the first stage reports objects
                           # to crop (their defect scores, higher, left out).
                           "thresholds": {"score": 0.05, "per_class": {"defect": 0.9}}, "stage2": {"model": str(stage2)}})
    return config, create_device("mock"), lambda: None  # the device reads the clip itself


def ascend_device(tmp_path, model, stage2):
    from tests.pipeline.devices import fake_mindx
    from tests.pipeline.devices.test_ascend_stage2 import frame, second_model, to_om

    om1, om2 = to_om(model, tmp_path / "om1"), to_om(stage2, tmp_path / "om2")
    root = tmp_path / "dev"
    root.mkdir()
    (root / "davinci0").touch()
    config = parse_config({"cameras": [{"id": "cam0", "url": "rtsp://10.0.0.1/s"}], "model": str(om1),
                           "device": "ascend", "output": {"directory": str(tmp_path / "out")},
                           "batching": {"max_batch": 4, "waiting_time_ms": 20},
                           "thresholds": {"score": 0.05, "per_class": {"defect": 0.9}}, "stage2": {"model": str(om2)}})
    fake_mindx.StreamManagerApi.models[str(om2 / "model.om")] = second_model(ModelSpec.load(om2))[0]
    spec = ModelSpec.load(om1)
    nv12 = np.random.default_rng(0).integers(0, 256, (HEIGHT * 3 // 2, WIDTH), dtype=np.uint8)

    def feed():  # what the camera stream delivers: pushed into the double's appsink
        for frame_id in range(FRAMES):
            fake_mindx.StreamManagerApi.instances[-1].push_frame(frame(spec, 0, frame_id, nv12))

    return config, create_device("ascend", sdk=fake_mindx.make_sdk(), device_root=str(root)), feed


@pytest.mark.parametrize("make", [mock_device, ascend_device], ids=["mock", "ascend"])
def test_both_devices_keep_the_contract(make, tmp_path, tiny_model_dir, stage2_model_dir, monkeypatch):
    if make is ascend_device:
        pytest.importorskip("onnx")  # the OMs' directories are prepared by `inspector convert`
        monkeypatch.setenv("PATH", "/nonexistent")
    config, device, feed = make(tmp_path, tiny_model_dir, stage2_model_dir)
    spec, spec2 = ModelSpec.load(config.model), ModelSpec.load(config.stage2.model)
    rule = cascade_rule(config, spec, spec2)
    device.create_streams(plan_run(config)[0])
    try:
        feed()
        results = [device.get_result(30.0) for _ in range(FRAMES)]
        assert all(r is not None for r in results)
        assert [(r.info.camera_id, r.info.channel_id, r.info.frame_id) for r in results] == \
            [("cam0", 0, i) for i in range(FRAMES)]
        crops = 0
        for result in results:
            assert (result.info.width, result.info.height) == (WIDTH, HEIGHT)
            assert result.geometry == letterbox_geometry(WIDTH, HEIGHT, spec.input_width, spec.input_height,
                                                         spec.letterbox.placement)
            assert result.tensors[0].shape == (spec.num_candidates, 4)
            assert result.tensors[1].shape == (spec.num_candidates, spec.num_classes)
            # The first stage decoded once, by the device, with the config's rule: what the host reports.
            assert isinstance(result.stage1, Detections)
            expected = decode(result.tensors[0], result.tensors[1], result.geometry, WIDTH, HEIGHT, rule.stage1)
            np.testing.assert_allclose(result.stage1.boxes_xyxy_camera, expected[0], atol=1e-4)
            assert result.stage1.class_ids.tolist() == expected[2].tolist()
            for crop in result.crops:
                x1, y1, x2, y2 = crop.rect_camera
                assert 0 <= x1 < x2 <= WIDTH and 0 <= y1 < y2 <= HEIGHT and x1 % 2 == y1 % 2 == 0
                assert 0 <= crop.parent < len(result.stage1)
                assert result.stage1.class_ids[crop.parent] in rule.parent_ids
                assert crop.geometry == letterbox_geometry(x2 - x1, y2 - y1, spec2.input_width, spec2.input_height,
                                                           spec2.letterbox.placement)
                assert crop.tensors[1].shape == (spec2.num_candidates, spec2.num_classes)
            crops += len(result.crops)
        assert crops > 0  # the contract was exercised, not passed over
        assert [s.processed for s in device.camera_stats()] == [FRAMES]
        device.stop_sources()
        wait_for(device.finished)
        assert device.get_result(0.2) is None
    finally:
        device.destroy()
