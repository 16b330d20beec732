"""The Ascend device's glue against a double of the MindX SDK API (fake_mindx.py, which follows the SDK's
source): results fetched by key with bounded waits, omitted keys, lost frames counted, no full-size picture
copies, batches filled to the OM's largest gear, honest figures, error mapping, and the refusals before start
(OM ownership and mode, device id, manifest vs graph, file sources, gears)."""

import json
import os
import pathlib
import threading
import time

import cv2
import numpy as np
import pytest

from deploy.convert import convert
from models.spec import ModelSpec
from pipeline.config import ConfigError, parse_config
from pipeline.daemon import Daemon
from pipeline.runplan import plan_run
from pipeline.devices.ascend import AscendDevice
from pipeline.devices.base import DeviceError
from pipeline.graph import render_graph
from tests.pipeline.devices import fake_mindx


@pytest.fixture()
def om_dir(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("onnx")  # `inspector convert` prepares the OM's directory: the [export] extra
    monkeypatch.setenv("PATH", "/nonexistent")
    out = tmp_path / "om"
    convert(tiny_model_dir, out, gears=(1, 2, 4))  # the OM's largest gear is the config's max_batch
    (out / "model.om").write_bytes(b"stand-in OM")
    os.chmod(out / "model.om", 0o640)
    return out


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def camera_password(monkeypatch):
    """The cameras' URLs name ${CAM_PW}: a run's plan refuses to start without it."""
    monkeypatch.setenv("CAM_PW", "x")


def setup(om_dir, tmp_path, cameras=2, **batching):
    config = parse_config({"cameras": [{"id": f"cam{i}", "url": f"rtsp://user:${{CAM_PW}}@10.0.0.{i}/s"}
                                       for i in range(cameras)],
                           "model": str(om_dir), "device": "ascend", "output": {"directory": str(tmp_path / "out")},
                           "batching": {"max_batch": 4, **batching}})
    return config, render_graph(config, ModelSpec.load(om_dir))


def run_daemon(daemon):
    stop = threading.Event()
    errors = []

    def run():
        try:
            daemon.run(stop)
        except Exception as exc:  # surfaced below instead of hanging the test
            errors.append(exc)

    fake_mindx.StreamManagerApi.instances.clear()
    runner = threading.Thread(target=run, daemon=True)  # a failing test must not keep pytest from exiting
    runner.start()
    wait_for(lambda: errors or (fake_mindx.StreamManagerApi.instances
                                and fake_mindx.StreamManagerApi.instances[-1].graph is not None))
    assert not errors, errors
    return fake_mindx.StreamManagerApi.instances[-1], stop, runner, errors


def model_outputs(spec, box=(10, 20, 110, 220), score=0.9):
    k = spec.num_candidates
    boxes = np.zeros((k, 4), np.float32)
    boxes[0] = box  # model pixels
    scores = np.zeros((k, 2), np.float32)
    scores[0, 1] = score
    return boxes, scores


def test_frames_flow_through_the_same_host_side(om_dir, dev_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CAM_PW", "s3cret")
    config, graph = setup(om_dir, tmp_path, waiting_time_ms=50)
    daemon = Daemon(config, device=AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root)))
    spec = ModelSpec.load(om_dir)
    boxes, scores = model_outputs(spec)
    api, stop, runner, errors = run_daemon(daemon)
    size = (spec.input_height, spec.input_width)
    api.push_frame(fake_mindx.frame_metadata(1, 7, 640, 480, [boxes, scores], size))
    api.push_frame(fake_mindx.frame_metadata(0, 3, 1920, 1080, [boxes.astype(np.float16),
                                                                 scores.astype(np.float16)], size, dtype_code=1))
    out = tmp_path / "out" / "detections.jsonl"
    wait_for(lambda: errors or (out.exists() and len(out.read_text().splitlines()) >= 2))
    stop.set()
    runner.join(timeout=30)
    assert not errors, errors
    assert api.calls == ["InitManager", "CreateMultipleStreams", "DestroyAllStreams"]
    # The SDK got the real URL; the rendered graph written beside the output keeps the placeholder.
    assert api.graph["inspector"]["mxpi_rtspsrc0"]["props"]["rtspUrl"] == "rtsp://user:s3cret@10.0.0.0/s"
    assert "s3cret" not in (tmp_path / "out" / "pipeline.json").read_text()

    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert [(l["camera"], l["frame"]) for l in lines] == [("cam1", 7), ("cam0", 3)]
    # 640x480 into 320x320: scale 0.5 -> camera box = model box * 2.
    assert lines[0]["detections"] == [{"class": "defect", "score": 0.9, "box": [20.0, 40.0, 220.0, 440.0]}]
    assert lines[1]["detections"][0]["box"] == pytest.approx([60.0, 120.0, 660.0, 1080.0], abs=0.5)
    # Honest figures: the SDK tells the host neither latency nor drops.
    assert all(l["latency_ms"] is None for l in lines)
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert all(c["dropped"] is None for c in status["cameras"])


