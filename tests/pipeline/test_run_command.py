"""`inspector run` as users start it: a process, stopped by SIGTERM, outputs closed cleanly."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline.config import ConfigError, parse_config
from pipeline.daemon import Daemon
from pipeline.graph import render_graph
from models.spec import ModelSpec
from tests.support.clips import DEMO_CLIP


def test_sigterm_drains_and_closes_outputs(tiny_model_dir, tmp_path):
    config = tmp_path / "daemon.yaml"
    out = tmp_path / "out"
    config.write_text(json.dumps({
        "cameras": [{"id": "a", "url": str(DEMO_CLIP), "loop": True},
                    {"id": "b", "url": str(DEMO_CLIP), "loop": True, "frame_skip": 1}],
        "model": str(tiny_model_dir), "output": {"directory": str(out)}, "summary_interval_s": 1}))
    process = subprocess.Popen([sys.executable, "-m", "inspector", "run", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines_file = out / "detections.jsonl"
    deadline = time.monotonic() + 120
    first_line = None  # when frames started flowing: the 1 s summary line comes within the next second
    while time.monotonic() < deadline:
        count = len(lines_file.read_text().splitlines()) if lines_file.exists() else 0
        if count and first_line is None:
            first_line = time.monotonic()
        if count >= 20 and first_line is not None and time.monotonic() - first_line >= 2.0:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    lines = [json.loads(line) for line in lines_file.read_text().splitlines()]  # every line is whole JSON
    assert summary["lines_written"] == len(lines) >= 20
    processed = {c["camera_id"]: c["processed"] for c in summary["cameras"]}
    assert processed == {"a": sum(l["camera"] == "a" for l in lines), "b": sum(l["camera"] == "b" for l in lines)}
    assert "SIGTERM: stopping after the frames in flight" in stderr
    assert "camera a: running" in stderr  # the periodic per-camera summary line
    assert all(l["frame"] % 2 == 0 for l in lines if l["camera"] == "b")


def test_a_graph_with_a_plugin_the_mock_cannot_run_is_refused_before_starting(tiny_model_dir, tmp_path):
    config = parse_config({"cameras": [{"id": "a", "url": str(DEMO_CLIP)}], "model": str(tiny_model_dir),
                           "output": {"directory": str(tmp_path)}})
    graph = render_graph(config, ModelSpec.load(tiny_model_dir))
    stream = graph["inspector"]
    stream["mxpi_tensorinfer0"]["next"] = "mxpi_objectpostprocessor0"
    stream["mxpi_objectpostprocessor0"] = {"factory": "mxpi_objectpostprocessor",
                                           "props": {"dataSource": "mxpi_tensorinfer0"}, "next": "appsink0"}
    # Refused with the run's plan, before a device exists or the output directory is touched.
    with pytest.raises(ConfigError, match="'mxpi_objectpostprocessor0': factory 'mxpi_objectpostprocessor' is not "
                                          "emulated by the mock device"):
        Daemon(config, graph=graph)
    assert not list(tmp_path.iterdir())


def test_unreadable_model_directory_is_a_config_error(tmp_path):
    from pipeline.config import ConfigError

    config = parse_config({"cameras": [{"id": "a", "url": str(DEMO_CLIP)}], "model": str(tmp_path / "nothing")})
    with pytest.raises(ConfigError, match="config: model: .*nothing: no such model directory"):
        Daemon(config)


def test_systemd_notifications_and_status_file(tiny_model_dir, tmp_path, monkeypatch):
    import socket
    import threading

    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    config = parse_config({"cameras": [{"id": "a", "url": str(DEMO_CLIP), "max_frames": 12}],
                           "model": str(tiny_model_dir), "output": {"directory": str(tmp_path / "out")}})
    Daemon(config).run(threading.Event())  # the file camera ends by itself after 12 frames
    messages = []
    while True:
        try:
            messages.append(server.recv(256).decode())
        except socket.timeout:
            break
    assert messages[0] == "READY=1" and "WATCHDOG=1" in messages and messages[-1] == "STOPPING=1"
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert status["state"] == "stopped" and status["cameras"][0]["processed"] == 12


def test_sigterm_before_the_first_frame_is_a_clean_stop(tiny_model_dir, tmp_path):
    """`systemctl stop` right after a start (a camera still connecting) must not leave the unit "failed"."""
    config = tmp_path / "daemon.yaml"
    out = tmp_path / "out"
    config.write_text(json.dumps({
        "cameras": [{"id": "dark", "url": "rtsp://127.0.0.1:9/none", "reconnect_max_s": 0.5}],
        "model": str(tiny_model_dir), "output": {"directory": str(out)}}))
    process = subprocess.Popen([sys.executable, "-m", "inspector", "run", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + 120
    while not (out / "status.json").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # running, the camera refused at least once
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert "stopped by SIGTERM before any camera delivered a frame: dark (" in stderr
    assert json.loads(stdout)["cameras"][0]["processed"] == 0


def test_a_camera_the_box_cannot_decode_fails_alone_and_run_says_so(tiny_model_dir, tmp_path):
    """A 16x16 camera beside a good one: the good one's lines are written, the small one is named with the
    reason; with only the small one, run exits 1 naming it."""
    from tests.support.clips import encode_clip

    tiny = encode_clip(tmp_path / "tiny.mp4", frames=5, width=16, height=16)
    config = tmp_path / "daemon.yaml"
    out = tmp_path / "out"
    cameras = [{"id": "tiny", "url": str(tiny)}, {"id": "good", "url": str(DEMO_CLIP), "max_frames": 10}]
    config.write_text(json.dumps({"cameras": cameras, "model": str(tiny_model_dir),
                                  "output": {"directory": str(out)}}))
    run = subprocess.run([sys.executable, "-m", "inspector", "run", "--config", str(config)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = {c["camera_id"]: c for c in json.loads(run.stdout)["cameras"]}
    assert summary["good"]["processed"] == 10 and summary["tiny"]["state"] == "failed"
    assert "camera tiny: the camera's pictures are 16x16; the Ascend 310's video decoder takes 128x128" in run.stderr
    config.write_text(json.dumps({"cameras": cameras[:1], "model": str(tiny_model_dir),
                                  "output": {"directory": str(out)}}))
    run = subprocess.run([sys.executable, "-m", "inspector", "run", "--config", str(config)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 1 and "no camera delivered a frame: tiny (failed)" in run.stderr


def test_sighup_reloads_the_config_in_the_same_process(tiny_model_dir, tmp_path):
    """SIGHUP (`systemctl reload`): a new config that would not start is refused and the daemon runs on; a good
    one: the frames in flight drain and the same PID runs again with it (here: a second camera added)."""
    config = tmp_path / "daemon.yaml"
    out = tmp_path / "out"
    cameras = [{"id": "a", "url": str(DEMO_CLIP), "loop": True, "rate_fps": 20}]
    write = lambda cams: config.write_text(json.dumps({"cameras": cams, "model": str(tiny_model_dir),  # noqa: E731
                                                       "output": {"directory": str(out)}}))
    write(cameras)
    process = subprocess.Popen([sys.executable, "-m", "inspector", "run", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines_file = out / "detections.jsonl"

    def cameras_seen():
        if not lines_file.exists():
            return set()
        return {json.loads(line)["camera"] for line in lines_file.read_text().splitlines() if line.endswith("}")}

    try:
        deadline = time.monotonic() + 120
        while cameras_seen() != {"a"} and time.monotonic() < deadline:
            time.sleep(0.2)
        config.write_text(json.dumps({"cameras": cameras, "model": str(tmp_path / "no-model")}))
        process.send_signal(signal.SIGHUP)  # a config that would not start: refused, the daemon runs on
        time.sleep(3)
        before = len(lines_file.read_text().splitlines())
        time.sleep(1)
        assert process.poll() is None and len(lines_file.read_text().splitlines()) > before
        write(cameras + [{"id": "b", "url": str(DEMO_CLIP), "loop": True, "rate_fps": 20}])
        process.send_signal(signal.SIGHUP)
        while cameras_seen() != {"a", "b"} and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert cameras_seen() == {"a", "b"} and process.poll() is None
        status = json.loads((out / "status.json").read_text())
        assert status["pid"] == process.pid and [c["id"] for c in status["cameras"]] == ["a", "b"]
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert "SIGHUP: not reloaded, running on with the config loaded at start" in stderr and "no-model" in stderr
    assert "SIGHUP: reloading: stopping after the frames in flight, then starting again" in stderr
    assert "SIGTERM: stopping after the frames in flight" in stderr
