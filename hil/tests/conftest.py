"""Fixtures of the rig suite: the labgrid environment picks the rig (``options: rig:``).

Run through ``scripts/hil.sh ENV``; by hand: ``pytest hil/tests --lg-env hil/env/sim.yaml``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.security.seal import KeyPair, generate_files
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto, free_port

from .rig import PREFIX_IT, PREFIX_OT, Rig


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true",
                     help="long run: 100 power cuts instead of 10")
    parser.addoption("--cuts", type=int, default=0, metavar="N",
                     help="power cuts to make (default 10, 100 with --long)")
    parser.addoption("--cut-log", type=Path, default=None, metavar="PATH",
                     help="power cuts: the JSON line per cycle goes here (default:"
                          " suite/powercut-progress.jsonl in the run directory), the"
                          " figures beside it (PATH with .figures.json)")
    parser.addoption("--cut-budget", type=float, default=0.0, metavar="SECONDS",
                     help="power cuts: stop cutting after this many seconds (0: no limit);"
                          " the check of every accepted reading still runs and the figures"
                          " say how many of the cycles were made")


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--long"))


@pytest.fixture(scope="session")
def planned_cuts(request: pytest.FixtureRequest, long_run: bool) -> int:
    cuts = int(request.config.getoption("--cuts"))
    return cuts if cuts > 0 else 100 if long_run else 10


@pytest.fixture(scope="session")
def cut_log(request: pytest.FixtureRequest, workdir: Path) -> Path:
    path: Path | None = request.config.getoption("--cut-log")
    return path if path is not None else workdir / "powercut-progress.jsonl"


@pytest.fixture(scope="session")
def cut_budget(request: pytest.FixtureRequest) -> float:
    return float(request.config.getoption("--cut-budget"))


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    base = os.environ.get("LG_HIL_RUN")
    if base:
        d = Path(base) / "suite"
        d.mkdir(parents=True, exist_ok=True)
        yield d
        return
    with tempfile.TemporaryDirectory(prefix="edge-agent-hil-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def broker(env: Any, workdir: Path) -> Iterator[Mosquitto]:
    """The test's own broker on a free loopback port; the rig's agent reaches only it (the
    vm through a qemu forward; a bench Pi on ``options.broker_host``, the same port)."""
    port = free_port()
    host = env.config.get_option("broker_host", "")
    extra = f"listener {port} {host}\n" if host else ""
    with Mosquitto(workdir / "broker", port=port, extra=extra) as b:
        yield b


@pytest.fixture(scope="session")
def platform_key(workdir: Path) -> KeyPair:
    """The welfare platform's HPKE key pair: the agent seals IT to it, the test opens."""
    d = workdir / "platform"
    for f in ("it-seal.key", "it-seal.pub"):
        (d / f).unlink(missing_ok=True)
    return generate_files("x25519", d / "it-seal.key", d / "it-seal.pub")


@pytest.fixture(scope="session")
def rig(env: Any, workdir: Path, broker: Mosquitto, platform_key: KeyPair,
        long_run: bool) -> Iterator[Rig]:
    kind = env.config.get_option("rig")
    r: Rig
    if kind == "sim":
        from .sim_rig import SimRig

        r = SimRig(workdir / "sim", broker.port)
    elif kind == "vm":
        from .vm_rig import VmRig

        r = VmRig(env.get_target("main"), workdir / "vm", broker.port,
                  frozenset(env.get_target_features()))
    elif kind == "pi":
        from .pi_rig import PiRig

        r = PiRig(env, env.get_target("main"), broker.port)
    else:
        raise pytest.UsageError(f"options.rig must be sim, vm or pi, not {kind!r}")
    try:
        r.put_file(r.seal_path, (workdir / "platform" / "it-seal.pub").read_bytes(), "0644")
        yield r
    finally:
        r.close()


@pytest.fixture
def ot(broker: Mosquitto) -> Iterator[Consumer]:
    """An independent subscriber on the host: what the city platform receives on OT."""
    c = Consumer("127.0.0.1", broker.port, PREFIX_OT).start()
    yield c
    c.stop()


@pytest.fixture
def it(broker: Mosquitto, platform_key: KeyPair, rig: Rig) -> Iterator[Consumer]:
    """The IT subscriber; it opens the sealed payloads with the platform's key and accepts
    only those the rig's node signed (its key is enrolled when the rig starts the agent)."""
    c = Consumer("127.0.0.1", broker.port, PREFIX_IT, private_key=platform_key.private_key,
                 node_keys=rig.node_keys).start()
    yield c
    c.stop()


@pytest.fixture
def agent(rig: Rig) -> Iterator[Rig]:
    """The rig with the agent stopped again after the test (whatever the test did)."""
    yield rig
    rig.stop()
