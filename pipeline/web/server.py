"""The daemon's HTTP side: /metrics, /healthz, /snapshot/<camera>, /events/<id>.jpg, /api/status, the status page,
and the events view: /events, /api/events (filters in the query), /api/events/<id>, and a person's decision,
POST /api/events/<id>/review with {"state": "confirmed" | "false_alarm" | "open", "note": "..."}.

Bound to 127.0.0.1 unless configured. With `http.token_env` set, every request but /healthz needs
`Authorization: Bearer <token>` (what Prometheus' `authorization` setting sends); a browser opens
`/?token=<token>` (or `/events?token=...`) once and gets an HttpOnly cookie instead, so the token never sits in
page links. Request paths are never logged with their query string.

A decision changes state, so a POST is also refused unless it is plainly same-site: its body must be
`application/json` (an HTML form cannot send that cross-site without a CORS preflight, which is never granted),
an `Origin` or `Sec-Fetch-Site` header a browser sends must name this server, and a server bound to loopback
answers only requests addressed to a loopback name (a DNS-rebinding page's Host is its own name).

Bounded like the rest of the daemon: at most `max_connections` served at once (a new one beyond gets 503 and is
closed), each request must arrive whole within `idle_timeout_s` (a client trickling a byte at a time cannot hold
a thread), a listen backlog of LISTEN_BACKLOG; the handlers read the daemon's state, never open files of their
own per thread (the outbox's status is read through one shared connection).
"""

from __future__ import annotations

import contextlib
import hmac
import http.server
import io
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from typing import Protocol

from pipeline.config import NAME_PATTERN, is_loopback
from pipeline.types import RequestRefused
from pipeline.web.events_page import EVENTS_PAGE
from pipeline.web.page import STATUS_PAGE

logger = logging.getLogger(__name__)

COOKIE = "inspector_token"
CAMERA_PATH = re.compile(f"^/snapshot/({NAME_PATTERN})$")
EVENT_PATH = re.compile(r"^/events/([0-9a-f-]{36})\.jpg$")
EVENT_API_PATH = re.compile(r"^/api/events/([0-9a-f-]{36})$")
REVIEW_PATH = re.compile(r"^/api/events/([0-9a-f-]{36})/review$")
PAGES = {"/": STATUS_PAGE, "/index.html": STATUS_PAGE, "/events": EVENTS_PAGE}
BODY_MAX = 4096  # bytes of a POST body (a decision and its note)


class StatusSource(Protocol):
    def health(self) -> tuple[int, dict]: ...
    def status(self) -> dict: ...
    def snapshot_jpeg(self, camera_id: str) -> bytes | None: ...
    def event_snapshot(self, event_id: str) -> bytes | None: ...
    def metrics_text(self) -> tuple[bytes, str]: ...
    def events(self, query: dict) -> dict: ...
    def event(self, event_id: str) -> dict: ...
    def decide(self, event_id: str, decision: object) -> dict: ...


