"""The HTTP side of a running daemon: /healthz through its states, /metrics (parsed by prometheus-client's own
parser), snapshots, the bearer token, the status page in headless Chromium, and no planted secret anywhere."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import parse_config
from pipeline.demo import DEMO_DIR
from pipeline.devices.mock.device import MockDevice
from tests.support.daemon import RunningDaemon, require_demo_model

TOKEN = "http-Token-5593-planted"
CAMERA_PASSWORD = "cam-Secret-8812-planted"


class SlowStartDevice(MockDevice):
    """The mock device, held in create_streams until the test lets it go (the 'starting' state)."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def create_streams(self, plan):
        assert self.release.wait(60)
        super().create_streams(plan)


@pytest.fixture
def demo_config(tmp_path, monkeypatch):
    require_demo_model()
    monkeypatch.setenv("HTTP_TOKEN", TOKEN)
    monkeypatch.setenv("CAM_PASSWORD", CAMERA_PASSWORD)
    return parse_config({
        "cameras": [{"id": "tower-3", "url": str(DEMO_DIR / "insulators.mp4"), "loop": True, "rate_fps": 8},
                    # never reachable: a degraded camera, with a password in its URL
                    {"id": "locked", "url": "rtsp://admin:${CAM_PASSWORD}@127.0.0.1:9/stream",
                     "no_frame_timeout_s": 2, "reconnect_max_s": 1}],
        "model": str(DEMO_DIR / "model"),
        "alarm": {"min_hits": 2, "lost_after_s": 1, "update_interval_s": 1, "cooldown_s": 0},
        "output": {"directory": str(tmp_path / "out")},
        "http": {"port": 0, "token_env": "HTTP_TOKEN"}})


def test_http_side_of_a_running_daemon(demo_config, caplog, tmp_path):
    device = SlowStartDevice()
    with caplog.at_level(logging.DEBUG), RunningDaemon(demo_config, device=device) as running:
        status, _, body = running.get("/healthz")
        assert status == 503 and json.loads(body)["state"] == "starting"
        device.release.set()
        running.wait(lambda: running.daemon.events_written >= 2 and running.daemon.latest.get("tower-3"), 90)

        # No token, wrong token: refused. /healthz needs none.
        assert running.get("/metrics")[0] == 401
        assert running.get("/api/status", token="wrong")[0] == 401
        status, _, body = running.get("/healthz")
        health = json.loads(body)
        assert status == 200 and health["state"] == "running"
        cameras = {c["id"]: c for c in health["cameras"]}
        assert cameras["tower-3"]["healthy"] and not cameras["locked"]["healthy"]
        assert cameras["locked"]["reason"] in ("reconnecting", "failed") or "no frame" in cameras["locked"]["reason"]

        status, headers, body = running.get("/metrics", token=TOKEN)
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in families.values() for s in f.samples}
        assert samples[("inspector_camera_processed_total", (("camera", "tower-3"),))] > 0
        assert samples[("inspector_camera_up", (("camera", "locked"),))] == 0
        assert samples[("inspector_camera_up", (("camera", "tower-3"),))] == 1
        assert samples[("inspector_camera_reconnects_total", (("camera", "locked"),))] >= 1
        assert samples[("inspector_inference_seconds_count", (("camera", "tower-3"),))] > 0
        assert samples[("inspector_decode_seconds_count", (("camera", "tower-3"),))] > 0
        assert samples[("inspector_latency_seconds_count", (("camera", "tower-3"),))] > 0
        assert ("inspector_outbox_backlog", (("sink", "jsonl"),)) in samples
        assert samples[("inspector_events_total", (("camera", "tower-3"), ("type", "start")))] >= 1
        assert "inspector_batch_fill_ratio" in families
        assert samples[("inspector_device_lost_frames_total", ())] == 0

        status, headers, body = running.get("/snapshot/tower-3", token=TOKEN)
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        frame = running.daemon.latest["tower-3"]
        assert image.shape == (frame.height, frame.width, 3)
        assert running.get("/snapshot/locked", token=TOKEN)[0] == 404

        status, _, body = running.get("/api/status", token=TOKEN)
        api = json.loads(body)
        event = next(e for e in api["events"] if e["snapshot"])
        status, headers, body = running.get(f"/events/{event['event_id']}.jpg", token=TOKEN)
        assert status == 200 and cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR) is not None

        dom = status_page_dom(running.base, TOKEN) if shutil.which("chromium") else None
        responses = [running.get(p, token=TOKEN)[2] for p in ("/metrics", "/api/status", "/healthz", "/")]
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert events and all(e["camera"] == "tower-3" for e in events)
    assert {e["event_id"] for e in events if e["type"] == "start"} >= {event["event_id"]}
    assert (tmp_path / "out" / "snapshots" / event["snapshot"]).is_file()

    secrets = [TOKEN, CAMERA_PASSWORD]
    seen = caplog.text + "".join(r.decode(errors="replace") for r in responses) + (dom or "")
    assert not [s for s in secrets if s in seen]
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert not [s for s in secrets if s.encode() in path.read_bytes()], path
    if dom is None:
        pytest.skip("chromium not installed: the status page was not rendered (.ci/run installs it)")
    # The page, rendered by a real browser, shows both cameras, rates and the events.
    assert 'id="camera-tower-3"' in dom and 'id="camera-locked"' in dom
    assert 'class="camera degraded"' in dom and "fps" in dom
    assert dom.count('class="event"') >= 2
    assert 'src="/snapshot/tower-3?frame=' in dom


