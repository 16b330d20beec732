"""Sinks deliver outbox messages: rotating JSON lines files, MQTT (paho-mqtt, QoS 1), an HTTP webhook.

A sink's `deliver(messages)` returns the ids it delivered (acknowledged by the receiver: written and synced,
PUBACK, HTTP 2xx) or raises DeliveryError carrying the ids delivered before the failure. A `Deliverer` thread per
sink fetches from the outbox, delivers, acknowledges, and after a failure waits with exponential backoff and
jitter before it retries the same messages, so a broker that is away costs nothing but the backlog.
Credentials come from environment variables named in the config; no message of this module quotes them.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import pathlib
import random
import sqlite3
import socket
import threading
import time
import urllib.error
import urllib.request

from pipeline.config import (ConfigError, MqttSinkConfig, RetryConfig, WebhookSinkConfig, expand_placeholders,
                             redact_url)
from pipeline.outputs.outbox import Message, Outbox

logger = logging.getLogger(__name__)

FILES = {"detections": "detections.jsonl", "events": "events.jsonl"}
REJECTED_FILE = "rejected.jsonl"


class DeliveryError(Exception):
    def __init__(self, message: str, delivered: list[int] | None = None):
        super().__init__(message)
        self.delivered = delivered or []


def env_secret(name: str | None, where: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{where}: environment variable {name} is not set")
    return value


def mqtt_config_problems(config: MqttSinkConfig, where: str = "output.mqtt") -> list[str]:
    """What the MQTT settings need beyond their own shape (preflight lists these; MqttSink refuses the first).
    The environment variables are checked where their values are read."""
    problems = []
    if config.password_env and not config.username_env:
        problems.append(f"{where}: password_env needs username_env")
    if config.ca_file and not pathlib.Path(config.ca_file).is_file():
        problems.append(f"{where}.ca_file: {config.ca_file} does not exist")
    return problems


class Sink(abc.ABC):
    name: str
    kinds: frozenset[str]

    @abc.abstractmethod
    def deliver(self, messages: list[Message]) -> list[int]:
        """Deliver in order; the ids delivered (all, or raise DeliveryError with the ones before a failure)."""

    def close(self) -> None:
        pass


# --- JSON lines files ---------------------------------------------------------------------------------------
def set_aside_torn_line(path: pathlib.Path) -> None:
    """A crash mid-write leaves a last line without its newline; appending to it would glue two records into
    one unparseable line. The fragment moves to `<name>.torn` (kept, never deleted) and the file is cut back
    to its last complete line. The message it belonged to was never acknowledged, so the outbox writes it
    again whole."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+") as handle:
        # The fragment is at most one message long; read backwards to the last newline.
        end = size
        block = 1 << 16
        while end > 0:
            start = max(0, end - block)
            handle.seek(start)
            chunk = handle.read(end - start)
            if end == size and chunk.endswith(b"\n"):
                return
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                cut = start + newline + 1
                break
            end = start
        else:
            cut = 0
        handle.seek(cut)
        fragment = handle.read()
        with open(path.with_name(path.name + ".torn"), "ab") as torn:
            torn.write(fragment + b"\n")
            torn.flush()
            os.fsync(torn.fileno())
        handle.truncate(cut)
        handle.flush()
        os.fsync(handle.fileno())
    logger.warning("%s: its last line was cut short (a crash while writing); %d bytes moved to %s.torn", path,
                   len(fragment), path.name)


