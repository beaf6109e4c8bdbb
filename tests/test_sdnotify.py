"""sd_notify and the watchdog: a real AF_UNIX datagram socket stands in for systemd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.core.model import Channel
from edge_agent.daemon.sdnotify import Notifier, watchdog_interval
from edge_agent.daemon.service import Service
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.tools.mosquitto import Mosquitto
from tests.conftest import wait_for, write_site
from tests.deploy_helpers import NotifySocket

LOAD = "  - {id: gen, type: load, channel: ot, rate: 50}\n"


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.close()


def test_notifier_sends_datagrams(notify_socket: NotifySocket) -> None:
    n = Notifier(notify_socket.address)
    assert n.ready("up")
    assert n.watchdog()
    assert n.reloading()
    assert n.stopping()
    msgs = notify_socket.poll(0.2)
    assert msgs[0] == {"READY": "1", "STATUS": "up"}
    assert msgs[1] == {"WATCHDOG": "1"}
    assert msgs[2]["RELOADING"] == "1" and int(msgs[2]["MONOTONIC_USEC"]) > 0
    assert msgs[3]["STOPPING"] == "1"


def test_abstract_socket() -> None:
    s = NotifySocket(abstract=f"edge-agent-test-{uuid.uuid4().hex}")
    try:
        assert Notifier.from_env({"NOTIFY_SOCKET": s.address}).ready()
        assert s.poll(0.2) == [{"READY": "1"}]
    finally:
        s.close()


def test_without_systemd_and_with_a_dead_socket(tmp_path: Path) -> None:
    assert not Notifier.from_env({}).enabled
    assert Notifier.from_env({}).ready() is False
    n = Notifier(str(tmp_path / "gone.sock"))
    assert n.watchdog() is False and n.watchdog() is False  # never raises
    assert n.errors == 2


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "2000000"}) == pytest.approx(1.0)
    assert watchdog_interval({"WATCHDOG_USEC": "2000000",
                              "WATCHDOG_PID": str(os.getpid())}) == pytest.approx(1.0)
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None


class Running:
    """A Service on a thread, stopped (and unblocked) at the end."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.error: BaseException | None = None
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.svc.run()
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def stop(self) -> None:
        self.release.set()
        self.svc.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def _service(tmp_path: Path, broker: Mosquitto, sock: NotifySocket) -> Service:
    cfg = write_site(tmp_path, broker.url, sensors=LOAD)
    return Service(cfg, load_config(cfg, SENSOR_TYPES), SENSOR_TYPES, stop=threading.Event(),
                   notifier=Notifier(sock.address), watchdog=0.2, status_interval=0.5,
                   # each well above its thread's own beat (writer <= 0.5 s, an idle
                   # uplink about 1 s), so only the stalled thread is ever reported
                   writer_budget=1.0, uplink_budget=2.5)


@pytest.mark.parametrize("stall", ["writer", "uplink"])
def test_watchdog_pings_stop_when_a_core_thread_is_stuck(
        stall: str, tmp_path: Path, broker: Mosquitto, notify_socket: NotifySocket) -> None:
    svc = _service(tmp_path, broker, notify_socket)
    run = Running(svc)
    try:
        notify_socket.wait_for("READY")
        assert notify_socket.count("WATCHDOG", within=1.5) >= 4  # ~every 0.2 s while alive
        agent = svc.agent

        def stuck(*a: object, **kw: object) -> list[object]:
            run.release.wait(60)
            return []

        if stall == "writer":
            agent.queues[Channel.OT].take_alarms = stuck  # type: ignore[method-assign]
        else:
            agent.stores[Channel.OT].lease = stuck  # type: ignore[method-assign]
        assert wait_for(lambda: bool(svc.liveness()), timeout=5)
        assert f"{stall} ot stuck" in svc.liveness()[0]
        notify_socket.poll(0.3)  # a ping may have been in flight
        assert notify_socket.count("WATCHDOG", within=1.5) == 0
        assert any("NOT ALIVE" in m.get("STATUS", "") for m in notify_socket.messages)
    finally:
        run.stop()
    assert run.error is None
    assert any("STOPPING" in m for m in notify_socket.poll(0.5) + notify_socket.messages)


def test_a_sensor_being_restarted_is_alive(
        tmp_path: Path, broker: Mosquitto, notify_socket: NotifySocket) -> None:
    """A sensor thread that ends is restarted by the supervisor: that is not a hang."""
    cfg = write_site(tmp_path, broker.url,
                     sensors="  - {id: brief, type: load, channel: ot, rate: 100, total: 5}\n")
    svc = Service(cfg, load_config(cfg, SENSOR_TYPES), SENSOR_TYPES, stop=threading.Event(),
                  notifier=Notifier(notify_socket.address), watchdog=0.2, poll=0.1)
    assert "sensor brief dead and not scheduled for restart" in svc.liveness()  # not started
    run = Running(svc)
    try:
        notify_socket.wait_for("READY")
        runner = svc.agent.sensors[0]
        assert wait_for(lambda: runner.restart_at > 0 or runner.restarts > 0, timeout=10)
        assert svc.liveness() == []
        assert notify_socket.count("WATCHDOG", within=1.0) >= 3
    finally:
        run.stop()


def test_daemon_under_systemd_protocol(tmp_path: Path, broker: Mosquitto,
                                       notify_socket: NotifySocket) -> None:
    """`edge-agent run` as systemd starts it: READY, WATCHDOG pings, STOPPING on SIGTERM."""
    cfg = write_site(tmp_path, broker.url, sensors=LOAD)
    env = dict(os.environ, NOTIFY_SOCKET=notify_socket.address, WATCHDOG_USEC="600000")
    log = tmp_path / "agent.log"
    with open(log, "ab") as err:
        p = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(cfg)],
                             stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        ready = notify_socket.wait_for("READY")
        assert "site test node n1" in ready["STATUS"]
        assert notify_socket.count("WATCHDOG", within=1.2) >= 2
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    notify_socket.poll(0.2)
    assert any("STOPPING" in m for m in notify_socket.messages)