def test_sizes_come_from_the_resize_until_known_never_from_decoder_pictures(om_dir, dev_root, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setenv("CAM_PW", "x")
    device, api, spec = started_device(om_dir, dev_root, tmp_path, waiting_time_ms=10)
    boxes, scores = model_outputs(spec)
    for frame in range(20):
        api.push_frame(fake_mindx.frame_metadata(0, frame, 1920, 1080, [boxes, scores],
                                                 (spec.input_height, spec.input_width)))
    results = [device.get_result(5.0) for _ in range(20)]
    device.destroy()
    assert all(r is not None and (r.info.width, r.info.height) == (1920, 1080) for r in results)
    # Only the first result paid for a picture copy, and a model-size one (no 3 MB decoder frame).
    assert api.picture_bytes_copied == 320 * 320 * 3 // 2
    assert results[0].batch_size is None and results[0].info.monotonic_time is None


def started_device(om_dir, dev_root, tmp_path, **batching):
    """An Ascend device on the SDK double, its stream created for one camera: (device, the double, spec)."""
    config, graph = setup(om_dir, tmp_path, cameras=1, **batching)
    device = AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root))
    device.create_streams(plan_run(config, graph=graph)[0])
    return device, fake_mindx.StreamManagerApi.instances[-1], ModelSpec.load(om_dir)


def test_batches_fill_to_the_oms_largest_gear(om_dir, dev_root, tmp_path, monkeypatch):
    """mxpi_tensorinfer waits for the OM's largest gear (or waitingTime): with gears up to 4, three frames wait
    the full waitingTime, the fourth releases them at once."""
    monkeypatch.setenv("CAM_PW", "x")
    device, api, spec = started_device(om_dir, dev_root, tmp_path, waiting_time_ms=3000)
    frame = fake_mindx.frame_metadata(0, 0, 640, 480, list(model_outputs(spec)), (320, 320))
    for _ in range(3):
        api.push_frame(frame)
    assert device.get_result(0.5) is None  # waiting for a fourth frame (or 3 s)
    api.push_frame(frame)
    assert all(device.get_result(2.0) is not None for _ in range(4))
    device.destroy()


