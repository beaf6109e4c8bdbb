"""One writer per channel store: a second open (another process, the same process, a second
`edge-agent run`) is refused at once; the lock goes with close() and with the holder's death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.core.errors import KeyFileError, StoreError, StoreLockedError
from edge_agent.core.model import Channel
from edge_agent.daemon.runtime import Agent
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.security.keys import load_key
from edge_agent.store.channel_store import ChannelStore
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from tests.conftest import EDGE_AGENT, REPO, start_agent, wait_for, write_site
from tests.test_store import KEY, readings

IN_USE = "is in use by another edge-agent"

# Opens the store in a child process; prints OPENED or LOCKED <message>, then with "hold"
# keeps it open until killed.
CHILD = """
import sys, time
from pathlib import Path
from edge_agent.core.errors import StoreLockedError
from edge_agent.core.model import Channel
from edge_agent.store.channel_store import ChannelStore
from edge_agent.security.keys import load_key
try:
    s = ChannelStore(Path(sys.argv[1]), Channel.OT, bytes(range(32)))
except StoreLockedError as exc:
    print("LOCKED", exc, flush=True)
    sys.exit(3)
print("OPENED", flush=True)
if sys.argv[2] == "hold":
    time.sleep(600)
s.close()
"""


def _child(root: Path, mode: str = "once") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), mode], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _open_in_child(root: Path) -> tuple[int, str]:
    p = _child(root)
    out, err = p.communicate(timeout=30)
    return p.returncode, out + err


def test_second_process_is_refused_until_close(tmp_path: Path) -> None:
    s = ChannelStore(tmp_path, Channel.OT, KEY)
    s.append(readings(3))
    t0 = time.monotonic()
    rc, out = _open_in_child(tmp_path)
    assert rc == 3, out
    assert out.startswith("LOCKED"), out
    assert f"store {tmp_path / 'ot'} {IN_USE} (pid {os.getpid()})" in out
    assert "systemctl stop edge-agent" in out and "edge-agent status" in out
    assert time.monotonic() - t0 < 15  # refused at once, not after a wait
    # the refused open changed nothing: the holder goes on numbering where it was
    assert s.append(readings(2)) == [(4, 5)]
    s.close()
    rc, out = _open_in_child(tmp_path)
    assert rc == 0 and out.startswith("OPENED"), out
    s2 = ChannelStore(tmp_path, Channel.OT, KEY)
    assert s2.next_seq == 6
    s2.close()


def test_sigkilled_holder_does_not_block_the_restart(tmp_path: Path) -> None:
    with _child(tmp_path, "hold") as p:
        try:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "OPENED"
            with pytest.raises(StoreLockedError):
                ChannelStore(tmp_path, Channel.OT, KEY)
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        finally:
            if p.poll() is None:
                p.kill()
            p.communicate()
        assert p.returncode == -signal.SIGKILL
    assert (tmp_path / "ot" / "lock").exists()  # the stale file is harmless
    s = ChannelStore(tmp_path, Channel.OT, KEY)
    s.close()


def test_second_open_in_the_same_process_is_refused(tmp_path: Path) -> None:
    s = ChannelStore(tmp_path, Channel.OT, KEY)
    with pytest.raises(StoreLockedError) as info:
        ChannelStore(tmp_path, Channel.OT, KEY)
    assert isinstance(info.value, StoreError)
    assert "already open in this process" in str(info.value)
    # a refused open must not have released or disturbed the holder's lock
    with pytest.raises(StoreLockedError):
        ChannelStore(tmp_path, Channel.OT, KEY)
    # other channels have their own lock
    ChannelStore(tmp_path, Channel.IT, KEY).close()
    s.close()
    s.close()  # idempotent
    s2 = ChannelStore(tmp_path, Channel.OT, KEY)
    s2.close()


def test_a_half_built_agent_releases_its_stores(tmp_path: Path) -> None:
    """A reload that fails on the second channel falls back to the old configuration and
    reopens the first channel's store: the failed build must not keep its lock."""
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", "mqtt://127.0.0.1:1")
    keyf = tmp_path / "state" / "keys" / "it.key"
    keyf.parent.mkdir(parents=True)
    keyf.write_text("00" * 32)
    keyf.chmod(0o640)
    with pytest.raises(KeyFileError):
        Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
    key = load_key(tmp_path / "state" / "keys" / "ot.key")
    ChannelStore(tmp_path / "state" / "store", Channel.OT, key).close()


def test_second_edge_agent_run_exits_with_the_message(tmp_path: Path,
                                                      broker: Mosquitto) -> None:
    cfg = write_site(tmp_path, broker.url,
                     sensors="  - {id: gen, type: load, channel: ot, rate: 50}\n")
    c = Consumer("127.0.0.1", broker.port, "edge/test/n1/ot").start()
    p = start_agent(cfg, tmp_path / "agent.log")
    try:
        assert wait_for(lambda: c.rec.readings > 0, timeout=20)
        t0 = time.monotonic()
        out = subprocess.run([EDGE_AGENT, "run", "-c", str(cfg)], capture_output=True,
                             text=True, timeout=30)
        assert time.monotonic() - t0 < 10
        assert out.returncode != 0
        assert f"{IN_USE} (pid {p.pid})" in out.stderr, out.stderr
        assert "systemctl stop edge-agent" in out.stderr
        assert "Traceback" not in out.stderr
        # the first agent never noticed: still running, still delivering
        seen = c.rec.readings
        assert wait_for(lambda: c.rec.readings > seen + 20, timeout=10)
        assert p.poll() is None
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0