def same_secret(given: str, token: str) -> bool:
    """Constant-time comparison of bytes: hmac.compare_digest raises TypeError on non-ASCII str (a header
    decoded as latin-1), which would answer 500 with a traceback instead of 401."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape"))


def make_handler(source: StatusSource, token: str | None, idle_timeout_s: float = 30.0, loopback: bool = True):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "inspector"
        sys_version = ""

        def log_message(self, fmt, *args):  # the default writes every request, query included, to stderr
            pass

        timeout = idle_timeout_s  # socket timeout: a connection silent this long is closed (half-open clients)

        def setup(self):
            super().setup()
            # Reads go through a deadline: the request line and headers together within idle_timeout_s.
            self.rfile.close()  # the socket's own reader: replaced, and closed so the socket closes with the request
            self.deadline = _Deadline(self.connection, idle_timeout_s)
            self.rfile = io.BufferedReader(self.deadline)

        def handle_one_request(self):
            self.deadline.restart()
            super().handle_one_request()

        def parse_request(self) -> bool:
            parsed = super().parse_request()  # the headers are read: the answer gets the whole timeout again
            self.connection.settimeout(idle_timeout_s)
            return parsed

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

        @contextlib.contextmanager
        def _answering(self, request: str):
            """A request's failures, answered: a refusal with its status; a client that left or stopped
            reading (its socket timed out) with nothing, said at debug level (its doing, not the daemon's);
            anything else with a 500 and the traceback in the log."""
            try:
                yield
            except RequestRefused as exc:
                self._json(exc.status, {"error": str(exc)})
            except (BrokenPipeError, ConnectionResetError, socket.timeout) as exc:
                logger.debug("http: %s: the client left or stalled (%s)", request, exc)
            except Exception:
                logger.exception("http: %s failed", request)
                try:
                    self._json(500, {"error": "internal error"})
                except OSError:
                    pass

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            path = url.path
            with self._answering(f"{self.command} {path}"):
                if path == "/healthz":
                    code, body = source.health()
                    return self._json(code, body)
                if path in PAGES and token is not None and "token" in query:
                    if not same_secret(query["token"][0], token):
                        return self._json(401, {"error": "unauthorised"})
                    rest = urllib.parse.urlencode([(k, v) for k, v in urllib.parse.parse_qsl(url.query)
                                                   if k != "token"])
                    return self._send(303, b"", "text/plain", {
                        "Location": path + (f"?{rest}" if rest else ""),
                        "Set-Cookie": f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"})
                if not self._authorised():
                    return self._send(401, b'{"error": "unauthorised"}', "application/json",
                                      {"WWW-Authenticate": "Bearer"})
                if path == "/metrics":
                    body, content_type = source.metrics_text()
                    return self._send(200, body, content_type)
                if path == "/api/status":
                    return self._json(200, source.status())
                if path in PAGES:
                    return self._send(200, PAGES[path].encode("utf-8"), "text/html; charset=utf-8",
                                      {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY"})
                if path == "/api/events":
                    return self._json(200, source.events(query))
                match = EVENT_API_PATH.match(path)
                if match:
                    return self._json(200, source.event(match.group(1)))
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

        def do_POST(self):
            path = urllib.parse.urlsplit(self.path).path
            with self._answering(f"{self.command} {path}"):
                match = REVIEW_PATH.match(path)
                if match is None:
                    return self._json(404, {"error": "not found (POST: /api/events/<id>/review)"})
                if not self._authorised():
                    return self._send(401, b'{"error": "unauthorised"}', "application/json",
                                      {"WWW-Authenticate": "Bearer"})
                refusal = self._cross_site()
                if refusal is not None:
                    logger.warning("http: a decision on event %s refused: %s", match.group(1)[:8], refusal)
                    return self._json(403, {"error": refusal})
                kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if kind != "application/json":
                    return self._json(415, {"error": "the body must be application/json"})
                length = self.headers.get("Content-Length", "")
                if not length.isdigit():
                    return self._json(411, {"error": "Content-Length is required"})
                if int(length) > BODY_MAX:
                    return self._json(413, {"error": f"the body is larger than {BODY_MAX} bytes"})
                try:
                    decision = json.loads(self.rfile.read(int(length)))
                except (ValueError, UnicodeDecodeError):
                    return self._json(400, {"error": "the body is not JSON"})
                return self._json(200, source.decide(match.group(1), decision))

        def _cross_site(self) -> str | None:
            """Why this state-changing request may come from another site, or None."""
            host = self.headers.get("Host", "")
            if loopback and not is_loopback(urllib.parse.urlsplit(f"//{host}").hostname or ""):
                return f"Host {host!r} is not a loopback name, and this server listens on loopback only"
            site = self.headers.get("Sec-Fetch-Site")
            if site is not None and site not in ("same-origin", "none"):
                return f"Sec-Fetch-Site is {site!r}"
            origin = self.headers.get("Origin")
            if origin is not None and urllib.parse.urlsplit(origin).netloc != host:
                return f"Origin {origin!r} is not this server ({host!r})"
            return None

    return Handler


# The pages load nothing from elsewhere and run only their own inline script; no site may frame them.
CSP = ("default-src 'none'; img-src 'self'; connect-src 'self'; script-src 'unsafe-inline'; "
       "style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class _Deadline(io.RawIOBase):
    """A socket's reads, each allowed only what is left of a time budget: a timeout per receive would let a
    client that sends one byte every few seconds hold the connection for ever."""

    def __init__(self, sock: socket.socket, budget_s: float):
        self.sock, self.budget_s = sock, budget_s
        self.restart()

    def restart(self) -> None:
        self.ends = time.monotonic() + self.budget_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise socket.timeout("request not received in time")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


LISTEN_BACKLOG = 64


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG
    max_connections = 32

    def server_activate(self):
        self.slots = threading.BoundedSemaphore(self.max_connections)
        self.refused = 0
        super().server_activate()

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):  # full: answer at once, never queue a thread
            self.refused += 1
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
                                b"Connection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Server6(_Server):
    address_family = socket.AF_INET6

    def server_bind(self):
        # "::" serves IPv4 too (dual stack) where the system allows it, as "0.0.0.0" would for IPv4 alone.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class StatusServer:
    def __init__(self, source: StatusSource, host: str, port: int, token: str | None, idle_timeout_s: float = 30.0,
                 max_connections: int = 32):
        host = host.strip("[]")
        server_class = type("Server", (_Server6 if ":" in host else _Server,), {"max_connections": max_connections})
        self.httpd = server_class((host, port), make_handler(source, token, idle_timeout_s, is_loopback(host)))
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