def test_lost_frames_are_counted_and_the_reader_keeps_going(om_dir, dev_root, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CAM_PW", "x")
    device, api, spec = started_device(om_dir, dev_root, tmp_path, waiting_time_ms=10)
    good = fake_mindx.frame_metadata(0, 1, 640, 480, list(model_outputs(spec)), (320, 320))
    api.push_error(3002, "mxpi_imageresize0: Dvpp resize failed")  # an upstream plugin failed on a frame
    no_tensors = {k: v for k, v in good.items() if k != "mxpi_tensorinfer0"}
    api.push_frame(no_tensors)
    api.push_frame(good)
    result = device.get_result(5.0)
    device.destroy()
    assert result is not None and result.info.frame_id == 1
    assert device.lost == 2 and "a frame was lost (1 so far): the appsink delivered error 3002" in caplog.text
    assert device.error is None and device.lost_frames() == 2  # what /metrics and /healthz report


def test_stopping_is_bounded_while_no_result_comes(om_dir, dev_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CAM_PW", "x")
    device, _, _ = started_device(om_dir, dev_root, tmp_path)
    started = time.monotonic()
    device.destroy()  # the reader waits in GetResult at most 200 ms, then sees the stop
    assert time.monotonic() - started < 3.0 and not device.reader.is_alive()


def test_the_double_refuses_what_the_sdk_refuses(om_dir, dev_root, tmp_path, monkeypatch):
    """A property outside the plugin's range fails CreateMultipleStreams (and the run's plan says so first)."""
    monkeypatch.setenv("CAM_PW", "x")
    config, graph = setup(om_dir, tmp_path, cameras=1)
    graph["inspector"]["mxpi_tensorinfer0"]["props"]["waitingTime"] = "0"
    with pytest.raises(ConfigError, match="waitingTime='0': outside 1..1e\\+06"):
        plan_run(config, graph=graph)
    api = fake_mindx.StreamManagerApi()
    api.InitManager()

    assert api.CreateMultipleStreams(json.dumps(graph).encode()) == fake_mindx.APP_ERR_COMM_INIT_FAIL
    assert any("waitingTime" in p for p in api.refused)
    assert api.DestroyAllStreams() == 0


def test_a_file_camera_is_refused_with_what_to_do(om_dir, dev_root, tmp_path):
    video = tmp_path / "flight.mp4"
    video.write_bytes((pathlib.Path(__file__).parents[3] / "pipeline" / "demo" / "insulators.mp4").read_bytes())
    config = parse_config({"cameras": [{"id": "rec", "url": str(video)}], "model": str(om_dir), "device": "ascend",
                           "output": {"directory": str(tmp_path / "out")}, "batching": {"max_batch": 4}})
    with pytest.raises(ConfigError, match="'filesrc0': a file source does not decode on the device.*serve the "
                                          "file over RTSP"):
        plan_run(config)


def test_gears_beyond_max_batch_are_refused(om_dir, dev_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CAM_PW", "x")
    config, graph = setup(om_dir, tmp_path, cameras=1, max_batch=2)
    with pytest.raises(ConfigError, match="max_batch: 2, but the OM's largest gear is 4: mxpi_tensorinfer fills"):
        plan_run(config, graph=graph)


@pytest.mark.parametrize("api, code", [("InitManager", 2001), ("CreateMultipleStreams", 1003)])
def test_return_codes_become_errors_with_api_and_code(om_dir, dev_root, tmp_path, monkeypatch, api, code):
    monkeypatch.setenv("CAM_PW", "x")
    config, graph = setup(om_dir, tmp_path)
    device = AscendDevice(sdk=fake_mindx.make_sdk({api: code}), device_root=str(dev_root))
    with pytest.raises(DeviceError, match=f"{api} returned {code}") as info:
        device.create_streams(plan_run(config, graph=graph)[0])
    assert info.value.api == api and info.value.code == code


def test_om_with_loose_mode_is_refused(om_dir, dev_root, tmp_path):
    config, graph = setup(om_dir, tmp_path)
    os.chmod(om_dir / "model.om", 0o644)
    device = AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root))
    fake_mindx.StreamManagerApi.instances.clear()
    with pytest.raises(DeviceError, match="mode 644 is looser than 640.*chmod 640"):
        device.create_streams(plan_run(config, graph=graph)[0])
    assert fake_mindx.StreamManagerApi.instances == []  # refused before the SDK was touched


def test_om_of_another_owner_is_refused(om_dir, dev_root, tmp_path, monkeypatch):
    config, graph = setup(om_dir, tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    device = AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root))
    with pytest.raises(DeviceError, match="owned by uid .* the daemon runs as uid 4242"):
        device.create_streams(plan_run(config, graph=graph)[0])


def test_missing_device_id_is_refused(om_dir, dev_root, tmp_path):
    config, graph = setup(om_dir, tmp_path)
    graph["inspector"]["stream_config"]["deviceId"] = "3"
    device = AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root))
    with pytest.raises(DeviceError, match="deviceId 3: no .*davinci3 \\(NPUs visible: davinci0\\)"):
        device.create_streams(plan_run(config, graph=graph)[0])


def test_manifest_that_disagrees_with_the_graph_is_refused(om_dir, dev_root, tmp_path):
    config, graph = setup(om_dir, tmp_path)
    graph["inspector"]["mxpi_imageresize0"]["props"]["resizeWidth"] = "416"
    with pytest.raises(ConfigError, match="resize 320x416 differs from the model input 320x320"):
        plan_run(config, graph=graph)


