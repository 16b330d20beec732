"""The second stage on the Ascend device (docs/cascade.md), against the SDK double (fake_mindx.py): the decoded
picture fetched with the first model's outputs, the crops cut on the host exactly as on the mock device, sent to
the second stream with SendProtobuf as NV12 tensors with the frame's tag, the answers matched back to their
frames, frames handed on in order, and a lost answer costing the crops, never the frame."""

import json
import os

import numpy as np
import pytest

from deploy.convert import convert
from models.spec import ModelSpec
from pipeline.config import ConfigError, parse_config
from pipeline.daemon import Daemon
from pipeline.runplan import plan_run
from pipeline.devices.ascend import CROPS_TAG_KEY, AscendDevice
from pipeline.devices.base import DeviceError
from pipeline.devices.cutter import CropPlanner
from pipeline.stage2 import device_stage2
from pipeline.graph import STAGE2_STREAM, render_graph
from tests.pipeline.devices import fake_mindx
from tests.pipeline.devices.test_ascend import run_daemon, wait_for

WIDTH, HEIGHT = 640, 480
CHILD = (30.0, 30.0, 60.0, 60.0)  # where the stand-in second model finds a defect in every crop (model pixels)


def to_om(model_dir, out):
    pytest.importorskip("onnx")  # `inspector convert` prepares the OM's directory: the [export] extra
    convert(model_dir, out, gears=(1, 2, 4))
    (out / "model.om").write_bytes(b"stand-in OM")
    os.chmod(out / "model.om", 0o640)
    return out


