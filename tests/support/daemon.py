"""Run a Daemon in a thread for a test, and read its HTTP side."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

from pipeline.config import HttpConfig
from pipeline.daemon import Daemon
from pipeline.demo import DEMO_DIR


def require_demo_model():
    """The bundled trained model (real detections, hence events), or skip."""
    import pytest

    if not (DEMO_DIR / "model" / "manifest.json").is_file():
        pytest.skip("no bundled demo model")
    return DEMO_DIR / "model"


class RunningDaemon:
    def __init__(self, config, **kwargs):
        if config.http.enabled and config.http.port == HttpConfig().port:
            # Any free port, never the default: a daemon on this machine (or a bundle test's) may hold it.
            config = config.model_copy(update={"http": config.http.model_copy(update={"port": 0})})
        self.daemon = Daemon(config, **kwargs)
        self.stop_event = threading.Event()
        self.summary = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.summary = self.daemon.run(self.stop_event)

    def __enter__(self) -> "RunningDaemon":
        self.thread.start()
        # Generous: a start asks the cameras for their codecs, slow on a loaded machine; a port already taken
        # leaves the server None, and the daemon says so in its log.
        self.wait(lambda: self.daemon.server is not None or not self.daemon.config.http.enabled, 120)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(120)
        assert not self.thread.is_alive(), "the daemon did not stop"

    def wait(self, predicate, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached")
            if not self.thread.is_alive() and self.summary is None:
                raise RuntimeError("the daemon stopped")
            time.sleep(0.1)

    @property
    def base(self) -> str:
        return f"http://{self.daemon.server.host}:{self.daemon.server.port}"

    def get(self, path: str, token: str | None = None) -> tuple[int, dict, bytes]:
        request = urllib.request.Request(self.base + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()
