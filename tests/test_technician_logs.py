"""The log lines a technician looks for: after a restart, what was recovered; after an
outage, how long the backlog took; after SIGHUP, what changed."""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import load_config, parse_config
from edge_agent.config.diff import changes
from edge_agent.core.model import Channel
from edge_agent.daemon.runtime import Agent, age_text, recovered_line
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.store.stats import StoreStats
from edge_agent.tools.mosquitto import Mosquitto
from tests.conftest import wait_for, write_site


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_restart_then_reconnect_logs_recovered_and_drained(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    down = write_site(tmp_path, f"mqtt://127.0.0.1:{closed_port()}",
                      sensors="  - {id: g, type: load, rate: 500, total: 300}\n")
    agent = Agent(load_config(down, SENSOR_TYPES), SENSOR_TYPES)
    agent.start()
    try:
        assert wait_for(lambda: agent.stores[Channel.OT].stats().accepted == 300)
    finally:
        agent.stop_event.set()
        agent.shutdown()
    assert not [r for r in caplog.records if "recovered" in r.getMessage()]  # a new store
    b = broker_factory()
    up_cfg = write_site(tmp_path, b.url, sensors="  - {id: g, type: load, total: 0}\n")
    agent = Agent(load_config(up_cfg, SENSOR_TYPES), SENSOR_TYPES)
    agent.start()
    try:
        assert wait_for(lambda: any("backlog drained" in r.getMessage()
                                    for r in caplog.records), timeout=30)
    finally:
        agent.stop_event.set()
        agent.shutdown()
    said = [r.getMessage() for r in caplog.records]
    (rec,) = [m for m in said if "recovered" in m]
    assert rec.startswith("channel ot: recovered 300 undelivered readings (300 normal, "
                          "oldest "), rec
    (drained,) = [m for m in said if "backlog drained" in m]
    assert drained.startswith("backlog drained: 300 readings in "), drained


def test_recovered_line_and_ages() -> None:
    st = StoreStats(channel="ot", next_seq=1, backlog={"alarm": 2, "normal": 40, "bulk": 0},
                    backlog_records=3, bytes_on_disk=0, inflight_records=0,
                    oldest_undelivered=1000.0, evicted={})
    assert recovered_line("ot", st, 1000.0 + 3 * 3600) == (
        "channel ot: recovered 42 undelivered readings (2 alarm, 40 normal, oldest 3.0 h old)")
    empty = dataclasses.replace(st, backlog={"alarm": 0, "normal": 0, "bulk": 0})
    assert recovered_line("ot", empty, 0.0) is None
    assert [age_text(s) for s in (5, 600, 10800, 3 * 86400)] == \
        ["5 s", "10 min", "3.0 h", "3.0 days"]


SITE = """\
site: s
node: n
hardware: emulated
state_dir: /var/lib/edge-agent
channels:
  ot:
    brokers: [mqtts://ot.example:8883]
    reconnect_max: 30s
sensors:
  - {id: g, type: load, rate: 10}
  - {id: sos, type: button, pin: 17, channel: ot, subject: resident-0042}
"""


def test_reload_says_what_changed_and_never_a_resident_id() -> None:
    def parse(text: str):  # type: ignore[no-untyped-def]
        return parse_config(text, "site.yaml", Path("/etc"), SENSOR_TYPES, {})

    old = parse(SITE)
    new = parse(SITE.replace("reconnect_max: 30s", "reconnect_max: 10s")
                .replace("rate: 10", "rate: 20")
                .replace("resident-0042", "resident-0043")
                + "  - {id: door, type: door, pin: 22, channel: ot}\n")
    what = changes(old, new)
    assert "channels.ot.reconnect_max: 30 -> 10" in what
    assert "sensors: added door" in what
    assert "sensors.g.options.rate: 10 -> 20" in what
    assert "sensors.sos.subject: changed" in what
    assert not any("resident-004" in w for w in what)
    assert changes(old, parse(SITE)) == []
