"""``edge-agent watch``: the live view from a real daemon over its local socket."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.daemon.watch_hub import (
    MAX_WATCHERS,
    Batch,
    Watcher,
    WatchHub,
    numbered,
    reading_event,
)
from edge_agent.daemon.watch_socket import SOCKET_MODE
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from tests.conftest import run_agent, start_agent, stop_agent, wait_for, write_site

EDGE = [sys.executable, "-m", "edge_agent"]
SUBJECT = "resident-4711"


def r(sensor: str, value: float, priority: Priority = Priority.NORMAL,
      channel: Channel = Channel.OT) -> Reading:
    return Reading(sensor, channel, priority, "counter", value, 1.8e9 + value, "count")


# ---------------------------------------------------------------------- the hub, alone


def test_a_full_queue_drops_and_counts_and_never_waits() -> None:
    w = Watcher(limit=5)
    w.offer(Batch(Channel.OT, [(1, 3)], [r("a", i) for i in range(3)]))
    w.offer(Batch(Channel.OT, [(4, 7)], [r("a", i) for i in range(3, 7)]))  # 2 fit
    w.offer(Batch(Channel.OT, [(8, 8)], [r("a", 7)]))  # none fits
    assert (w.queued, w.lost) == (5, 3)
    batches, lost = w.take(0)
    assert lost == 3 and w.queued == 0
    assert [s for b in batches for s, _ in numbered(b)] == [1, 2, 3, 4, 5]


def test_numbers_follow_the_store_lane_order_and_the_filter_keeps_them() -> None:
    # the store numbers alarms first, then normal, then bulk, in order within a lane
    batch = Batch(Channel.OT, [(10, 11), (12, 13), (14, 14)],
                  [r("n", 1), r("b", 2, Priority.BULK), r("a", 3, Priority.ALARM),
                   r("n", 4), r("a", 5, Priority.ALARM)])
    assert [(s, x.value) for s, x in numbered(batch)] == [(10, 3), (11, 5), (12, 1), (13, 4),
                                                          (14, 2)]
    w = Watcher(sensors=frozenset({"n"}))
    w.offer(batch)
    got, _ = w.take(0)
    assert [(s, x.value) for b in got for s, x in numbered(b)] == [(12, 1), (13, 4)]


def test_it_and_subject_values_are_sealed_and_shown_under_the_pseudonym() -> None:
    it = reading_event(Channel.IT, 3, r("p-0123456789abcdef/pulse", 61, channel=Channel.IT))
    assert it["sealed"] is True and "value" not in it
    assert (it["sensor"], it["pseudonym"], it["name"]) == ("pulse", "p-0123456789abcdef",
                                                           "counter")
    it_plain = reading_event(Channel.IT, 4, r("room", 22.5, channel=Channel.IT))
    assert it_plain["sealed"] is True and "value" not in it_plain
    ot_subject = reading_event(Channel.OT, 5, r("p-0123456789abcdef/scale", 70))
    assert ot_subject["sealed"] is True and "value" not in ot_subject
    ot = reading_event(Channel.OT, 6, r("meter", 1234.5))
    assert ot["value"] == 1234.5 and "sealed" not in ot and "pseudonym" not in ot


def test_the_hub_limits_watchers_and_does_nothing_without_them() -> None:
    hub = WatchHub(max_watchers=2)
    hub.accepted(Channel.OT, [(1, 1)], [r("a", 1)])  # nobody watching: nothing kept
    ws = [Watcher(), Watcher(), Watcher()]
    assert [hub.add(w) for w in ws] == [True, True, False] and hub.refused == 1
    hub.accepted(Channel.OT, [(2, 2)], [r("a", 2)])
    assert [w.queued for w in ws] == [1, 1, 0]
    hub.remove(ws[0])
    assert ws[0].closed and hub.add(ws[2])


# ---------------------------------------------------------------------- a real daemon


@pytest.fixture
def short_run_dir() -> Iterator[Path]:
    """A RuntimeDirectory= stand-in others may traverse (as /run/edge-agent with 0750 and a
    group member; here 0755, the socket's own mode does the refusing)."""
    d = Path(tempfile.mkdtemp(prefix="ea-run-"))
    d.chmod(0o755)
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def watch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGE, "watch", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_watch_shows_accepted_readings_matching_what_the_platform_receives(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    ot, it = broker_factory(), broker_factory()
    consumer = Consumer("127.0.0.1", ot.port, "edge/test/n1/ot").start()
    cfg = write_site(tmp_path, ot.url, it.url, sensors=(
        "  - {id: meter, type: load, rate: 20}\n"
        "  - {id: bulk, type: load, rate: 20, priority: bulk}\n"
        f"  - {{id: pulse, type: load, channel: it, rate: 10, subject: {SUBJECT}}}\n"
        "  - {id: room, type: load, channel: it, rate: 10}\n"))
    p = start_agent(cfg, tmp_path / "agent.log")
    sock = tmp_path / "state" / "watch.sock"
    try:
        assert wait_for(sock.exists), (tmp_path / "agent.log").read_text()
        w = watch("--state-dir", str(tmp_path / "state"), "--json", "--duration", "4",
                  "--every", "1")
        assert w.returncode == 0, w.stderr
        events = [json.loads(line) for line in w.stdout.splitlines()]
        text = watch("--state-dir", str(tmp_path / "state"), "--duration", "2",
                     "--sensor", "pulse")
        assert wait_for(lambda: consumer.snapshot().readings > 100)
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
        consumer.stop()
    assert not sock.exists()  # removed when the daemon stops
    assert events[0]["type"] == "hello" and events[0]["channels"] == ["ot", "it"]
    summaries = [e for e in events if e["type"] == "summary"]
    assert len(summaries) >= 3
    assert set(summaries[-1]["channels"]) == {"ot", "it"}
    assert summaries[-1]["channels"]["ot"]["connected"] is True
    assert all(isinstance(s["channels"]["it"]["backlog"], int) for s in summaries)
    readings = [e for e in events if e["type"] == "reading"]
    assert {e["sensor"] for e in readings} == {"meter", "bulk", "pulse", "room"}
    # IT values never in the clear; the subject only as its pseudonym
    for e in readings:
        if e["channel"] == "it":
            assert e["sealed"] is True and "value" not in e, e
    assert {e.get("pseudonym", "")[:2] for e in readings if e["sensor"] == "pulse"} == {"p-"}
    assert SUBJECT not in w.stdout
    # the numbers shown are the ones the platform receives for those very readings
    received = {}
    for m in consumer.snapshot().messages:
        first = m.msg["seq"][0]
        for i, rec in enumerate(m.msg["senml"]):
            received[(rec["n"], rec["v"])] = first + i
    shown = [e for e in readings if e["channel"] == "ot"]
    matched = [e for e in shown if (f"{e['sensor']}/counter", e["value"]) in received]
    assert len(matched) > 20
    assert all(received[(f"{e['sensor']}/counter", e["value"])] == e["seq"] for e in matched)
    # the text view: only the sensor asked for, sealed, under its pseudonym
    assert text.returncode == 0, text.stderr
    lines = [x for x in text.stdout.splitlines() if not x.startswith("--")]
    assert lines and all(" pulse " in x and " sealed " in x and " p-" in x for x in lines)


def test_a_slow_watcher_loses_lines_counted_and_the_pipeline_does_not_wait(
        tmp_path: Path, broker: Mosquitto) -> None:
    cfg = write_site(tmp_path, broker.url, sensors="  - {id: fast, type: load, rate: 4000}\n")
    agent = run_agent(cfg)
    try:
        assert agent.watch_server is not None
        slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(str(agent.watch_server.path))
        slow.sendall(b'{"summary_every": 60}\n')  # and then reads nothing for a while
        assert wait_for(lambda: agent.watch.count() == 1)
        watcher = agent.watch._watchers[0]
        assert wait_for(lambda: watcher.lost > 0, timeout=60)
        store = agent.stores[Channel.OT]
        accepted_then = store.accepted
        assert wait_for(lambda: store.accepted > accepted_then + 4000, timeout=60)
        assert agent.queues[Channel.OT].counters()["displaced_readings"] == 0
        # reading again: the watcher is told how many lines it lost
        slow.settimeout(20)
        buf = b""
        while b'"type":"lost"' not in buf:
            chunk = slow.recv(65536)
            assert chunk, "closed before a lost line"
            buf += chunk
        lost = next(json.loads(x) for x in buf.split(b"\n") if b'"type":"lost"' in x)
        assert lost["count"] > 0 and lost["total"] >= lost["count"]
        slow.close()
    finally:
        stop_agent(agent)


def test_watchers_are_limited(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = write_site(tmp_path, broker.url, sensors="  - {id: g, type: load, rate: 5}\n")
    agent = run_agent(cfg)
    conns = []
    try:
        assert agent.watch_server is not None
        for _ in range(MAX_WATCHERS):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(str(agent.watch_server.path))
            c.sendall(b"{}\n")
            c.settimeout(10)
            assert b'"type":"hello"' in c.recv(4096)
            conns.append(c)
        w = watch("--socket", str(agent.watch_server.path), "--duration", "5")
        assert w.returncode == 1 and "too many watchers" in w.stderr, w.stderr
    finally:
        for c in conns:
            c.close()
        stop_agent(agent)


def as_user(uid: int, gid: int, argv: list[str]) -> tuple[int, str]:
    """``edge-agent ARGV`` in a forked child that has become ``uid``/``gid`` (no other
    groups): (exit status, stderr)."""
    import io

    from edge_agent.cli.main import main

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 99
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            err = io.StringIO()
            sys.stderr = err
            status = main(argv)
            os.write(wfd, err.getvalue().encode())
        finally:
            os._exit(status)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        text = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_the_socket_is_for_root_and_the_service_group_only(
        tmp_path: Path, broker: Mosquitto, short_run_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(short_run_dir))
    cfg = write_site(tmp_path, broker.url, sensors="  - {id: g, type: load, rate: 5}\n")
    log = tmp_path / "agent.log"
    p = start_agent(cfg, log)
    nobody = pwd.getpwnam("nobody")
    path = short_run_dir / "watch.sock"
    argv = ["watch", "--socket", str(path), "--duration", "3"]
    try:
        assert wait_for(path.exists), log.read_text()
        assert not (tmp_path / "state" / "watch.sock").exists()
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == SOCKET_MODE
        assert st.st_gid == os.getegid()
        rc, err = as_user(nobody.pw_uid, nobody.pw_gid, argv)
        assert rc == 1, err
        assert f"cannot open {path}: permission denied" in err
        assert "'root'" in err  # the socket's group: the one to join
        # a member of the socket's group gets in
        rc, err = as_user(nobody.pw_uid, st.st_gid, argv)
        assert rc == 0, err
        # a socket opened up by mistake: the daemon checks the peer itself
        os.chmod(path, 0o666)
        rc, err = as_user(nobody.pw_uid, nobody.pw_gid, argv)
        assert rc == 1 and "not allowed" in err, err
        assert wait_for(lambda: f"refused uid {nobody.pw_uid}" in log.read_text())
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
    assert not path.exists()


def test_watch_says_which_socket_when_no_daemon_runs(tmp_path: Path) -> None:
    w = watch("--state-dir", str(tmp_path), "--duration", "1")
    assert w.returncode == 3
    assert f"the daemon is not running (no live socket at /run/edge-agent/watch.sock or " \
           f"{tmp_path / 'watch.sock'})" in w.stderr
    assert "Traceback" not in w.stderr


def test_a_live_socket_is_not_stolen_and_a_stale_one_is_replaced(tmp_path: Path) -> None:
    from edge_agent.daemon.watch_socket import WatchServer, WatchSocketError

    path = tmp_path / "watch.sock"
    first = WatchServer(path, WatchHub(), lambda: {}, {})
    first.start()
    second = WatchServer(path, WatchHub(), lambda: {}, {})
    try:
        with pytest.raises(WatchSocketError, match="another daemon listens"):
            second.start()
        assert stat.S_IMODE(os.stat(path).st_mode) == SOCKET_MODE
    finally:
        first.stop()
    assert not path.exists()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # left behind by a daemon killed with SIGKILL
    stale.close()
    second.start()
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(str(path))
        c.sendall(b"{}\n")
        c.settimeout(10)
        assert json.loads(c.recv(4096).split(b"\n")[0])["type"] == "hello"
        c.close()
    finally:
        second.stop()


def test_a_long_state_dir_path_still_gets_its_socket(tmp_path: Path) -> None:
    from edge_agent.daemon.watch_socket import WatchServer

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    server = WatchServer(deep / "watch.sock", WatchHub(), lambda: {}, {"site": "s"})
    server.start()
    try:
        assert len(str(deep / "watch.sock")) > 108
        w = watch("--socket", str(deep / "watch.sock"), "--json", "--duration", "1")
        assert w.returncode == 0, w.stderr
        assert json.loads(w.stdout.splitlines()[0])["site"] == "s"
    finally:
        server.stop()


def test_stopping_does_not_wait_for_a_watcher_stuck_in_a_write(tmp_path: Path) -> None:
    from edge_agent.daemon.watch_socket import WatchServer

    hub = WatchHub()
    server = WatchServer(tmp_path / "watch.sock", hub, lambda: {}, {})
    server.start()
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(str(tmp_path / "watch.sock"))
    stuck.sendall(b'{"summary_every": 60}\n')  # and never reads
    try:
        assert wait_for(lambda: hub.count() == 1)
        watcher = hub._watchers[0]
        n = 0
        while watcher.lost == 0:  # until its queue is full: its thread is blocked writing
            hub.accepted(Channel.OT, [(n + 1, n + 500)], [r("a", n + i) for i in range(500)])
            n += 500
            assert n < 10_000_000
        server.stop(timeout=2.0)
        # the blocked write was cut short (it would have waited SEND_TIMEOUT otherwise)
        assert not [t for t in server._clients if t.is_alive()]
        assert hub.count() == 0 and watcher.closed
    finally:
        stuck.close()


def test_ctrl_c_ends_watch_quietly(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = write_site(tmp_path, broker.url, sensors="  - {id: g, type: load, rate: 20}\n")
    agent = run_agent(cfg)
    try:
        assert agent.watch_server is not None
        p = subprocess.Popen([*EDGE, "watch", "--socket", str(agent.watch_server.path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout is not None
        assert p.stdout.readline().startswith("-- watching site test node n1")
        assert " g " in p.stdout.readline() + p.stdout.readline()  # readings flow
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err
        assert wait_for(lambda: agent.watch.count() == 0)  # the daemon let it go
    finally:
        stop_agent(agent)
