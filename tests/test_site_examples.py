"""Every shipped site example runs: each device on its emulator, through the real pipeline.

The examples say ``hardware: raspberry-pi`` and name TLS brokers; here the same parsed
config runs with ``hardware: emulated`` against a throwaway loopback broker, every sensor
enabled (also those an example leaves off), with IT sealing as configured. Each sensor must
deliver readings to the store or, for a pure event source (button, PIR, door), be running
without errors.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.config.schema import SiteConfig
from edge_agent.config.types import BrokerURL
from edge_agent.daemon.runtime import Agent
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.security.seal import generate_files
from edge_agent.tools.mosquitto import Mosquitto
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[1]
EVENT_ONLY = {"button", "pir", "door", "gsm-modem"}  # speak only when something happens


def quick(options: object) -> object:
    """Summaries that come once a minute on site come every second here."""
    if dataclasses.is_dataclass(options) and hasattr(options, "activity_seconds"):
        return dataclasses.replace(options, activity_seconds=1.0)  # type: ignore[type-var]
    return options


def site_for_test(name: str, tmp_path: Path, broker: Mosquitto) -> SiteConfig:
    generate_files("x25519", tmp_path / "platform.key", tmp_path / "platform.pub")
    for ch in ("ot", "it"):
        (tmp_path / "tls" / ch).mkdir(parents=True)
        for f in ("ca.pem", "client.pem", "client.key"):
            (tmp_path / "tls" / ch / f).write_text("placeholder\n")
    keys = tmp_path / "meter-keys"  # the grid operator's DLMS keys (encrypted HAN push)
    keys.mkdir(mode=0o700)
    (keys / "meter-grid.key").write_text(
        f"EK={secrets.token_hex(16)}\nAK={secrets.token_hex(16)}\n")
    (keys / "meter-grid.key").chmod(0o600)
    cfg = load_config(REPO / "configs" / name, SENSOR_TYPES,
                      env={"EDGE_STATE_DIR": str(tmp_path / "state"), "EDGE_NODE": "pi-t",
                           "EDGE_TLS_DIR": str(tmp_path / "tls"),
                           "EDGE_METRICS_DIR": str(tmp_path),
                           "EDGE_KEY_DIR": str(keys),
                           "EDGE_IT_SEAL_KEY": str(tmp_path / "platform.pub")})
    local = BrokerURL.parse(broker.url)
    channels = {ch: dataclasses.replace(cc, brokers=[local], tls=dataclasses.replace(
        cc.tls, ca_file=None, cert_file=None, key_file=None), allow_insecure=True)
        for ch, cc in cfg.channels.items()}
    sensors = [dataclasses.replace(s, enabled=True, options=quick(s.options))
               for s in cfg.sensors]
    escalate = cfg.escalate
    if escalate is not None and escalate.numbers_file is not None:  # a secret, like the keys
        numbers = keys / "escalation-numbers"
        numbers.write_text("+821012345678\n")
        numbers.chmod(0o600)
        escalate = dataclasses.replace(escalate, numbers_file=numbers)
    return dataclasses.replace(cfg, hardware="emulated", channels=channels, sensors=sensors,
                               escalate=escalate)


@pytest.mark.parametrize("name", ["elderly-home.yaml", "meter-room.yaml", "mixed.yaml"])
def test_example_site_runs_every_device_emulated(
        name: str, tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    broker = broker_factory()
    cfg = site_for_test(name, tmp_path, broker)
    agent = Agent(cfg, SENSOR_TYPES)
    agent.start()
    try:
        producing = [r for r in agent.sensors if r.sensor.spec.type not in EVENT_ONLY]
        assert wait_for(lambda: all(r.sensor.stats.readings > 0 for r in producing),
                        timeout=30), [(r.sensor.id, r.sensor.stats.readings,
                                       r.sensor.stats.last_error) for r in producing
                                      if r.sensor.stats.readings == 0]
        assert {r.sensor.id for r in agent.sensors} == {s.id for s in cfg.sensors}
        for r in agent.sensors:
            assert r.thread is not None and r.thread.is_alive(), r.sensor.id
            assert not r.sensor.stats.errors, (r.sensor.id, dict(r.sensor.stats.errors))
    finally:
        agent.stop_event.set()
        agent.shutdown()