def test_an_export_directory_is_not_an_om(tiny_model_dir, dev_root, tmp_path):
    om = tmp_path / "m"
    om.mkdir()
    for name in ("manifest.json", "model.onnx"):
        (om / name).write_bytes((tiny_model_dir / name).read_bytes())
    (om / "model.om").write_bytes(b"x")
    os.chmod(om / "model.om", 0o600)
    config, graph = setup(om, tmp_path, max_batch=8)  # the export's gears end at 8
    device = AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root))
    with pytest.raises(DeviceError, match="describes 'model.onnx' \\(onnx\\), not this OM"):
        device.create_streams(plan_run(config, graph=graph)[0])


def test_detections_become_events_through_zones_and_rules(om_dir, dev_root, tmp_path, monkeypatch):
    """Device results -> host post-processing -> zones -> alarm rule -> events.jsonl, one event per object."""

    monkeypatch.setenv("CAM_PW", "x")
    config = parse_config({
        "cameras": [{"id": "cam0", "url": "rtsp://user:${CAM_PW}@10.0.0.1/s",
                     "zones": [{"name": "left", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]],
                                "classes": ["defect"]}]}],
        "model": str(om_dir), "device": "ascend", "output": {"directory": str(tmp_path / "out")},
        "alarm": {"min_hits": 3, "lost_after_s": 0.3, "update_interval_s": 100, "cooldown_s": 100}})
    device = AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root))
    daemon = Daemon(config, device=device)
    spec = ModelSpec.load(om_dir)
    boxes = np.zeros((spec.num_candidates, 4), np.float32)
    scores = np.zeros((spec.num_candidates, 2), np.float32)
    boxes[0], scores[0, 1] = [10, 20, 110, 220], 0.9    # a defect in the left zone
    boxes[1], scores[1, 1] = [200, 20, 300, 220], 0.9   # a defect in the right half: no zone
    empty = np.zeros_like(scores)
    stop = threading.Event()
    fake_mindx.StreamManagerApi.instances.clear()
    runner = threading.Thread(target=lambda: daemon.run(stop), daemon=True)
    runner.start()
    wait_for(lambda: fake_mindx.StreamManagerApi.instances and fake_mindx.StreamManagerApi.instances[-1].graph)
    api = fake_mindx.StreamManagerApi.instances[-1]
    for frame in range(6):
        api.push_frame(fake_mindx.frame_metadata(0, frame, 640, 480, [boxes, scores], (320, 320)))
    out = tmp_path / "out"
    wait_for(lambda: (out / "detections.jsonl").exists() and len((out / "detections.jsonl").read_text().splitlines()) >= 6)
    time.sleep(0.5)
    api.push_frame(fake_mindx.frame_metadata(0, 6, 640, 480, [boxes, empty], (320, 320)))
    wait_for(lambda: len((out / "detections.jsonl").read_text().splitlines()) >= 7)
    stop.set()
    runner.join(timeout=30)
    events = [json.loads(l) for l in (out / "events.jsonl").read_text().splitlines()]
    assert [(e["type"], e["zone"], e["class"]) for e in events] == [("start", "left", "defect"),
                                                                    ("end", "left", "defect")]
    assert events[0]["event_id"] == events[1]["event_id"] and events[0]["frame"] == 0
    assert events[0]["box"] == [20.0, 40.0, 220.0, 440.0]  # camera pixels (640x480 from 320x320)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_daemon_not_run_by_the_sdks_owner_is_refused_with_what_to_do(om_dir, dev_root, tmp_path, sdk_home,
                                                                         monkeypatch):
    """The SDK refuses at InitManager a process whose user does not own libmxbase.so (DeviceManager.cpp); the
    device says so before touching the SDK, naming the file and the fix."""
    monkeypatch.setenv("CAM_PW", "x")
    config, graph = setup(om_dir, tmp_path)
    os.chown(sdk_home / "lib/libmxbase.so", 4242, 4242)
    fake_mindx.StreamManagerApi.instances.clear()
    device = AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root))
    with pytest.raises(DeviceError, match="libmxbase.so belongs to uid 4242.*run the daemon as the user that "
                                          "installed the SDK"):
        device.create_streams(plan_run(config, graph=graph)[0])
    assert fake_mindx.StreamManagerApi.instances == []


