"""The events API on the HTTP side, over a real review index: listing with filters, a decision by POST that
needs the token and is refused unless plainly same-site, and errors that name the key."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from pipeline.outputs.review import EventFilter, ReviewIndex
from pipeline.web.server import StatusServer
from tests.pipeline.outputs.test_review import message
from tests.pipeline.web.test_server import StubSource, raw_request

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)

TOKEN = "review-Token-7710-planted"
EVENT = message(1)["event_id"]


class IndexSource(StubSource):
    """The HTTP side's view of the events, as pipeline/status.py gives it, over a real index."""

    def __init__(self, index: ReviewIndex):
        self.index = index

    def events(self, query):
        return self.index.query(EventFilter.from_query(query))

    def event(self, event_id):
        return self.index.get(event_id)

    def decide(self, event_id, decision):
        return self.index.decide(event_id, decision)


@pytest.fixture(scope="module")
def listening():
    """One server for the module (stopping one takes half a second); each test gives it a fresh index."""
    source = IndexSource(None)
    server = StatusServer(source, "127.0.0.1", 0, TOKEN, idle_timeout_s=5.0)
    server.start()
    yield server, source
    server.stop()


@pytest.fixture
def server(listening, tmp_path):
    server, source = listening
    source.index = ReviewIndex(tmp_path / "events.sqlite", 1000)
    for n in range(3):
        source.index.record(message(n + 1, camera="tower-3" if n else "yard"))
    yield server
    source.index.close()


def call(server, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN,
         headers: dict | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, dict(exc.headers), exc.read()
    return status, headers, json.loads(raw) if headers.get("Content-Type") == "application/json" else raw


def review(server, decision, **kwargs):
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return call(server, "POST", f"/api/events/{EVENT}/review", json.dumps(decision).encode(), headers=headers,
                **kwargs)


def test_events_are_listed_with_their_filters(server):
    status, _, body = call(server, "GET", "/api/events?camera=tower-3&state=open")
    assert status == 200 and body["total"] == 2 and {e["camera"] for e in body["events"]} == {"tower-3"}
    status, _, body = call(server, "GET", f"/api/events/{EVENT}")
    assert status == 200 and body["event_id"] == EVENT and body["state"] == "open"
    status, _, body = call(server, "GET", "/api/events?since=last-week")
    assert status == 400 and "since: 'last-week' is not an ISO date" in body["error"]
    status, _, body = call(server, "GET", "/api/events/00000000-0000-0000-0000-000000000099")
    assert status == 404 and "no event" in body["error"]
    assert call(server, "GET", "/api/events", token=None)[0] == 401


def test_a_decision_is_stored_with_the_token_and_json(server):
    status, _, body = review(server, {"state": "false_alarm", "note": "a gull on the crossarm"})
    assert status == 200 and body["state"] == "false_alarm" and body["revision"] == 1
    assert call(server, "GET", f"/api/events/{EVENT}")[2]["note"] == "a gull on the crossarm"
    status, _, body = review(server, {"state": "closed"})
    assert status == 400 and "state: 'closed' is not one of" in body["error"]
    status, _, body = call(server, "POST", "/api/events/00000000-0000-0000-0000-000000000099/review",
                           b'{"state": "open"}', headers={"Content-Type": "application/json"})
    assert status == 404


@pytest.mark.parametrize("token, headers, body, code, says", [
    (None, {}, b'{"state": "confirmed"}', 401, "unauthorised"),
    ("wrong", {}, b'{"state": "confirmed"}', 401, "unauthorised"),
    # What a cross-site HTML form can send: refused before its body is read.
    (TOKEN, {"Content-Type": "application/x-www-form-urlencoded"}, b"state=confirmed", 415, "application/json"),
    (TOKEN, {"Content-Type": "text/plain"}, b'{"state": "confirmed"}', 415, "application/json"),
    (TOKEN, {"Origin": "http://evil.example"}, b'{"state": "confirmed"}', 403, "Origin 'http://evil.example'"),
    (TOKEN, {"Sec-Fetch-Site": "cross-site"}, b'{"state": "confirmed"}', 403, "Sec-Fetch-Site"),
    (TOKEN, {"Host": "rebound.example:8310"}, b'{"state": "confirmed"}', 403, "not a loopback name"),
    (TOKEN, {}, b"{not json", 400, "not JSON"),
    (TOKEN, {}, b'{"state": "confirmed", "note": "' + b"x" * 5000 + b'"}', 413, "larger than 4096"),
])
def test_a_decision_that_may_not_be_the_users_is_refused(server, token, headers, body, code, says):
    status, _, answer = call(server, "POST", f"/api/events/{EVENT}/review", body, token=token,
                             headers={"Content-Type": "application/json", **headers})
    assert status == code and says in answer["error"]
    assert call(server, "GET", f"/api/events/{EVENT}")[2]["state"] == "open"


def test_same_origin_browser_headers_are_accepted(server):
    host = f"127.0.0.1:{server.port}"
    status, _, body = review(server, {"state": "confirmed"},
                             headers={"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"})
    assert status == 200 and body["state"] == "confirmed"


def test_a_post_without_length_is_refused(server):
    response = raw_request("127.0.0.1", server.port,
                           f"POST /api/events/{EVENT}/review HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                           f"{TOKEN}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".encode())
    assert response.startswith(b"HTTP/1.0 411"), response[:100]


def test_the_token_link_opens_the_view_with_its_filters_and_a_cookie(server):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", f"/events?camera=tower-3&token={TOKEN}&state=open")
    response = connection.getresponse()
    assert response.status == 303 and response.getheader("Location") == "/events?camera=tower-3&state=open"
    assert "HttpOnly" in response.getheader("Set-Cookie") and "SameSite=Strict" in response.getheader("Set-Cookie")
    connection.close()
    status, headers, _ = call(server, "GET", "/events", headers={"Accept": "text/html"})
    assert status == 200 and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
