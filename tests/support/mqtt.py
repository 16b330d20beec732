"""A real MQTT broker (Debian's mosquitto) on 127.0.0.1 and a real subscriber (paho-mqtt) for tests."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import threading
import time
import uuid

from tests.support.rtsp import free_port, wait_listening


def mosquitto_available() -> str | None:
    if shutil.which("mosquitto") is None and not pathlib.Path("/usr/sbin/mosquitto").exists():
        return "mosquitto not installed (apt-get install mosquitto mosquitto-clients; .ci/run does this)"
    return None


def _binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def make_certificates(directory: pathlib.Path) -> pathlib.Path:
    """A throwaway CA and a server certificate for IP 127.0.0.1 (openssl); returns the CA certificate."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=inspector test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.cnf")
    return directory / "ca.pem"


class Broker:
    """mosquitto with persistence off and, optionally, one user with a password (anonymous refused then)."""

    def __init__(self, directory: pathlib.Path, user: tuple[str, str] | None = None, port: int | None = None,
                 tls: bool = False):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr"]
        if tls:  # a CA of its own and a server certificate for 127.0.0.1: self.ca_file is what clients trust
            self.ca_file = make_certificates(self.directory)
            lines += [f"cafile {self.ca_file}", f"certfile {self.directory / 'server.pem'}",
                      f"keyfile {self.directory / 'server.key'}"]
        if os.geteuid() == 0:  # mosquitto started as root drops to its own user, which cannot read our files
            lines.append("user root")
        if user is None:
            lines.append("allow_anonymous true")
        else:
            passwords = self.directory / "passwords"
            passwords.write_text(f"{user[0]}:{user[1]}\n")
            passwords.chmod(0o600)
            subprocess.run([_binary("mosquitto_passwd"), "-U", str(passwords)], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        self.config = self.directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> "Broker":
        self.log = open(self.directory / "mosquitto.log", "ab")
        self.process = subprocess.Popen([_binary("mosquitto"), "-c", str(self.config)], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        if wait_listening(self.port, self.process):
            return self
        raise RuntimeError(f"mosquitto did not start on {self.port}: "
                           f"{(self.directory / 'mosquitto.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Subscriber:
    """Collects every message under `topic` (QoS 1), reconnecting and re-subscribing when the broker returns."""

    def __init__(self, port: int, topic: str = "#", user: tuple[str, str] | None = None):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-subscriber-{uuid.uuid4().hex[:8]}")
        if user:
            self.client.username_pw_set(*user)
        self.client.reconnect_delay_set(0.1, 0.5)

        def on_connect(client, _userdata, _flags, reason_code, _properties):
            if not reason_code.is_failure:
                client.subscribe(topic, qos=1)
                self.connected.set()

        def on_disconnect(*_args):
            self.connected.clear()

        def on_message(_client, _userdata, message):
            with self.lock:
                self.messages.append((message.topic, message.payload))

        self.client.on_connect, self.client.on_disconnect = on_connect, on_disconnect
        self.client.on_message = on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def wait_connected(self, timeout: float = 15.0) -> None:
        if not self.connected.wait(timeout):
            raise TimeoutError("subscriber did not connect")
        time.sleep(0.3)  # the SUBACK

    def json_messages(self, prefix: str = "") -> list[tuple[str, dict]]:
        with self.lock:
            items = list(self.messages)
        return [(t, json.loads(p)) for t, p in items if t.startswith(prefix) and not t.endswith("/status")]

    def raw(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
