"""Sinks and their delivery threads: rotation, retries with backoff, webhook status handling, real MQTT."""

from __future__ import annotations

import http.server
import json
import os
import threading
import time

import pytest

from pipeline.config import ConfigError, MqttSinkConfig, RetryConfig, WebhookSinkConfig
from pipeline.outputs.outbox import Message, Outbox
from pipeline.outputs.sinks import Deliverer, DeliveryError, JsonlSink, MqttSink, Sink, WebhookSink
from tests.support.disk import fill
from tests.support.mqtt import Broker, Subscriber, mosquitto_available

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def messages(n: int, kind: str = "events") -> list[Message]:
    return [Message(i + 1, kind, "cam", json.dumps({"n": i, "pad": "x" * 40})) for i in range(n)]


def test_jsonl_rotates_and_keeps_the_configured_backups(tmp_path):
    sink = JsonlSink(tmp_path, ["events"], max_bytes=4096, backups=2)
    assert sink.deliver(messages(300)) == list(range(1, 301))
    sink.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 4096
    # What is kept is the newest, in order, every line whole.
    lines = [json.loads(line)["n"] for name in files[::-1] for line in (tmp_path / name).read_text().splitlines()]
    assert lines == list(range(300 - len(lines), 300))


class FlakySink(Sink):
    name = "flaky"
    kinds = frozenset({"events"})

    def __init__(self, failures: int):
        self.failures = failures
        self.received: list[int] = []
        self.attempts: list[float] = []

    def deliver(self, batch):
        self.attempts.append(time.monotonic())
        if self.failures:
            self.failures -= 1
            # One message gets through before the failure: it must not be delivered twice.
            self.received.append(batch[0].id)
            raise DeliveryError("broker away", [batch[0].id])
        self.received += [m.id for m in batch]
        return [m.id for m in batch]