@pytest.mark.parametrize("codes", [{"InitManager": 2001}, {"CreateMultipleStreams": 1003}])
def test_a_failed_start_destroys_the_sdk(om_dir, dev_root, tmp_path, monkeypatch, codes):
    """InitManager starts threads that only DestroyAllStreams ends: after a failed start none may be left (the
    devices conftest fails any test that leaves them)."""
    monkeypatch.setenv("CAM_PW", "x")
    config, graph = setup(om_dir, tmp_path)
    device = AscendDevice(sdk=fake_mindx.make_sdk(codes), device_root=str(dev_root))
    with pytest.raises(DeviceError):
        device.create_streams(plan_run(config, graph=graph)[0])
    api = fake_mindx.StreamManagerApi.instances[-1]
    assert api.calls[-1] == "DestroyAllStreams" and not api.management_threads_alive()


def test_a_buffer_refused_with_1001_is_a_counted_loss_not_a_timeout(om_dir, dev_root, tmp_path, monkeypatch,
                                                                   caplog):
    """1001 is both GetResult's timeout and many plugins' refusal code; the message tells them apart."""
    monkeypatch.setenv("CAM_PW", "x")
    device, api, spec = started_device(om_dir, dev_root, tmp_path, waiting_time_ms=10)
    api.push_error(fake_mindx.APP_ERR_COMM_FAILURE, "mxpi_tensorinfer0: The datasize of concated inputTensors[0]"
                                                    "(3) does not match model inputTensors[0](153600).")
    api.push_frame(fake_mindx.frame_metadata(0, 1, 640, 480, list(model_outputs(spec)), (320, 320)))
    result = device.get_result(5.0)
    device.destroy()
    assert result is not None and result.info.frame_id == 1
    assert device.lost == 1 and "error 1001: mxpi_tensorinfer0: The datasize" in caplog.text


def test_a_centred_letterbox_is_refused_on_the_device(om_dir, dev_root, tmp_path, monkeypatch):
    """DVPP pastes the picture top-left (MxpiImageResize.cpp); a model trained on centred letterboxes is refused
    for the Ascend device, before a start and by `validate`."""

    from pipeline.graph import validate_graph

    monkeypatch.setenv("CAM_PW", "x")
    manifest = json.loads((om_dir / "manifest.json").read_text())
    manifest["letterbox"]["placement"] = "center"
    (om_dir / "manifest.json").write_text(json.dumps(manifest))
    config, graph = setup(om_dir, tmp_path)
    spec = ModelSpec.load(om_dir)
    problems = validate_graph(graph, spec=spec, device="ascend")
    assert any("placement is 'center'" in p for p in problems), problems
    assert not any("placement" in p for p in validate_graph(graph, spec=spec, device="mock"))
    with pytest.raises(ConfigError, match="DVPP pastes the picture top-left"):
        plan_run(config, graph=graph)


def test_a_310_decodes_32_channels_at_most(om_dir, tmp_path, monkeypatch):
    from pipeline.graph import validate_graph

    monkeypatch.setenv("CAM_PW", "x")
    _, graph = setup(om_dir, tmp_path, cameras=1)
    spec = ModelSpec.load(om_dir)
    decoder = graph["inspector"]["mxpi_videodecoder0"]["props"]
    decoder["vdecChannelId"] = "31"
    assert validate_graph(graph, spec=spec, device="ascend") == []
    decoder["vdecChannelId"] = "32"
    assert any("vdecChannelId 32: the Ascend310's video decoder has 32 channels" in p
               for p in validate_graph(graph, spec=spec, device="ascend"))


def test_the_ascend_device_runs_without_onnxruntime(om_dir, dev_root, tmp_path, monkeypatch):
    """An Ascend bundle installs no CPU runtime: the daemon on the Ascend device must never import one."""
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    monkeypatch.setenv("CAM_PW", "x")
    config, _ = setup(om_dir, tmp_path, cameras=1, waiting_time_ms=10)
    daemon = Daemon(config, device=AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root)))
    spec = ModelSpec.load(om_dir)
    api, stop, runner, errors = run_daemon(daemon)
    api.push_frame(fake_mindx.frame_metadata(0, 1, 640, 480, list(model_outputs(spec)), (320, 320)))
    out = tmp_path / "out" / "detections.jsonl"
    wait_for(lambda: errors or (out.exists() and out.read_text().strip()))
    stop.set()
    runner.join(timeout=30)
    assert not errors, errors


