"""Two clients with one client id (two nodes given one node name), and what a technician
reads when a connection fails: a real mosquitto, the real uplink."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import load_config
from edge_agent.core.model import Channel
from edge_agent.daemon.runtime import Agent
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.security import events as secevents
from edge_agent.tools.mosquitto import Mosquitto
from edge_agent.uplink.reasons import describe
from tests.conftest import wait_for, write_site


@pytest.fixture(autouse=True)
def _fresh_events() -> Iterator[None]:
    secevents.EVENTS.reset()
    yield
    secevents.EVENTS.reset()


def twin(port: int, client_id: str) -> mqtt.Client:
    """Another node configured with the same name: same client id, reconnects quickly."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.reconnect_delay_set(0.2, 0.5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_session_taken_over_is_logged_once_in_plain_words_and_counted(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto],
        caplog: pytest.LogCaptureFixture) -> None:
    b = broker_factory()
    cfg = load_config(write_site(tmp_path, b.url,
                                 sensors="  - {id: g, type: load, rate: 5}\n"), SENSOR_TYPES)
    agent = Agent(cfg, SENSOR_TYPES)
    caplog.set_level(logging.INFO)
    agent.start()
    up = agent.uplinks[Channel.OT]
    c: mqtt.Client | None = None
    try:
        assert wait_for(lambda: up.stats.connected, timeout=10)
        c = twin(b.port, cfg.client_id(Channel.OT))
        assert wait_for(lambda: up.stats.takeovers >= 2, timeout=60), up.stats
        assert agent.health_model().channels["ot"].uplink.takeovers >= 2
    finally:
        if c is not None:
            c.loop_stop()
            c.disconnect()
        agent.stop_event.set()
        agent.shutdown()
    said = [r.getMessage() for r in caplog.records if "another node" in r.getMessage()]
    assert len(said) == 1, said  # once, however often it happens
    # mosquitto 2.0.11 closes the old session's socket without DISCONNECT 0x8E: the
    # takeover is recognised from connections closed right after they open
    assert said[0].startswith(("another node is using client id test-n1-ot: two nodes share "
                               "node n1 (site test)",
                               "another node may be using client id test-n1-ot: two nodes "
                               "may share node n1 (site test)")), said[0]
    assert "EDGE_NODE" in said[0]
    assert secevents.EVENTS.counts("ot").get("identity.conflict") == 1
    assert not secevents.EVENTS.counts("ot").get("auth.failure")


def test_unspecified_error_never_appears_alone() -> None:
    assert "gave no reason" in describe(0x80, "Unspecified error")
    dropped = describe(0x80, "Unspecified error", disconnect=True)
    assert dropped.startswith("connection closed without a reason from the broker")
    assert "0x87 Not authorized: " in describe(0x87, "Not authorized")


def test_no_connack_is_a_network_event_not_an_auth_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A port that accepts TCP and never answers CONNECT (a black-holing firewall, a
    wedged broker): the uplink reports a timeout, and no security event."""
    from edge_agent.uplink import paho_adapter

    monkeypatch.setattr(paho_adapter, "CONNACK_TIMEOUT", 0.5)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    port = silent.getsockname()[1]
    cfg = load_config(write_site(tmp_path, f"mqtt://127.0.0.1:{port}"), SENSOR_TYPES)
    agent = Agent(cfg, SENSOR_TYPES)
    agent.start()
    up = agent.uplinks[Channel.OT]
    try:
        assert wait_for(lambda: up.stats.connect_failures >= 1, timeout=20)
    finally:
        agent.stop_event.set()
        agent.shutdown()
        stop.set()
        t.join()
        for s in accepted:
            s.close()
        silent.close()
    assert "no CONNACK within 0.5s" in (up.stats.last_error or "")
    assert "not a refusal" in (up.stats.last_error or "")
    assert not secevents.EVENTS.counts("ot").get("auth.failure")
