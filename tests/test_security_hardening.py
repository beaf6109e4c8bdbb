"""Input hardening and attack surface: no dynamic code, no shell, no listening socket;
security events are structured, bounded and counted on the health message."""

from __future__ import annotations

import ast
import json
import logging
import os
import signal
import stat
from pathlib import Path

import pytest

from edge_agent.security import events as secevents
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from tests.conftest import REPO, start_agent, wait_for, write_site

PACKAGE = REPO / "edge_agent"
BANNED_CALLS = {"eval", "exec", "compile", "__import__"}
BANNED_ATTRS = {("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execvp"),
                ("yaml", "load"), ("yaml", "unsafe_load"), ("pickle", "loads"),
                ("pickle", "load"), ("marshal", "loads")}
BANNED_MODULES = {"pickle", "marshal", "shelve", "dill"}


def _sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    return files


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_dynamic_code_no_shell_no_unsafe_deserialisation(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                assert f.id not in BANNED_CALLS, where
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                assert (f.value.id, f.attr) not in BANNED_ATTRS, where
            for kw in node.keywords:
                if kw.arg == "shell":
                    assert isinstance(kw.value, ast.Constant) and kw.value.value is False, where
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & BANNED_MODULES, where
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module.split(".")[0] not in BANNED_MODULES, where


def _listening_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    for name in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{name}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            # TCP 0A = LISTEN; an unconnected UDP socket (07) would accept datagrams
            if (name.startswith("tcp") and cols[3] == "0A") or \
                    (name.startswith("udp") and cols[3] == "07"):
                inodes.add(cols[9])
    return inodes


def _listening_unix(pid: int, inodes: set[str]) -> list[str]:
    """The paths of the unix sockets among ``inodes`` that accept connections."""
    out = []
    for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 8 and cols[6] in inodes and int(cols[3], 16) & 0x10000:
            out.append(cols[7])
    return out


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def test_running_agent_opens_no_listening_socket(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = write_site(tmp_path, broker.url,
                     sensors="  - {id: g, type: load, channel: ot, rate: 50}\n")
    c = Consumer("127.0.0.1", broker.port, "edge/test/n1/ot").start()
    p = start_agent(cfg, tmp_path / "agent.log")
    try:
        assert wait_for(lambda: c.rec.readings > 20, timeout=20)
        mine = _socket_inodes(p.pid)
        assert mine  # it does hold its outgoing MQTT connection
        assert not mine & _listening_inodes(p.pid)
        # its one listening socket is local: the live view's, owner and group only
        assert wait_for(lambda: _listening_unix(p.pid, mine) == [
            str(tmp_path / "state" / "watch.sock")])
        assert stat.S_IMODE(os.stat(tmp_path / "state" / "watch.sock").st_mode) == 0o660
        assert broker.proc is not None
        assert _socket_inodes(broker.proc.pid) & _listening_inodes(broker.proc.pid)  # sanity
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(15)
        c.stop()


def test_security_events_are_json_lines_counted_and_bounded(
        caplog: pytest.LogCaptureFixture) -> None:
    ev = secevents.SecurityEvents()
    with caplog.at_level(logging.INFO, logger="edge_agent.security"):
        ev.emit("auth", "failure", channel="ot", detail="broker refused")
        ev.emit("store", "evicted", channel="it", detail="10 readings (size)")
        ev.emit("config", "rejected", detail="site.yaml: 2 problem(s)")
    lines = [json.loads(r.getMessage()) for r in caplog.records]
    assert [(e["category"], e["outcome"]) for e in lines] == [
        ("auth", "failure"), ("store", "evicted"), ("config", "rejected")]
    assert all("ts" in e for e in lines)
    assert caplog.records[0].levelno == logging.ERROR
    assert ev.counts("ot") == {"auth.failure": 1, "config.rejected": 1}
    assert ev.counts("it") == {"store.evicted": 1, "config.rejected": 1}
    for i in range(5000):
        ev.emit("store", f"evicted-{i}", channel="ot")
    assert len(ev.counts()) <= secevents.MAX_KEYS and len(ev.recent()) == secevents.RECENT
    with pytest.raises(ValueError):
        ev.emit("whatever", "failure")


def test_rejected_config_is_a_security_event(tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import EDGE_AGENT

    cfg = tmp_path / "bad.yaml"
    cfg.write_text("site: s\nnode: n\nhardware: emulated\nstate_dir: /tmp/x\nchannels: {}\n")
    out = subprocess.run([EDGE_AGENT, "run", "-c", str(cfg)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2
    event = json.loads(out.stderr.strip().splitlines()[-1])
    assert (event["category"], event["outcome"]) == ("config", "rejected")