@pytest.mark.parametrize("upstream", [False, True])
def test_each_decoder_is_set_up_for_its_cameras_codec(om_dir, dev_root, tmp_path, monkeypatch, upstream):
    """The graph names each camera's codec; the SDK's decoders take only that one (fake_mindx: the property on
    the releases of 310 boxes, the first frame's format on the 7.3 SDK), whatever the host hears."""

    monkeypatch.setenv("CAM_PW", "x")
    config, _ = setup(om_dir, tmp_path, waiting_time_ms=10)
    cameras = [config.cameras[0].model_copy(update={"codec": "h264"}),
               config.cameras[1].model_copy(update={"codec": "h265"})]
    config = config.model_copy(update={"cameras": cameras})
    daemon = Daemon(config, device=AscendDevice(sdk=fake_mindx.make_sdk(takes_upstream_format=upstream),
                                                device_root=str(dev_root)))
    spec = ModelSpec.load(om_dir)
    api, stop, runner, errors = run_daemon(daemon)
    assert [api.graph["inspector"][f"mxpi_videodecoder{i}"]["props"]["inputVideoFormat"] for i in (0, 1)] == \
        ["H264", "H265"]
    outputs = list(model_outputs(spec))
    assert api.push_camera_frame(fake_mindx.frame_metadata(1, 1, 640, 480, outputs, (320, 320)), "H265")
    assert api.push_camera_frame(fake_mindx.frame_metadata(0, 1, 640, 480, outputs, (320, 320)), "H264")
    # The camera comes back from a reconnect with its factory default: both SDKs' decoders refuse it.
    assert not api.push_camera_frame(fake_mindx.frame_metadata(0, 2, 640, 480, outputs, (320, 320)), "H265")
    out = tmp_path / "out" / "detections.jsonl"
    wait_for(lambda: errors or (out.exists() and len(out.read_text().splitlines()) >= 2))
    time.sleep(0.3)
    stop.set()
    runner.join(timeout=30)
    assert not errors, errors
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert sorted((l["camera"], l["frame"]) for l in lines) == [("cam0", 1), ("cam1", 1)]
    assert api.decoder_errors == [("mxpi_videodecoder0", "H264", "H265")]


def test_an_unresolved_auto_camera_of_h265_decodes_nothing_on_a_310_release(om_dir, dev_root, tmp_path,
                                                                            monkeypatch, caplog):
    """Why `auto` must be resolved: a camera the daemon could not ask gets the default H264 (and a warning naming
    it); on the releases of 310 boxes its H.265 frames then never reach the model."""
    monkeypatch.setenv("CAM_PW", "x")
    config, _ = setup(om_dir, tmp_path, cameras=1, waiting_time_ms=10)
    daemon = Daemon(config, device=AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root)))
    assert "cameras[0] (cam0).codec: auto, and the camera could not be asked" in caplog.text
    api, stop, runner, errors = run_daemon(daemon)
    spec = ModelSpec.load(om_dir)
    assert not api.push_camera_frame(fake_mindx.frame_metadata(0, 1, 640, 480, list(model_outputs(spec)),
                                                               (320, 320)), "H265")
    stop.set()
    runner.join(timeout=30)
    assert not errors, errors
    assert api.decoder_errors == [("mxpi_videodecoder0", "H264", "H265")]


