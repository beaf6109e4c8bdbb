"""systemd's notify protocol (sd_notify(3)), without libsystemd.

    n = Notifier.from_env()          # a no-op when not started by systemd (no NOTIFY_SOCKET)
    n.ready("running: 2 channels")   # READY=1 + STATUS=...
    n.watchdog()                     # WATCHDOG=1 (only when the pipeline is really alive)
    n.reloading(); ...; n.ready()    # RELOADING=1 + MONOTONIC_USEC=..., then READY=1
    n.stopping()                     # STOPPING=1

One datagram per call to ``$NOTIFY_SOCKET``: a filesystem path, or an abstract socket
written ``@name``. Sending never raises: a daemon must not die because its supervisor's
socket went away, so failures are counted in ``errors`` and logged once.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("edge_agent.daemon.sdnotify")


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``WATCHDOG_USEC``), or None when off.

    ``WATCHDOG_PID``, when set, must be this process (systemd sets it for the main PID).
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


class Notifier:
    def __init__(self, address: str | None) -> None:
        self.address = address
        self.errors = 0
        self.sent: list[str] = []  # the last messages, for status and tests (bounded)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if env is None else env
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` lines as one datagram. True when sent."""
        if self.address is None:
            return False
        msg = "\n".join(fields)
        addr = self.address
        target = "\0" + addr[1:] if addr.startswith("@") else addr
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(msg.encode("utf-8"), target)
        except OSError as exc:
            self.errors += 1
            if self.errors == 1:
                log.warning("cannot notify systemd at %s: %s", addr, exc)
            return False
        self.sent = [*self.sent[-31:], msg]
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def reloading(self, status: str = "reloading configuration") -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", f"STATUS={status}")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")
