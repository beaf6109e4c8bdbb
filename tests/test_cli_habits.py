"""What every command owes a person at a terminal: no traceback for a user error or a
closed pipe (``| head -1``), no audit JSON in their face, help with an example."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.cli.main import COMMANDS
from tests.conftest import start_agent, wait_for, write_site

EDGE = [sys.executable, "-m", "edge_agent"]


def run_closed(args: list[str], stdin: bytes = b"", head: int = 0,
               timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run with stdout a pipe whose reader reads ``head`` lines and goes away (0: gone
    before the command writes anything)."""
    r, w = os.pipe()
    with subprocess.Popen(args, stdin=subprocess.PIPE, stdout=w,
                          stderr=subprocess.PIPE) as p:
        os.close(w)
        with os.fdopen(r, "rb") as reader:
            for _ in range(head):
                reader.readline()
        assert p.stdin is not None and p.stderr is not None
        try:
            p.stdin.write(stdin)
            p.stdin.close()
        except BrokenPipeError:
            pass
        err = p.stderr.read()
        p.wait(timeout)
    return subprocess.CompletedProcess(args, p.returncode, b"", err)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("site")
    with socket.socket() as s:  # a loopback port nobody listens on: doctor fails fast
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_site(d, f"mqtt://127.0.0.1:{port}",
                     sensors="  - {id: g, type: load, rate: 10}\n")
    subprocess.run([*EDGE, "keys", "init", "-c", str(cfg)], check=True, capture_output=True)
    capture = d / "p1.txt"
    capture.write_text("deadbeef" * 400 + "\n")
    readings = d / "readings.jsonl"
    readings.write_text("".join(json.dumps({"t": 1.7e9 + i, "sensor": "g", "name": "counter",
                                            "v": i}) + "\n" for i in range(200)))
    return {"cfg": cfg, "state": d / "state", "capture": capture, "readings": readings}


def commands(site: dict[str, Path]) -> list[list[str]]:
    cfg, state = str(site["cfg"]), str(site["state"])
    out = [["--help"], ["--version"]] + [[name, "--help"] for name in COMMANDS]
    out += [
        ["check-config", cfg],
        ["status", "--state-dir", state],
        ["status", "--state-dir", state, "--json"],
        ["doctor", "-c", cfg, "--timeout", "1"],
        ["doctor", "-c", cfg, "--timeout", "1", "--json"],
        ["keys", "status", "-c", cfg],
        ["keys", "export", "-c", cfg],
        ["decode", "--protocol", "dsmr-p1", str(site["capture"])],
        ["replay", "-c", cfg, str(site["readings"])],
        ["watch", "--state-dir", state, "--duration", "2"],  # no daemon: says so, exit 3
    ]
    return out


@pytest.mark.parametrize("head", [0, 1])
def test_no_command_prints_a_traceback_into_a_closed_pipe(site: dict[str, Path],
                                                          head: int) -> None:
    for cmd in commands(site):
        r = run_closed([*EDGE, *cmd], head=head)
        err = r.stderr.decode()
        assert "Traceback" not in err and "Exception ignored" not in err, (cmd, err)
        assert r.returncode in (0, 1, 2, 3, 141), (cmd, r.returncode, err)


def test_every_sub_command_is_covered() -> None:
    """A new sub-command joins the closed-pipe test (run and demo run until stopped)."""
    covered = {c[0] for c in commands({k: Path("x") for k in
                                       ("cfg", "state", "capture", "readings")})}
    assert set(COMMANDS) - covered - {"run", "demo", "unseal"} == set()


@pytest.mark.parametrize("head", [0, 1])
def test_watch_of_a_running_daemon_into_a_closed_pipe(tmp_path: Path, head: int) -> None:
    """``edge-agent watch | head -1`` with a daemon streaming readings."""
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", sensors="  - {id: g, type: load, rate: 50}\n")
    log = tmp_path / "agent.log"
    agent = start_agent(cfg, log)
    try:
        assert wait_for(lambda: (tmp_path / "state" / "watch.sock").exists()), log.read_text()
        for extra in ([], ["--json"]):
            r = run_closed([*EDGE, "watch", "--state-dir", str(tmp_path / "state"), *extra],
                           head=head)
            err = r.stderr.decode()
            assert "Traceback" not in err and "Exception ignored" not in err, err
            assert r.returncode == 141, (r.returncode, err)
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0


def test_unseal_into_a_closed_pipe(tmp_path: Path) -> None:
    keys = tmp_path / "platform"
    subprocess.run([*EDGE, "keys", "platform", "--out", str(keys), "--name", "p"], check=True,
                   capture_output=True)
    lines = b"not a sealed message\n" * 500
    r = run_closed([*EDGE, "unseal", "--key", str(keys / "p.key"), "--allow-unsigned"],
                   stdin=lines)
    err = r.stderr.decode()
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_keys_init_with_an_unknown_owner_says_so_and_makes_nothing(tmp_path: Path) -> None:
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", sensors="  - {id: g, type: load}\n")
    r = subprocess.run([*EDGE, "keys", "init", "-c", str(cfg), "--owner", "nosuchuser"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "there is no user 'nosuchuser' on this system" in r.stderr
    assert not (tmp_path / "state" / "keys").exists()
    r = subprocess.run([*EDGE, "keys", "init", "-c", str(cfg), "--owner", "root:nosuchgroup"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "there is no group 'nosuchgroup'" in r.stderr, r.stderr


def test_interactive_commands_print_no_audit_json(tmp_path: Path) -> None:
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", sensors="  - {id: g, type: load}\n")
    for cmd in (["init"], ["rotate"], ["shred", "--all", "--yes"]):
        r = subprocess.run([*EDGE, "keys", *cmd, "-c", str(cfg)], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, (cmd, r.stderr)
        for line in (r.stdout + r.stderr).splitlines():
            assert not line.lstrip().startswith("{"), (cmd, line)
            assert '"category"' not in line, (cmd, line)


def test_audit_events_reach_the_journal_with_their_fields(tmp_path: Path) -> None:
    import logging

    from edge_agent.daemon.journal import JournalHandler
    from edge_agent.security import events as secevents

    path = tmp_path / "journal.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        handler = JournalHandler(journal=path, syslog=tmp_path / "none")
        logger = logging.getLogger("edge_agent.security")
        old = (logger.handlers[:], logger.propagate, logger.level)
        logger.handlers[:], logger.propagate = [handler], False
        logger.setLevel(logging.INFO)
        try:
            secevents.emit("keys", "rotated", channel="it", detail="new key id 7\nsecond line")
        finally:
            logger.handlers[:], logger.propagate, _ = old
            logger.setLevel(old[2])
        data = sock.recv(65536)
    assert b"SYSLOG_IDENTIFIER=edge-agent\n" in data
    assert b"EDGE_CATEGORY=keys\n" in data and b"EDGE_OUTCOME=rotated\n" in data
    assert b"EDGE_CHANNEL=it\n" in data
    # a value with a newline uses the protocol's length-prefixed form
    detail = b"new key id 7\nsecond line"
    assert b"EDGE_DETAIL\n" + len(detail).to_bytes(8, "little") + detail in data
