"""Throwaway mosquitto brokers on free loopback ports (demo, tests, HIL rigs).

    with Mosquitto(tmpdir) as broker:     # started, listening on 127.0.0.1:<free port>
        broker.url                        # "mqtt://127.0.0.1:PORT"
        broker.kill(); broker.start()     # SIGKILL and restart on the same port
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

INSTALL_HINT = "mosquitto is not installed: sudo apt-get install -y mosquitto"


class MosquittoMissing(RuntimeError):
    pass


def find_mosquitto() -> str:
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise MosquittoMissing(INSTALL_HINT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Mosquitto:
    """One mosquitto process with its own config file in ``workdir``."""

    def __init__(self, workdir: Path, port: int | None = None, extra: str = "",
                 listener_extra: str = "", allow_anonymous: bool = True,
                 tls: bool = False, per_listener_settings: bool = False,
                 listeners: Sequence[tuple[int, str]] = ()) -> None:
        """``listeners``: more (port, config text) listeners on 127.0.0.1; with
        ``per_listener_settings`` each listener has its own auth, CA and ACL settings."""
        self.binary = find_mosquitto()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls = tls
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        self.log = workdir / f"mosquitto-{self.port}.log"
        # started as root, mosquitto drops to user "mosquitto", which cannot read a private
        # temp dir; a throwaway loopback broker keeps the caller's user instead
        user = "user root\n" if os.geteuid() == 0 else ""
        anon = f"allow_anonymous {'true' if allow_anonymous else 'false'}\n"
        self.listener_ports = [self.port] + [p for p, _ in listeners]
        more = "".join(f"listener {p} 127.0.0.1\n{text}\n" for p, text in listeners)
        self.conf.write_text(
            user +
            f"per_listener_settings {'true' if per_listener_settings else 'false'}\n"
            + ("" if per_listener_settings else anon) +
            "persistence false\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "max_inflight_messages 0\nmax_queued_messages 100000\n"
            f"{extra}\n"
            f"listener {self.port} 127.0.0.1\n"
            + (anon if per_listener_settings else "") +
            f"{listener_extra}\n{more}")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"mosquitto exited: {err}{log}")
            try:
                for port in self.listener_ports:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        pass
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout}s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
