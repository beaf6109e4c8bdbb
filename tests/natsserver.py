"""A throwaway NATS server with its MQTT listener (MQTT 3.1.1 only), on free loopback ports.

    with NatsServer(tmpdir) as n:      # JetStream on (MQTT needs it), store in tmpdir
        n.mqtt_port

``users`` is a NATS ``authorization { users = [...] }`` body, for permission tests.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

from edge_agent.tools.mosquitto import free_port


def find_nats() -> str:
    for cand in (shutil.which("nats-server"), "/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if cand and Path(cand).exists():
            return cand
    pytest.skip("nats-server is not installed (scripts/setup.sh installs it)")


class NatsServer:
    def __init__(self, workdir: Path, users: str = "") -> None:
        self.binary = find_nats()
        workdir.mkdir(parents=True, exist_ok=True)
        self.port, self.mqtt_port = free_port(), free_port()
        self.conf = workdir / "nats.conf"
        self.log = workdir / "nats.log"
        auth = f"authorization {{ users = [ {users} ] }}\n" if users else ""
        self.conf.write_text(
            f"server_name: edge-test-{self.port}\n"
            f"listen: 127.0.0.1:{self.port}\n"
            f'jetstream {{ store_dir: "{workdir / "js"}" }}\n'
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port} }}\n" + auth)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def start(self, timeout: float = 15.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server did not listen on {self.mqtt_port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