@pytest.fixture()
def oms(tiny_model_dir, stage2_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    return to_om(tiny_model_dir, tmp_path / "om1"), to_om(stage2_model_dir, tmp_path / "om2")


def make_config(tmp_path, om1, om2):
    return parse_config({"cameras": [{"id": "cam0", "url": "rtsp://10.0.0.1/s"}], "model": str(om1),
                         "device": "ascend", "output": {"directory": str(tmp_path / "out")},
                         "batching": {"max_batch": 4, "waiting_time_ms": 20},
                         "stage2": {"model": str(om2), "thresholds": {"score": 0.5}}})


def stage1_outputs(spec, insulator=True):
    boxes = np.zeros((spec.num_candidates, 4), np.float32)
    scores = np.zeros((spec.num_candidates, 2), np.float32)
    if insulator:
        boxes[0] = (100, 40, 160, 220)  # model pixels: a tall insulator string
        scores[0, 0] = 0.9
    return boxes, scores


def second_model(spec2):
    """Finds one defect at CHILD in every crop, and remembers the crops it saw."""
    seen = []

    def run(batch):
        seen.append(batch.copy())
        n = batch.shape[0]
        boxes = np.zeros((n, spec2.num_candidates, 4), np.float32)
        scores = np.zeros((n, spec2.num_candidates, 1), np.float32)
        boxes[:, 0] = CHILD
        scores[:, 0, 0] = 0.8
        return [boxes, scores]
    return run, seen


def frame(spec, channel, frame_id, nv12, insulator=True):
    metadata = fake_mindx.frame_metadata(channel, frame_id, WIDTH, HEIGHT, stage1_outputs(spec, insulator),
                                         (spec.input_height, spec.input_width))
    metadata["mxpi_parallel2serial0"] = fake_mindx.decoded_picture(nv12, WIDTH, HEIGHT)
    return metadata


def detection_lines(tmp_path, count, stop, runner, errors) -> list:
    """The daemon's first `count` detection lines, once written; the daemon stopped."""
    out = tmp_path / "out" / "detections.jsonl"
    wait_for(lambda: errors or (out.exists() and len(out.read_text().splitlines()) >= count))
    stop.set()
    runner.join(timeout=30)
    assert not errors, errors
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_crops_go_to_the_second_stream_and_their_defects_come_back_in_frame_order(oms, dev_root, tmp_path):
    om1, om2 = oms
    spec1, spec2 = ModelSpec.load(om1), ModelSpec.load(om2)
    config = make_config(tmp_path, om1, om2)
    graph = render_graph(config, spec1)
    assert list(graph) == ["inspector", STAGE2_STREAM]
    run, seen = second_model(spec2)
    fake_mindx.StreamManagerApi.models[str(om2 / "model.om")] = run
    daemon = Daemon(config, device=AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root)))
    api, stop, runner, errors = run_daemon(daemon)
    nv12 = np.random.default_rng(0).integers(0, 256, (HEIGHT * 3 // 2, WIDTH), dtype=np.uint8)
    api.push_frame(frame(spec1, 0, 1, nv12))
    api.push_frame(frame(spec1, 0, 2, nv12, insulator=False))  # no parent: no crops, but it waits its turn
    lines = detection_lines(tmp_path, 2, stop, runner, errors)
    assert [line["frame"] for line in lines] == [1, 2]

    # What went to the second stream: one buffer for frame 1, its crops as the AIPP OM's NV12 input, tagged.
    planner = CropPlanner(spec2, device_stage2(config, spec1, spec2))
    geometry = daemon.device.sizes[0][2]
    _, plans, _ = planner.plan(stage1_outputs(spec1), geometry, WIDTH, HEIGHT)
    assert len(plans) >= 2  # a string 3x longer than wide: tiles
    assert len(api.sent) == 1
    stream, element, metadata = api.sent[0]
    assert (stream, element) == (STAGE2_STREAM, "appsrc1")
    assert metadata[CROPS_TAG_KEY] == ("MxpiFrameInfo", {"channelId": 0, "frameId": 1, "isEos": False})
    packages = metadata["appsrc1"][1]["tensorPackageVec"]
    assert len(packages) == len(plans)
    h2, w2 = spec2.input_height, spec2.input_width
    for package, plan in zip(packages, plans):
        tensor = package["tensorVec"][0]
        # The dims mxpi_tensorinfer reads from the OM (aclmdlGetInputDims), h * w * 1.5 bytes of NV12.
        assert tensor["tensorShape"] == [1, h2, w2, 3] and tensor["tensorDataType"] == 4
        assert tensor["tensorDataSize"] == h2 * w2 * 3 // 2
        sent = np.frombuffer(fake_mindx.base64.b64decode(tensor["dataStr"]), np.uint8).reshape(h2 * 3 // 2, w2)
        np.testing.assert_array_equal(sent, planner.cut(nv12, plan))  # the mock device's pixels, exactly
    assert sum(batch.shape[0] for batch in seen) == len(plans)
    # One full-resolution picture copied per frame: the price of cutting on the host.
    assert api.picture_bytes_copied == 2 * WIDTH * HEIGHT * 3 // 2

    # The defects, in camera pixels, each inside its crop and carrying its parent's index.
    children = [d for d in lines[0]["detections"] if d["class"] == "defect"]
    assert len(children) == len(plans)
    for child, plan in zip(sorted(children, key=lambda d: d["box"][1]), sorted(plans, key=lambda p: p.rect[1])):
        x1, y1, x2, y2 = plan.rect
        expected = plan.geometry.to_camera(np.array([CHILD], np.float32), x2 - x1, y2 - y1)[0] + (x1, y1, x1, y1)
        assert child["box"] == pytest.approx(expected.tolist(), abs=0.05)
        assert child["parent"] == 0
    assert lines[1]["detections"] == []


def test_a_lost_answer_costs_the_crops_not_the_frame(oms, dev_root, tmp_path):
    om1, om2 = oms
    spec1, spec2 = ModelSpec.load(om1), ModelSpec.load(om2)
    config = make_config(tmp_path, om1, om2)
    run, seen = second_model(spec2)

    def fails_once(batch):  # the first inference on the NPU fails
        if not seen:
            seen.append(None)
            raise RuntimeError("aclmdlExecute failed")
        return run(batch)
    fake_mindx.StreamManagerApi.models[str(om2 / "model.om")] = fails_once
    device = AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root))
    daemon = Daemon(config, device=device)
    api, stop, runner, errors = run_daemon(daemon)
    nv12 = np.zeros((HEIGHT * 3 // 2, WIDTH), np.uint8)
    api.push_frame(frame(spec1, 0, 5, nv12))
    wait_for(lambda: seen)
    api.push_frame(frame(spec1, 0, 6, nv12))
    lines = detection_lines(tmp_path, 2, stop, runner, errors)
    assert [line["frame"] for line in lines] == [5, 6]
    assert not [d for d in lines[0]["detections"] if d["class"] == "defect"]  # its crops were lost
    assert [d for d in lines[1]["detections"] if d["class"] == "defect"]  # the next frame's came back
    assert device.crops_lost > 0
    assert daemon.frames.crops_skipped == device.crops_lost  # counted as crops not examined


def test_the_second_om_and_the_graph_are_checked_before_start(oms, dev_root, tmp_path, stage2_model_dir):
    om1, om2 = oms
    config = make_config(tmp_path, om1, om2)
    graph = render_graph(config, ModelSpec.load(om1))

    def start(config):
        AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root)).create_streams(plan_run(config)[0])

    with pytest.raises(ConfigError, match="the config names stage2, the graph has no 'inspector_stage2' stream"):
        plan_run(config, graph={"inspector": graph["inspector"]})
    os.chmod(om2 / "model.om", 0o644)  # an OM the SDK would refuse
    with pytest.raises(DeviceError, match="looser than 640"):
        start(config)
    os.chmod(om2 / "model.om", 0o640)
    # The second model's ONNX export (its manifest describes model.onnx), not an OM converted from it.
    (stage2_model_dir / "model.om").write_bytes(b"x")
    os.chmod(stage2_model_dir / "model.om", 0o640)
    try:
        with pytest.raises(DeviceError, match="convert the second model"):
            start(make_config(tmp_path, om1, stage2_model_dir))
    finally:
        (stage2_model_dir / "model.om").unlink()


def test_crops_the_second_stream_refuses_are_given_up_at_once(oms, dev_root, tmp_path, monkeypatch):
    """A crops buffer mxpi_tensorinfer refuses (here: the wrong byte count) answers 1001 with the plugin's
    message: the frame goes on without its crops at once, not after the second stage's timeout."""
    import pipeline.devices.ascend as ascend

    monkeypatch.setattr(ascend, "STAGE2_TIMEOUT_S", 600.0)  # a frame waiting for its timeout would fail the test
    om1, om2 = oms
    spec1, spec2 = ModelSpec.load(om1), ModelSpec.load(om2)
    config = make_config(tmp_path, om1, om2)
    fake_mindx.StreamManagerApi.models[str(om2 / "model.om")] = second_model(spec2)[0]
    monkeypatch.setattr(CropPlanner, "cut", lambda self, nv12, plan: np.zeros(7, np.uint8))
    device = AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root))
    daemon = Daemon(config, device=device)
    api, stop, runner, errors = run_daemon(daemon)
    api.push_frame(frame(spec1, 0, 3, np.zeros((HEIGHT * 3 // 2, WIDTH), np.uint8)))
    lines = detection_lines(tmp_path, 1, stop, runner, errors)
    assert lines[0]["frame"] == 3 and not [d for d in lines[0]["detections"] if d["class"] == "defect"]
    assert device.crops_lost > 0