class RotatingFile:
    """Appends lines; at `max_bytes` the file becomes name.1 (name.1 becomes name.2, ...), `backups` kept."""

    def __init__(self, path: pathlib.Path, max_bytes: int, backups: int):
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        set_aside_torn_line(path)
        self.handle = open(path, "a", encoding="utf-8")
        self.size = self.handle.tell()

    def write(self, line: str) -> None:
        data = line + "\n"
        if self.size and self.size + len(data) > self.max_bytes:
            self.rotate()
        self.handle.write(data)
        self.size += len(data.encode("utf-8"))

    def rotate(self) -> None:
        self.sync()
        self.handle.close()
        if self.backups == 0:
            self.path.unlink()
        else:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self.handle = open(self.path, "a", encoding="utf-8")
        self.size = 0

    def sync(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        if not self.handle.closed:
            self.sync()
            self.handle.close()


class JsonlSink(Sink):
    name = "jsonl"

    def __init__(self, directory: str | pathlib.Path, kinds, max_bytes: int, backups: int):
        self.kinds = frozenset(kinds)
        directory = pathlib.Path(directory)
        self.files = {kind: RotatingFile(directory / FILES[kind], max_bytes, backups) for kind in self.kinds}

    def deliver(self, messages: list[Message]) -> list[int]:
        touched = set()
        try:
            self._reopen_closed()
            for message in messages:
                self.files[message.kind].write(message.payload)
                touched.add(message.kind)
            for kind in touched:  # on disk before the outbox forgets them
                self.files[kind].sync()
        except OSError as exc:
            # A full or failing disk: nothing of this batch is acknowledged (a partial line is set aside at the
            # next start), the Deliverer retries with backoff and the messages wait in the outbox.
            for file in self.files.values():
                try:
                    file.handle.close()
                except OSError:
                    pass  # its buffered tail could not be written either; the next open sets a fragment aside
            raise DeliveryError(f"{exc.filename or 'jsonl'}: cannot write: {exc.strerror or exc}") from None
        return [m.id for m in messages]

    def _reopen_closed(self) -> None:
        """After a failed write the files are closed; they reopen (setting aside a torn line) on the retry."""
        for kind, file in list(self.files.items()):
            if file.handle.closed:
                self.files[kind] = RotatingFile(file.path, file.max_bytes, file.backups)

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()


# --- MQTT ---------------------------------------------------------------------------------------------------
class MqttSink(Sink):
    name = "mqtt"

    def __init__(self, config: MqttSinkConfig):
        self.config = config
        self.kinds = frozenset(config.messages)
        where = "output.mqtt"
        self.username = env_secret(config.username_env, f"{where}.username_env")
        self.password = env_secret(config.password_env, f"{where}.password_env")
        problems = mqtt_config_problems(config, where)
        if problems:
            raise ConfigError(problems[0])
        # ${VAR} in the prefix and client id: one config for many boxes (INSPECTOR_BOX_ID from the environment).
        self.prefix = expand_placeholders(config.topic_prefix, f"{where}.topic_prefix")
        self.client_id = expand_placeholders(config.client_id or f"inspector-{socket.gethostname()}",
                                             f"{where}.client_id")
        self.status_topic = f"{self.prefix}/status"
        self.client = None
        self.connected = threading.Event()
        self.refused: str | None = None

    def topic(self, message: Message) -> str:
        return f"{self.prefix}/{message.kind}/{message.camera}"

    def _connect(self) -> None:
        import paho.mqtt.client as mqtt

        self._reset()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True,
                             reconnect_on_failure=False)  # the Deliverer retries, with jitter
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.config.tls:
            client.tls_set(ca_certs=self.config.ca_file)
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self.connected.clear()
        self.refused = None

        def on_connect(_client, _userdata, _flags, reason_code, _properties):
            if reason_code.is_failure:
                self.refused = str(reason_code)
            else:
                self.connected.set()

        def on_disconnect(_client, _userdata, _flags, _reason_code, _properties):
            self.connected.clear()

        client.on_connect, client.on_disconnect = on_connect, on_disconnect
        self.client = client
        try:
            client.connect(self.config.host, self.config.port, self.config.keepalive_s)
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"cannot connect to {self.config.host}:{self.config.port}: {exc}") from None
        client.loop_start()
        deadline = time.monotonic() + self.config.ack_timeout_s
        while not self.connected.wait(0.05):
            if self.refused or time.monotonic() > deadline:
                reason = self.refused or "no CONNACK"
                raise DeliveryError(f"broker {self.config.host}:{self.config.port} refused the connection: {reason}")
        client.publish(self.status_topic, "online", qos=1, retain=True)
        logger.info("mqtt: connected to %s:%d as %s", self.config.host, self.config.port, self.client_id)

    def _reset(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.disconnect()
            except Exception:  # already gone
                pass
            client.loop_stop()

    def deliver(self, messages: list[Message]) -> list[int]:
        if self.client is None or not self.connected.is_set():
            self._connect()
        infos = [(m.id, self.client.publish(self.topic(m), m.payload, qos=1)) for m in messages]
        deadline = time.monotonic() + self.config.ack_timeout_s
        delivered = []
        for message_id, info in infos:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
            if not info.is_published():
                # paho's queue of this connection is dropped: what was not acknowledged is sent again from the
                # outbox on the next connection (at least once, in order).
                self._reset()
                raise DeliveryError(f"broker {self.config.host}:{self.config.port}: no PUBACK within "
                                    f"{self.config.ack_timeout_s:.0f} s", delivered)
            delivered.append(message_id)
        return delivered

    def close(self) -> None:
        if self.client is not None and self.connected.is_set():
            try:
                self.client.publish(self.status_topic, "offline", qos=1, retain=True).wait_for_publish(2.0)
            except Exception:
                pass
        self._reset()


# --- HTTP webhook -------------------------------------------------------------------------------------------
class WebhookSink(Sink):
    name = "webhook"

    def __init__(self, config: WebhookSinkConfig, directory: str | pathlib.Path):
        self.config = config
        self.kinds = frozenset(config.messages)
        self.token = env_secret(config.token_env, "output.webhook.token_env")
        self.safe_url = redact_url(config.url)
        self.rejected_path = pathlib.Path(directory) / REJECTED_FILE

    def deliver(self, messages: list[Message]) -> list[int]:
        delivered = []
        for message in messages:
            request = urllib.request.Request(self.config.url, data=message.payload.encode("utf-8"), method="POST",
                                             headers={"Content-Type": "application/json"})
            if self.token:
                request.add_header("Authorization", f"Bearer {self.token}")
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                    response.read()
            except urllib.error.HTTPError as exc:
                if 400 <= exc.code < 500 and exc.code not in (408, 425, 429):
                    # The receiver refuses this message for good: retrying cannot help, blocking the queue would
                    # hold every later event back. Kept beside the outputs, never dropped silently.
                    self._reject(message, exc.code)
                    delivered.append(message.id)
                    continue
                raise DeliveryError(f"{self.safe_url}: HTTP {exc.code}", delivered) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise DeliveryError(f"{self.safe_url}: {reason}", delivered) from None
            delivered.append(message.id)
        return delivered

    def _reject(self, message: Message, status: int) -> None:
        logger.error("webhook %s refused message %d with HTTP %d; kept in %s", self.safe_url, message.id, status,
                     self.rejected_path)
        with open(self.rejected_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"status": status, "kind": message.kind, "payload": json.loads(message.payload)})
                         + "\n")


