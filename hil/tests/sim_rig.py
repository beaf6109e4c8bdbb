"""The ``sim`` rig: the agent as a process on this machine, supervised like systemd would.

The agent runs ``edge-agent run`` on ``hardware: raspberry-pi``, so its serial driver opens
a real tty: a pty whose other end is the byte-exact DSMR emulator of ``edge_agent.devices.dsmr``.
There is no GPIO chip or I2C adapter here (those are the ``vm`` and ``pi`` rigs' features).
``$NOTIFY_SOCKET`` is a datagram socket the rig reads, so READY=1 is checked as systemd
would check it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from edge_agent.devices.dsmr.emulator import DsmrEmulator

from .rig import P1Meter, Result, Rig

READY_TIMEOUT = 20.0


class PtyMeter(P1Meter):
    def __init__(self, emulator: DsmrEmulator) -> None:
        self.emulator = emulator

    def set_power(self, watts: float) -> None:
        self.emulator.set_power(watts)

    def unplug(self) -> None:
        self.emulator.unplug()

    def replug(self) -> None:
        self.emulator.replug()


class SimRig(Rig):
    name = "sim"
    key_owner = ""  # the agent runs as this user

    def __init__(self, workdir: Path, broker_port: int) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.broker_url = f"mqtt://127.0.0.1:{broker_port}"
        self.site_path = str(workdir / "etc" / "site.yaml")
        self.seal_path = str(workdir / "etc" / "it-seal.pub")
        self.state_dir = str(workdir / "state")
        self.log_path = workdir / "agent.log"
        self._meter = DsmrEmulator(link_dir=workdir)
        self._meter.start()
        self.p1_port = self._meter.path
        self._proc: subprocess.Popen[bytes] | None = None
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify_path = str(workdir / "notify.sock")
        self._notify.bind(self._notify_path)
        self._notify.settimeout(0.2)
        self.notifications: list[str] = []

    def sh(self, command: str, timeout: float = 60.0) -> Result:
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        p = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                           timeout=timeout, env=env, check=False)
        return Result(p.returncode, p.stdout + p.stderr)

    def put_file(self, path: str, data: bytes, mode: str = "0640") -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(int(mode, 8))

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("the agent is already running")
        self.enrol()
        self._drain_notify()
        env = dict(os.environ, NOTIFY_SOCKET=self._notify_path)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "edge_agent", "run", "-c", self.site_path],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        if not self.wait_notify("READY=1", READY_TIMEOUT):
            raise AssertionError(f"no READY=1 within {READY_TIMEOUT} s\n{self.logs()[-3000:]}")

    def wait_notify(self, what: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                return False
            with contextlib.suppress(TimeoutError):
                msg = self._notify.recv(4096).decode(errors="replace")
                self.notifications.append(msg)
                if what in msg.split("\n"):
                    return True
        return False

    def _drain_notify(self) -> None:
        self._notify.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                self.notifications.append(self._notify.recv(4096).decode(errors="replace"))
        self._notify.settimeout(0.2)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def main_pid(self) -> int:
        if self._proc is None or self._proc.poll() is not None:
            raise AssertionError("the agent is not running")
        return self._proc.pid

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def reload(self) -> None:
        os.kill(self.main_pid(), signal.SIGHUP)

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def p1(self) -> P1Meter:
        return PtyMeter(self._meter)

    def close(self) -> None:
        self.stop()
        self._meter.stop()
        self._notify.close()