def test_a_sample_asks_for_one_picture_and_keeps_the_next_frame(om_dir, dev_root, tmp_path):
    """Without a second stage the decoded picture stays on the device: a frame due as a sample (here: its score
    in the uncertain band) makes the host ask for the camera's next picture, which crosses once (the double
    counts the bytes GetResult copies) and is kept with its own frame's predictions; other frames cross none."""
    config, graph = setup(om_dir, tmp_path, cameras=1, waiting_time_ms=20)
    config = config.model_copy(update={
        "samples": parse_config({"cameras": [{"id": "x", "url": "rtsp://h/s"}], "model": "m", "samples": {
            "enabled": True, "uncertain": [0.3, 0.95], "uncertain_interval_s": 3600, "random_interval_s": 0,
            "events": False, "min_free_megabytes": 0}}).samples,
        "alarm": config.alarm.model_copy(update={"min_hits": 1000})})
    device = AscendDevice(sdk=fake_mindx.make_sdk(), device_root=str(dev_root))
    daemon = Daemon(config, device=device)
    spec = ModelSpec.load(om_dir)
    boxes, scores = model_outputs(spec, score=0.5)
    api, stop, runner, errors = run_daemon(daemon)
    width, height = 640, 480
    pictures = [np.full((height * 3 // 2, width), 128, np.uint8) for i in range(4)]  # grey: chroma 128
    for i, picture in enumerate(pictures):
        picture[:height] = 40 * (i + 1)  # a brightness per frame

    def push(frame_id):
        metadata = fake_mindx.frame_metadata(0, frame_id, width, height, [boxes, scores],
                                             (spec.input_height, spec.input_width))
        metadata["mxpi_parallel2serial0"] = fake_mindx.decoded_picture(pictures[frame_id], width, height)
        api.push_frame(metadata)

    push(0)
    wait_for(lambda: errors or device.wanted)  # frame 0 was due and came without its picture: asked for
    resized = api.picture_bytes_copied  # the first frame's model-size picture, read for the camera's size
    assert resized == spec.input_width * spec.input_height * 3 // 2
    for frame_id in (1, 2, 3):
        push(frame_id)
        wait_for(lambda: errors or daemon.frames.last_result["cam0"] and daemon.frames.detection_counts["cam0"]
                 >= frame_id + 1)
    stop.set()
    runner.join(timeout=30)
    assert not errors, errors
    samples = sorted((tmp_path / "out" / "samples").glob("cam0/*/*.json"))
    assert len(samples) == 1
    sidecar = json.loads(samples[0].read_text())
    # The first frame fetched after the asking (GetResult may already wait with the keys of before: 1 or 2),
    # with its own picture: the NV12 pushed for that frame.
    assert sidecar["frame"] in (1, 2) and (sidecar["reason"], sidecar["width"], sidecar["height"]) == \
        ("uncertain", 640, 480)
    picture = cv2.imread(str(samples[0].with_suffix(".jpg")))
    expected = cv2.cvtColor(pictures[sidecar["frame"]], cv2.COLOR_YUV2BGR_NV12)
    assert picture.shape == (480, 640, 3) and abs(float(picture.mean()) - float(expected.mean())) < 3
    assert sidecar["predictions"][0]["score"] == 0.5
    # One picture crossed, for the sample; the frames before and after it brought none.
    assert api.picture_bytes_copied - resized == width * height * 3 // 2 and device.pictures_copied == 1
    assert not device.wanted


def test_samples_on_a_graph_without_the_pictures_key_are_said_to_keep_nothing(om_dir, dev_root, tmp_path):
    from pipeline.runplan import check_run

    config, graph = setup(om_dir, tmp_path, cameras=1)
    config = config.model_copy(update={"samples": config.samples.model_copy(update={"enabled": True})})
    assert not [w for w in check_run(config, "daemon.yaml", graph)[2].warnings if "samples" in w]
    graph["inspector"]["mxpi_imageresize0"]["props"]["dataSource"] = "auto"
    warnings = [w for w in check_run(config, "daemon.yaml", graph, "pipeline.json")[2].warnings if "samples" in w]
    assert warnings and "reads `auto`" in warnings[0] and "keeps no frame" in warnings[0]


def test_an_asking_for_a_picture_ends_when_its_camera_stays_silent(monkeypatch):
    """While a camera waits for its picture every answer carries one (any camera's): a camera that went silent
    must not keep the others' pictures crossing, so the asking ends after PICTURE_WAIT_S."""
    from pipeline.devices import ascend

    device = AscendDevice(sdk=fake_mindx.make_sdk())
    device.sample_key = "mxpi_parallel2serial0"
    device.stats = [ascend.CameraStats("cam0"), ascend.CameraStats("cam1")]
    clock = {"now": 50.0}
    monkeypatch.setattr(ascend.time, "monotonic", lambda: clock["now"])
    device.request_picture("cam1")
    device.request_picture("no-such-camera")  # ignored
    assert device._wanting() and list(device.wanted) == [1]
    clock["now"] += ascend.PICTURE_WAIT_S + 0.1
    assert not device._wanting() and not device.wanted
