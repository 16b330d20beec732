"""The daemon's HTTP side: /metrics, /healthz, /snapshot/<camera>, /events/<id>.jpg, /api/status, the status page.

Bound to 127.0.0.1 unless configured. With `http.token_env` set, every request but /healthz needs
`Authorization: Bearer <token>` (what Prometheus' `authorization` setting sends); a browser opens
`/?token=<token>` once and gets an HttpOnly cookie instead, so the token never sits in page links. Request
paths are never logged with their query string.
"""

from __future__ import annotations

import hmac
import http.server
import json
import logging
import re
import socket
import threading
import urllib.parse
from typing import Protocol

from pipeline.config import NAME_PATTERN
from pipeline.web.page import STATUS_PAGE

logger = logging.getLogger(__name__)

COOKIE = "inspector_token"
CAMERA_PATH = re.compile(f"^/snapshot/({NAME_PATTERN})$")
EVENT_PATH = re.compile(r"^/events/([0-9a-f-]{36})\.jpg$")


class StatusSource(Protocol):
    def health(self) -> tuple[int, dict]: ...
    def status(self) -> dict: ...
    def snapshot_jpeg(self, camera_id: str) -> bytes | None: ...
    def event_snapshot(self, event_id: str) -> bytes | None: ...
    def metrics_text(self) -> tuple[bytes, str]: ...


def same_secret(given: str, token: str) -> bool:
    """Constant-time comparison of bytes: hmac.compare_digest raises TypeError on non-ASCII str (a header
    decoded as latin-1), which would answer 500 with a traceback instead of 401."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape"))


def make_handler(source: StatusSource, token: str | None, idle_timeout_s: float = 30.0):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "inspector"
        sys_version = ""

        def log_message(self, fmt, *args):  # the default writes every request, query included, to stderr
            pass

        timeout = idle_timeout_s  # socket timeout: a connection silent this long is closed (half-open clients)

        def _authorised(self) -> bool:
            if token is None:
                return True
            header = self.headers.get("Authorization", "")
            if header.startswith("Bearer ") and same_secret(header[7:].strip(), token):
                return True
            cookies = dict(part.strip().split("=", 1) for part in self.headers.get("Cookie", "").split(";")
                           if "=" in part)
            return same_secret(cookies.get(COOKIE, ""), token)

        def _send(self, code: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, code: int, data: dict) -> None:
            self._send(code, json.dumps(data).encode("utf-8"), "application/json")

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            path = url.path
            try:
                if path == "/healthz":
                    code, body = source.health()
                    return self._json(code, body)
                if path == "/" and token is not None and "token" in query:
                    if not same_secret(query["token"][0], token):
                        return self._json(401, {"error": "unauthorised"})
                    return self._send(303, b"", "text/plain", {
                        "Location": "/", "Set-Cookie": f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"})
                if not self._authorised():
                    return self._send(401, b'{"error": "unauthorised"}', "application/json",
                                      {"WWW-Authenticate": "Bearer"})
                if path == "/metrics":
                    body, content_type = source.metrics_text()
                    return self._send(200, body, content_type)
                if path == "/api/status":
                    return self._json(200, source.status())
                if path in ("/", "/index.html"):
                    return self._send(200, STATUS_PAGE.encode("utf-8"), "text/html; charset=utf-8")
                match = CAMERA_PATH.match(path)
                if match:
                    data = source.snapshot_jpeg(match.group(1))
                    if data is None:
                        return self._json(404, {"error": f"no frame from camera {match.group(1)} yet"})
                    return self._send(200, data, "image/jpeg")
                match = EVENT_PATH.match(path)
                if match:
                    data = source.event_snapshot(match.group(1))
                    if data is None:
                        return self._json(404, {"error": "no snapshot for this event"})
                    return self._send(200, data, "image/jpeg")
                return self._json(404, {"error": "not found"})
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception:
                logger.exception("http: %s failed", path)
                try:
                    self._json(500, {"error": "internal error"})
                except OSError:
                    pass

    return Handler


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6

    def server_bind(self):
        # "::" serves IPv4 too (dual stack) where the system allows it, as "0.0.0.0" would for IPv4 alone.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class StatusServer:
    def __init__(self, source: StatusSource, host: str, port: int, token: str | None, idle_timeout_s: float = 30.0):
        host = host.strip("[]")
        server_class = _Server6 if ":" in host else _Server
        self.httpd = server_class((host, port), make_handler(source, token, idle_timeout_s))
        self.host, self.port = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self.thread.start()
        host = f"[{self.host}]" if ":" in self.host else self.host
        logger.info("http: status page, /metrics and /healthz on http://%s:%d/", host, self.port)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
