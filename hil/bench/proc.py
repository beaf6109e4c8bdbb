"""The agent under test, as systemd would run it: ``python -m edge_agent run -c SITE``.

    a = AgentUnderTest(site, log, pin_core=None)
    a.start(); a.wait_ready()      # READY=1 on our own NOTIFY_SOCKET (sd_notify protocol)
    a.cpu_seconds(); a.vm("VmHWM") # from /proc/<pid>/stat and /proc/<pid>/status
    a.stop()                       # SIGTERM (the agent flushes and exits 0)

The bench listens on an abstract unix datagram socket and passes it as ``NOTIFY_SOCKET``,
so the startup time is process start to the agent's own READY=1, nothing inferred.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from hil.common import PY, REPO

CLK_TCK = os.sysconf("SC_CLK_TCK")
RUN_TMPFS = "/dev/shm"  # stands in for /run


class AgentFailed(RuntimeError):
    """The agent exited or did not become ready; the message carries its log tail."""


def one_core() -> None:
    """Run this process, and every process it starts from now on (the agent, mosquitto,
    the subscribers: children inherit the affinity), on the lowest core it may use."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def proc_vm(pid: int, field: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/<pid>/status, in bytes (0 when absent)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


class AgentUnderTest:
    def __init__(self, site: Path, log: Path, pin_core: int | None = None,
                 trace: Path | None = None) -> None:
        self.site, self.log, self.pin_core = site, log, pin_core
        self.trace = trace  # alarm path timings (alarmtrace.py) written here at exit
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0  # time.monotonic() just before the process was created
        self.ready_after: float | None = None  # seconds from start to READY=1
        self._sock: socket.socket | None = None
        self.run_dir: Path | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise AgentFailed("agent not started")
        return self.proc.pid

    def start(self) -> AgentUnderTest:
        name = f"hil-bench-notify-{os.getpid()}-{time.monotonic_ns()}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.bind("\0" + name)
        # RuntimeDirectory=edge-agent: a directory on a tmpfs, as systemd gives the service
        # (status.json and the boot-id marker live there)
        self.run_dir = Path(tempfile.mkdtemp(prefix="hil-bench-run-", dir=RUN_TMPFS))
        env = dict(os.environ, PYTHONUNBUFFERED="1", NOTIFY_SOCKET="@" + name,
                   RUNTIME_DIRECTORY=str(self.run_dir))
        env.pop("WATCHDOG_USEC", None)
        module = "edge_agent"
        if self.trace is not None:
            module = "hil.bench.alarmtrace"
            env["EDGE_ALARMTRACE"] = str(self.trace)
        cmd = [PY, "-m", module, "run", "-c", str(self.site)]
        if self.pin_core is not None:
            cmd = ["taskset", "-c", str(self.pin_core), *cmd]  # taskset execs: same pid
        with open(self.log, "ab") as err:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO,
                                         env=env)
        return self

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from process start to READY=1. AgentFailed if it exits or times out."""
        assert self._sock is not None and self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AgentFailed(f"no READY=1 within {timeout:.0f} s\n{self.log_tail()}")
            self._sock.settimeout(min(left, 0.5))
            try:
                msg = self._sock.recv(4096).decode("utf-8", "replace")
            except TimeoutError:
                if self.proc.poll() is not None:
                    raise AgentFailed(f"agent exited ({self.proc.returncode}) before READY=1"
                                      f"\n{self.log_tail()}") from None
                continue
            if "READY=1" in msg.split("\n"):
                self.ready_after = time.monotonic() - self.started
                return self.ready_after

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def vm(self, field: str) -> int:
        return proc_vm(self.pid, field)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
        return self.proc.returncode

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> AgentUnderTest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
