"""Start and stop the real RTSP server (tests/support/rtsp_server.py) from tests."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import time

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = pathlib.Path(__file__).with_name("rtsp_server.py")


def gstreamer_available() -> str | None:
    """None when the server can run, else the reason (the packages .ci/run installs)."""
    try:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                                "from gi.repository import GstRtspServer"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON}: {exc}"
    if probe.returncode:
        return ("GStreamer RTSP server not installed (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
                "gstreamer1.0-plugins-{base,good,bad,ugly}; .ci/run does this)")
    return None


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 10.0) -> bool:
    """True once 127.0.0.1:port accepts connections; False on timeout or when `process` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RtspServer:
    def __init__(self, mounts: dict[str, str], port: int | None = None):
        self.mounts = mounts
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    def url(self, name: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    def start(self) -> "RtspServer":
        args = [SYSTEM_PYTHON, str(SCRIPT), str(self.port)] + [f"{k}={v}" for k, v in self.mounts.items()]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"RTSP server did not start: {line!r} {self.process.stderr.read()[-2000:]}")
        if not wait_listening(self.port, self.process):
            raise RuntimeError(f"RTSP server not listening on {self.port}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> "RtspServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