def status_page_dom(base: str, token: str) -> str:
    """The page after its scripts ran, from headless Chromium (authorised by the token cookie)."""
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--virtual-time-budget=8000", "--dump-dom", f"{base}/?token={token}"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class StubSource:
    """What the HTTP side reads from a daemon, fixed (server-only tests)."""

    def health(self):
        return 200, {"state": "running"}

    def status(self):
        return {"state": "running", "cameras": [], "events": [], "outputs": []}

    def snapshot_jpeg(self, camera_id):
        return None

    def event_snapshot(self, event_id):
        return None

    def metrics_text(self):
        return b"# metrics\n", "text/plain"


def raw_request(host: str, port: int, request: bytes, family=None) -> bytes:
    import socket

    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(request)
        chunks = []
        while True:
            data = connection.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


@pytest.fixture
def stub_server():
    from pipeline.web.server import StatusServer

    server = StatusServer(StubSource(), "127.0.0.1", 0, TOKEN, idle_timeout_s=1.0)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("header", [b"Authorization: Bearer \xe9t\xe9", b"Cookie: inspector_token=\xff\xfe",
                                    "Authorization: Bearer tökén".encode("utf-8")])
def test_non_ascii_credentials_are_refused_not_crashed(stub_server, header, caplog):
    response = raw_request(stub_server.host, stub_server.port,
                           b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.0 401"), response[:200]
    assert "Traceback" not in caplog.text and "failed" not in caplog.text
    good = raw_request(stub_server.host, stub_server.port, b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: "
                       b"close\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
    assert good.startswith(b"HTTP/1.0 200")


def test_idle_connections_are_closed(stub_server):
    import socket
    import time

    # Half-open clients (connected, never sending a request) are closed after idle_timeout_s (1 s here).
    clients = [socket.create_connection((stub_server.host, stub_server.port), timeout=10) for _ in range(20)]
    started = time.monotonic()
    for client in clients:
        assert client.recv(1) == b""  # the server closed it
    assert time.monotonic() - started < 10
    for client in clients:
        client.close()
    assert raw_request(stub_server.host, stub_server.port, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200")


def test_ipv6_hosts_are_served():
    import socket

    from pipeline.web.server import StatusServer

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = StatusServer(StubSource(), "::1", 0, None)
    except OSError as exc:
        pytest.skip(f"IPv6 loopback not available: {exc}")
    server.start()
    try:
        assert raw_request("::1", server.port, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200")
    finally:
        server.stop()


def open_descriptors() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


def test_connections_are_bounded_in_number_time_and_descriptors(tiny_model_dir, tmp_path):
    """Slow clients, a flood of idle connections and hundreds of status requests on loopback: each request must
    arrive whole within idle_timeout_s, beyond max_connections a connection gets 503 at once, and the process
    holds no more descriptors afterwards than before (the outbox is read through one connection)."""
    import concurrent.futures
    import socket
    import time

    config = parse_config({
        "cameras": [{"id": "a", "url": str(DEMO_DIR / "insulators.mp4"), "loop": True, "rate_fps": 5}],
        "model": str(tiny_model_dir), "output": {"directory": str(tmp_path / "out")},
        "http": {"port": 0, "idle_timeout_s": 2, "max_connections": 8}})
    with RunningDaemon(config) as running:
        running.wait(lambda: running.get("/healthz")[0] == 200, 60)
        address = ("127.0.0.1", running.daemon.server.port)
        # A client that sends a byte every 0.5 s is cut off at the 2 s budget, not held while it trickles.
        slow = socket.create_connection(address)
        started = time.monotonic()
        try:
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
                slow.sendall(bytes([byte]))
                time.sleep(0.5)
        except OSError:
            pass  # the server closed it
        held = time.monotonic() - started
        slow.close()
        assert held < 2 + 1.5, held
        # Eight idle connections take every slot: the ninth is answered 503 at once, then they time out.
        idle = [socket.create_connection(address) for _ in range(8)]
        time.sleep(0.3)
        ninth = socket.create_connection(address)
        ninth.settimeout(5)
        assert ninth.recv(64).startswith(b"HTTP/1.1 503")
        ninth.close()
        time.sleep(2.5)
        assert running.get("/healthz")[0] == 200
        for sock in idle:
            sock.close()
        # Hundreds of requests from many short-lived handler threads: no descriptor stays behind.
        running.get("/api/status")
        before = open_descriptors()
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            codes = list(pool.map(lambda i: running.get("/api/status" if i % 2 else "/metrics")[0], range(300)))
        time.sleep(0.5)
        assert set(codes) <= {200, 503} and codes.count(200) >= 250
        assert open_descriptors() <= before + 4, (before, open_descriptors())
        assert running.daemon.server.httpd.refused >= 1


class HugeSnapshotSource(StubSource):
    def event_snapshot(self, event_id):
        return b"\xff" * (64 << 20)  # more than the loopback's socket buffers hold


def test_a_client_that_stops_reading_is_dropped_quietly(caplog):
    import socket
    import time

    from pipeline.web.server import StatusServer

    # A client that asks for a snapshot and never reads it: the server's write times out (idle_timeout_s, 1 s
    # here), which is the client's doing, not the daemon's failure: no traceback, no 500 tried on top of it.
    server = StatusServer(HugeSnapshotSource(), "127.0.0.1", 0, TOKEN, idle_timeout_s=1.0)
    server.start()
    try:
        with caplog.at_level(logging.DEBUG, logger="pipeline.web.server"), \
                socket.create_connection((server.host, server.port), timeout=10) as stalled:
            stalled.sendall(b"GET /events/00000000-0000-0000-0000-000000000000.jpg HTTP/1.1\r\nHost: x\r\n"
                            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
            deadline = time.monotonic() + 20
            while "timed out" not in caplog.text and "failed" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.2)
        assert "Traceback" not in caplog.text and "failed" not in caplog.text, caplog.text[-2000:]
        assert "timed out" in caplog.text  # seen and said at debug level
        assert raw_request(server.host, server.port, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200")
    finally:
        server.stop()
