from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from edge_agent.security import events as secevents
from edge_agent.security.nodekey import NodeKeys
from edge_agent.tools.mosquitto import Mosquitto

if TYPE_CHECKING:
    from edge_agent.daemon.runtime import Agent

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "samples"


@pytest.fixture(autouse=True)
def _fresh_security_events() -> Iterator[None]:
    """Security events are counted process-wide: every test starts from zero."""
    secevents.EVENTS.reset()
    yield
    secevents.EVENTS.reset()


def run_agent(cfg: Path) -> Agent:
    """An in-process agent on this site file, started (stop it with :func:`stop_agent`)."""
    from edge_agent.config import load_config
    from edge_agent.daemon.runtime import Agent
    from edge_agent.devices.registry import SENSOR_TYPES

    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
    agent.start()
    return agent


def stop_agent(agent: Agent) -> None:
    agent.stop_event.set()
    agent.shutdown()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    started: list[Mosquitto] = []

    def make(**kw: object) -> Mosquitto:
        b = Mosquitto(tmp_path / f"broker{len(started)}", **kw)  # type: ignore[arg-type]
        b.start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def broker(broker_factory: Callable[..., Mosquitto]) -> Mosquitto:
    return broker_factory()


def wait_for(pred: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def write_site(tmp_path: Path, ot_url: str, it_url: str | None = None, sensors: str = "",
               store: str = "", extra_ot: str = "", extra_it: str = "") -> Path:
    it_block = ""
    if it_url:
        if "seal:" not in extra_it:  # tests read IT payloads in clear unless they seal
            extra_it = "    seal: {enabled: false}\n" + extra_it
        it_block = f"""
  it:
    brokers: ["{it_url}"]
    allow_insecure: true
    health_interval: 1s
{extra_it}"""
    cfg = tmp_path / "site.yaml"
    cfg.write_text(f"""
site: test
node: n1
hardware: emulated
state_dir: {tmp_path / 'state'}
channels:
  ot:
    brokers: ["{ot_url}"]
    allow_insecure: true
    health_interval: 1s
{extra_ot}{it_block}
store:
  commit_interval: 100ms
{store}
sensors:
{sensors}
""")
    return cfg


EDGE_AGENT = str(Path(sys.executable).parent / "edge-agent")


def start_agent(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "-c", str(cfg)],
            stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def enrol_node(state_dir: Path, site: str = "test", node: str = "n1") -> NodeKeys:
    """Create the node's signing key as ``keys init`` does and enrol its public key, as the
    platform does before it accepts the node's sealed payloads."""
    from edge_agent.security import nodekey

    key = nodekey.create(state_dir / "keys" / nodekey.SIGNING_KEY)
    keys = nodekey.NodeKeys()
    keys.add(site, node, key.public_key())
    return keys


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a disk that really fills, with short writes and ENOSPC from the kernel
    (mounting needs root: skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                           str(mnt)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
