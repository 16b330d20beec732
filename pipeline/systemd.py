"""sd_notify for the systemd unit (Type=notify, WatchdogSec): READY, WATCHDOG pings, STOPPING, STATUS.

Only when running under systemd ($NOTIFY_SOCKET set); a no-op everywhere else. The protocol is one datagram
per message to a unix socket ('@' prefix = abstract namespace), so no library is needed.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError:
        return False
