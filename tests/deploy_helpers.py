"""Shared helpers for the deployment tests: a fake systemd notify socket."""

from __future__ import annotations

import socket
import time
from pathlib import Path


class NotifySocket:
    """A real AF_UNIX datagram socket standing in for systemd's ``$NOTIFY_SOCKET``."""

    def __init__(self, path: Path | None = None, abstract: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract is not None:
            self.address = "@" + abstract
            self.sock.bind("\0" + abstract)
        else:
            assert path is not None
            self.address = str(path)
            self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def close(self) -> None:
        self.sock.close()

    def poll(self, timeout: float = 0.0) -> list[dict[str, str]]:
        """Collect every datagram that arrives within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        new: list[dict[str, str]] = []
        while True:
            self.sock.settimeout(max(0.0, deadline - time.monotonic()))  # 0 = non-blocking
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                break
            new.append(dict(line.split("=", 1) for line in data.decode().splitlines() if line))
        self.messages.extend(new)
        return new

    def wait_for(self, key: str, timeout: float = 20.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.poll(0.1):
                if key in m:
                    return m
        raise AssertionError(f"no {key} within {timeout}s; got {self.messages[-5:]}")

    def count(self, key: str, within: float) -> int:
        return sum(1 for m in self.poll(within) if key in m)