# --- delivery threads ---------------------------------------------------------------------------------------
class Deliverer(threading.Thread):
    """One sink's delivery loop. Counters are read by metrics and the status page."""

    BATCH = 200

    def __init__(self, outbox: Outbox, sink: Sink, retry: RetryConfig):
        super().__init__(name=f"deliver-{sink.name}", daemon=True)
        self.outbox, self.sink, self.retry = outbox, sink, retry
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.deadline = float("inf")  # after finish(): deliver until the backlog is empty or this time
        self.delivered = 0
        self.failures = 0
        self.last_error = ""
        self.healthy = True

    def run(self) -> None:
        backoff = self.retry.initial_s
        try:
            while True:
                stopping = self.stop_event.is_set()
                if self._out_of_time():
                    return
                try:
                    messages = self.outbox.fetch(self.sink.name, self.BATCH)
                except sqlite3.Error as exc:  # the outbox's disk: its reads fail too when it is gone or broken
                    backoff = self._retry_after(f"outbox {self.outbox.path}: cannot read: {exc}", backoff)
                    if backoff is None:
                        return
                    continue
                if not messages:
                    if stopping:
                        return
                    self.wake.wait(0.2)
                    self.wake.clear()
                    continue
                try:
                    delivered = self.sink.deliver(messages)
                    error = None
                except DeliveryError as exc:
                    delivered, error = exc.delivered, exc
                try:
                    self.outbox.ack(self.sink.name, delivered)
                except sqlite3.Error as exc:
                    # Delivered but not forgotten (a full disk cannot commit the delete): delivered again after
                    # the retry, which receivers de-duplicate by the messages' ids (at least once).
                    error = f"outbox {self.outbox.path}: cannot record {len(delivered)} deliveries: {exc}"
                    delivered = []
                self.delivered += len(delivered)
                if error is None:
                    backoff = self.retry.initial_s
                    self.healthy = True
                    continue
                backoff = self._retry_after(str(error), backoff)
                if backoff is None:
                    return
        except Exception:  # a bug must not pass silently: the backlog stays in the outbox
            logger.exception("output %s: delivery thread failed", self.sink.name)
            self.healthy = False
        finally:
            try:
                self.sink.close()
            finally:
                self.outbox.close()

    def _retry_after(self, error: str, backoff: float) -> float | None:
        """Count and say the failure (rate-limited), wait a jittered backoff; the next backoff, or None when out
        of time."""
        self.failures += 1
        self.healthy = False
        if error != self.last_error or self.failures % 20 == 1:
            logger.warning("output %s: %s; retrying in up to %.0f s (backlog kept in the outbox)", self.sink.name,
                           error, backoff)
        self.last_error = error
        waited = time.monotonic() + backoff * random.uniform(0.5, 1.0)
        while time.monotonic() < waited:
            if self._out_of_time():
                return None
            time.sleep(min(0.1, max(0.0, waited - time.monotonic())))
        return min(backoff * 2, self.retry.max_s)

    def _out_of_time(self) -> bool:
        return self.stop_event.is_set() and time.monotonic() >= self.deadline

    def finish(self, grace_s: float | None) -> None:
        """Stop after delivering what is pending, for at most grace_s (None: until the backlog is empty)."""
        if grace_s is not None:
            self.deadline = time.monotonic() + grace_s
        self.stop_event.set()
        self.wake.set()