def test_deliverer_retries_with_growing_jittered_delays_and_keeps_order(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(20):
        box.enqueue("events", "cam", json.dumps({"n": i}), ["flaky"], 0.0)
    sink = FlakySink(failures=4)
    deliverer = Deliverer(box, sink, RetryConfig(initial_s=0.1, max_s=0.4))
    deliverer.start()
    deadline = time.monotonic() + 20
    while box.backlog().get("flaky") and time.monotonic() < deadline:
        time.sleep(0.05)
    deliverer.finish(1.0)
    deliverer.join(5)
    assert sorted(sink.received) == sink.received == list(range(1, 21))  # once each, in order
    gaps = [b - a for a, b in zip(sink.attempts, sink.attempts[1:])][:4]
    # Delays 0.1, 0.2, 0.4, 0.4 (capped), each jittered to 50-100%. A busy machine only lengthens a wait, so the
    # lower bound is exact (no retry storm); the upper one allows 1 s of scheduling delay and still catches a
    # retry that ignores the configured schedule (the 1 s default, the 60 s cap).
    for gap, delay in zip(gaps, [0.1, 0.2, 0.4, 0.4]):
        assert 0.5 * delay - 0.02 <= gap <= delay + 1.0, gaps
    assert deliverer.failures == 4 and deliverer.delivered == 20 and deliverer.healthy


class Receiver(http.server.BaseHTTPRequestHandler):
    statuses: list[int] = []
    bodies: list[dict] = []
    auth: list[str] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = Receiver.statuses.pop(0) if Receiver.statuses else 200
        if status == 200:
            Receiver.bodies.append(body)
            Receiver.auth.append(self.headers.get("Authorization", ""))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.statuses, Receiver.bodies, Receiver.auth = [], [], []
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_webhook_retries_server_errors_and_sets_aside_refused_messages(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", "tok-123")
    sink = WebhookSink(WebhookSinkConfig(url=receiver, token_env="HOOK_TOKEN"), tmp_path)
    Receiver.statuses = [200, 503]
    with pytest.raises(DeliveryError) as failure:
        sink.deliver(messages(3))
    assert failure.value.delivered == [1] and "HTTP 503" in str(failure.value)
    Receiver.statuses = [422]  # refused for good: kept aside, the queue moves on
    assert sink.deliver(messages(3)[1:]) == [2, 3]
    assert [b["n"] for b in Receiver.bodies] == [0, 2]
    assert set(Receiver.auth) == {"Bearer tok-123"}
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert rejected == [{"status": 422, "kind": "events", "payload": {"n": 1, "pad": "x" * 40}}]


def test_a_missing_credential_variable_names_the_key(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match="output.mqtt.password_env: environment variable NOT_SET_ANYWHERE"):
        MqttSink(MqttSinkConfig(host="h", username_env="HOME", password_env="NOT_SET_ANYWHERE"))


def test_mqtt_settings_that_cannot_work_are_refused_before_connecting(tmp_path, monkeypatch):
    monkeypatch.setenv("MQTT_TEST_PW", "pw")
    with pytest.raises(ConfigError, match="^output.mqtt: password_env needs username_env$"):
        MqttSink(MqttSinkConfig(host="h", password_env="MQTT_TEST_PW"))
    missing = tmp_path / "ca.pem"
    with pytest.raises(ConfigError, match=f"^output.mqtt.ca_file: {missing} does not exist$"):
        MqttSink(MqttSinkConfig(host="h", tls=True, ca_file=str(missing)))


@pytest.fixture
def broker_user(tmp_path):
    reason = mosquitto_available()
    if reason:
        pytest.skip(reason)
    with Broker(tmp_path / "broker", user=("box", "mq-pass-771")) as broker:
        yield broker


def test_mqtt_publishes_with_qos1_to_camera_topics_and_credentials_from_env(broker_user, monkeypatch):
    monkeypatch.setenv("MQ_USER", "box")
    monkeypatch.setenv("MQ_PASS", "mq-pass-771")
    subscriber = Subscriber(broker_user.port, "site/#", user=("box", "mq-pass-771"))
    subscriber.wait_connected()
    monkeypatch.setenv("BOX_ID", "box-7")
    subscriber_all = Subscriber(broker_user.port, "grid/#", user=("box", "mq-pass-771"))
    subscriber_all.wait_connected()
    boxed = MqttSink(MqttSinkConfig(host="127.0.0.1", port=broker_user.port, topic_prefix="grid/${BOX_ID}",
                                    client_id="${BOX_ID}", username_env="MQ_USER", password_env="MQ_PASS"))
    assert boxed.deliver(messages(1)) == [1]
    boxed.close()
    sink = MqttSink(MqttSinkConfig(host="127.0.0.1", port=broker_user.port, topic_prefix="site",
                                   messages=["events", "detections"], username_env="MQ_USER",
                                   password_env="MQ_PASS"))
    batch = messages(3) + [Message(4, "detections", "cam2", json.dumps({"n": 3}))]
    assert sink.deliver(batch) == [1, 2, 3, 4]
    deadline = time.monotonic() + 10
    while len(subscriber.json_messages("site/")) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    got = subscriber.json_messages("site/")
    assert subscriber.raw("site/status") == [b"online"]
    assert [(t, p["n"]) for t, p in got] == [
        ("site/events/cam", 0), ("site/events/cam", 1), ("site/events/cam", 2), ("site/detections/cam2", 3)]
    sink.close()
    subscriber.close()
    assert [t for t, _ in subscriber_all.json_messages("grid/")] == ["grid/box-7/events/cam"]
    subscriber_all.close()


def test_mqtt_wrong_password_and_absent_broker_are_delivery_errors(broker_user, monkeypatch):
    monkeypatch.setenv("MQ_USER", "box")
    monkeypatch.setenv("MQ_PASS", "wrong-pass-5521")
    sink = MqttSink(MqttSinkConfig(host="127.0.0.1", port=broker_user.port, username_env="MQ_USER",
                                   password_env="MQ_PASS", ack_timeout_s=3))
    with pytest.raises(DeliveryError, match="refused") as refused:
        sink.deliver(messages(1))
    assert "wrong-pass-5521" not in str(refused.value)
    broker_user.stop()
    with pytest.raises(DeliveryError, match="cannot connect"):
        sink.deliver(messages(1))
    sink.close()


def test_mqtt_over_tls_trusts_the_configured_ca_only(tmp_path):
    reason = mosquitto_available()
    if reason:
        pytest.skip(reason)
    with Broker(tmp_path / "tls", tls=True) as broker:
        sink = MqttSink(MqttSinkConfig(host="127.0.0.1", port=broker.port, tls=True, ca_file=str(broker.ca_file),
                                       ack_timeout_s=5))
        assert sink.deliver(messages(2)) == [1, 2]
        sink.close()
        untrusting = MqttSink(MqttSinkConfig(host="127.0.0.1", port=broker.port, tls=True, ack_timeout_s=5))
        with pytest.raises(DeliveryError, match="certificate verify failed"):
            untrusting.deliver(messages(1))
        untrusting.close()


def test_a_torn_last_line_is_set_aside_before_appending(tmp_path):
    # A crash mid-write left half a record without its newline; the next start must not glue the next one to it.
    path = tmp_path / "events.jsonl"
    path.write_text('{"n":1}\n{"n":2}\n{"n":3,"cam')
    sink = JsonlSink(tmp_path, ["events"], max_bytes=1 << 20, backups=1)
    sink.deliver([Message(7, "events", "cam", '{"n":3,"camera":"cam"}')])
    sink.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [1, 2, 3]
    assert (tmp_path / "events.jsonl.torn").read_text() == '{"n":3,"cam\n'
    # A whole file is left as it is.
    JsonlSink(tmp_path, ["events"], max_bytes=1 << 20, backups=1).close()
    assert (tmp_path / "events.jsonl.torn").read_text() == '{"n":3,"cam\n'


def test_a_full_disk_is_a_retried_delivery_failure_not_a_dead_output(tmp_path, caplog):
    # /dev/full answers every write with ENOSPC, as a full disk does.
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    target = tmp_path / "detections.jsonl"
    target.symlink_to("/dev/full")
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(5):
        box.enqueue("detections", "cam", json.dumps({"n": i}), ["jsonl"], 0.0)
    sink = JsonlSink(tmp_path, ["detections"], max_bytes=1 << 20, backups=1)
    deliverer = Deliverer(box, sink, RetryConfig(initial_s=0.05, max_s=0.1))
    deliverer.start()
    deadline = time.monotonic() + 20
    while deliverer.failures < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert deliverer.failures >= 3 and deliverer.is_alive() and not deliverer.healthy
    assert "No space left on device" in deliverer.last_error and box.backlog()["jsonl"] == 5
    target.unlink()  # the disk has room again
    while box.backlog().get("jsonl") and time.monotonic() < deadline:
        time.sleep(0.05)
    deliverer.finish(1.0)
    deliverer.join(5)
    assert [json.loads(line)["n"] for line in target.read_text().splitlines()] == [0, 1, 2, 3, 4]
    assert deliverer.healthy and "delivery thread failed" not in caplog.text


def test_a_delivery_thread_outlives_an_outbox_that_cannot_commit(small_disk, tmp_path):
    """The outbox on a full disk: its acknowledgements fail; the thread retries with backoff, says so, and
    delivers the rest once space is back (a message delivered but not forgotten may come twice)."""
    box = Outbox(small_disk / "o.sqlite")
    for i in range(300):
        box.enqueue("events", "cam", json.dumps({"n": i, "pad": "x" * 200}), ["flaky"], 0.0)
    sink = FlakySink(failures=0)
    filler = fill(small_disk)
    deliverer = Deliverer(box, sink, RetryConfig(initial_s=0.1, max_s=0.2))
    deliverer.start()
    deadline = time.monotonic() + 20
    while deliverer.failures < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert deliverer.is_alive() and not deliverer.healthy and "cannot record" in deliverer.last_error
    filler.unlink()
    while box.backlog().get("flaky") and time.monotonic() < deadline:
        time.sleep(0.05)
    deliverer.finish(1.0)
    deliverer.join(5)
    assert box.backlog() == {} and deliverer.healthy
    assert set(sink.received) == set(range(1, 301))
