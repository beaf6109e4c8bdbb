"""MQTT 3.1.1 channels: a refused publish is acknowledged anyway, so deliveries are
confirmed by echo (edge_agent/uplink/confirm.py, design note 0004). Real mosquitto in
3.1.1 mode with ACLs, and the NATS server's MQTT listener."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge_agent.core.model import Channel
from edge_agent.daemon.runtime import Agent
from edge_agent.security import events as secevents
from edge_agent.store.channel_store import ChannelStore
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from edge_agent.uplink.paho_adapter import ChannelUplink
from hil.faults.proxy import FaultProxy
from tests.conftest import EDGE_AGENT, run_agent, stop_agent, wait_for, write_site
from tests.natsserver import NatsServer

PREFIX = "edge/test/n1/ot"
V3 = "    mqtt_version: 3\n    echo_timeout: 1s\n    reconnect_min: 100ms\n" \
     "    reconnect_max: 500ms\n"
ALLOW = (f"topic readwrite {PREFIX}/#\n"  # the node: writes and reads back its own topics
         "topic read #\n")  # the platform's consumer (same anonymous identity here)
DENY_DATA = (f"topic readwrite {PREFIX}/status\ntopic readwrite {PREFIX}/health\n"
             f"topic readwrite {PREFIX}/alarm\ntopic read {PREFIX}/data\ntopic read #\n")


def acl_broker(tmp_path: Path, factory: Callable[..., Mosquitto], text: str) -> Mosquitto:
    acl = tmp_path / "acl"
    acl.write_text(text)
    return factory(extra=f"acl_file {acl}\n")


def denied_or_published(up: ChannelUplink) -> bool:
    """The uplink reached a verdict: a reported denial, or (wrongly) a delivery."""
    return (secevents.EVENTS.counts("ot").get("acl.denied", 0) >= 1
            or up.stats.published_readings > 0)


def v3_consumer(port: int) -> Consumer:
    return Consumer("127.0.0.1", port, PREFIX, protocol=mqtt.MQTTv311).start()


@dataclass
class Run:
    agent: Agent
    store: ChannelStore
    up: ChannelUplink


@contextlib.contextmanager
def ot_agent(tmp_path: Path, url: str, sensors: str, extra: str = V3,
             consumer: Consumer | None = None) -> Iterator[Run]:
    """The agent on a site with one OT channel at ``url``; stops it (and the consumer)."""
    agent = run_agent(write_site(tmp_path, url, extra_ot=extra, sensors=sensors))
    try:
        yield Run(agent, agent.stores[Channel.OT], agent.uplinks[Channel.OT])
    finally:
        stop_agent(agent)
        if consumer is not None:
            consumer.stop()


def test_denied_data_topic_is_held_back_and_reported_then_delivered_when_allowed(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    b = acl_broker(tmp_path, broker_factory, DENY_DATA)
    c = v3_consumer(b.port)
    with ot_agent(tmp_path, b.url, "  - {id: g, type: load, rate: 100, total: 300}\n",
                  consumer=c) as r:
        assert wait_for(lambda: r.store.stats().accepted == 300
                        and denied_or_published(r.up), timeout=30)
        # the broker acknowledged every publish and dropped it: nothing counts as delivered
        assert r.up.stats.published_readings == 0
        assert r.up.stats.unconfirmed_messages >= 1
        assert c.rec.readings == 0
        st = r.store.stats()
        assert st.backlog["normal"] == 300  # all of it still in the store, none deleted
        assert st.dead_letters == 0 and not st.evicted.get("rejected")
        assert secevents.EVENTS.counts("ot").get("acl.denied", 0) >= 1
        health = r.agent.health(Channel.OT)["delivery"]
        assert health["state"] == "held" and health["unconfirmed"] >= 1
        assert "no echo" in health["held"]["data"]
        # the topic is held: one probe at a time, not the whole window over and over
        assert r.up.stats.inflight <= 1
        # the ACL is fixed: the backlog goes out, nothing lost
        (tmp_path / "acl").write_text(ALLOW)
        assert b.proc is not None
        b.proc.send_signal(signal.SIGHUP)  # mosquitto re-reads its ACL file
        assert wait_for(lambda: r.up.stats.published_readings == 300, timeout=30)
        assert wait_for(lambda: c.rec.readings >= 300, timeout=10)
    assert list(c.received()) == [(1, 300)]
    assert r.agent.health(Channel.OT)["delivery"]["state"] == "verified"
    assert secevents.EVENTS.counts("ot").get("acl.restored", 0) >= 1


ONE_THOUSAND_AND_FIVE_ALARMS = (
    "  - {id: g, type: load, rate: 200, total: 1000}\n"
    "  - {id: sos, type: load, priority: alarm, rate: 5, total: 5}\n")


def test_allowed_3_1_1_channel_delivers_everything_confirmed_by_echo(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    b = acl_broker(tmp_path, broker_factory, ALLOW)
    c = v3_consumer(b.port)
    with ot_agent(tmp_path, b.url, ONE_THOUSAND_AND_FIVE_ALARMS, consumer=c) as r:
        assert wait_for(lambda: r.up.stats.published_readings == 1005, timeout=30)
        assert wait_for(lambda: c.rec.readings >= 1005, timeout=10)
        delivery = r.agent.health(Channel.OT)["delivery"]
    assert list(c.received()) == [(1, 1005)]
    assert delivery["mqtt"] == "3.1.1" and delivery["confirm"] == "echo"
    assert delivery["state"] == "verified" and delivery["unconfirmed"] == 0
    assert r.up.stats.by_lane == {"normal": 1000, "alarm": 5}
    assert r.store.stats().backlog == {"alarm": 0, "normal": 0, "bulk": 0}


def test_a_3_1_1_channel_that_cannot_read_its_own_topics_holds_data_back(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    # write-only identity: publishes "succeed" but no delivery can be confirmed
    b = acl_broker(tmp_path, broker_factory, f"topic write {PREFIX}/#\n")
    with ot_agent(tmp_path, b.url, "  - {id: g, type: load, rate: 100, total: 100}\n") as r:
        assert wait_for(lambda: r.store.stats().accepted == 100
                        and denied_or_published(r.up), timeout=30)
    assert r.up.stats.published_readings == 0
    assert r.up.stats.unconfirmed_messages >= 1
    assert r.store.stats().backlog["normal"] == 100


def test_nats_mqtt_delivers_over_3_1_1_end_to_end(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "nats") as n:
        c = v3_consumer(n.mqtt_port)
        with ot_agent(tmp_path, n.url, ONE_THOUSAND_AND_FIVE_ALARMS,
                      extra=V3.replace("1s", "5s"), consumer=c) as r:
            assert wait_for(lambda: r.up.stats.published_readings == 1005, timeout=40)
            assert wait_for(lambda: c.rec.readings >= 1005, timeout=10)
            delivery = r.agent.health(Channel.OT)["delivery"]
    assert list(c.received()) == [(1, 1005)]
    assert not c.rec.bad
    assert delivery["state"] == "verified" and delivery["unconfirmed"] == 0


def test_nats_publish_violation_is_held_back_not_delivered(tmp_path: Path) -> None:
    # NATS logs "Publish Violation", acknowledges the publish and drops it
    perms = ('{user: n1, password: pw, permissions: {publish: {allow: '
             '["edge.test.n1.ot.status", "edge.test.n1.ot.health", "$MQTT.>"]}, '
             'subscribe: {allow: [">"]}}}, {user: platform, password: pw}')
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    os.chmod(pw, 0o600)
    with NatsServer(tmp_path / "nats", users=perms) as n:
        c = Consumer("127.0.0.1", n.mqtt_port, PREFIX, protocol=mqtt.MQTTv311,
                     username="platform", password="pw").start()
        with ot_agent(tmp_path, n.url, "  - {id: g, type: load, rate: 100, total: 200}\n",
                      extra=V3.replace("1s", "2s")
                      + f"    username: n1\n    password_file: {pw}\n", consumer=c) as r:
            assert wait_for(lambda: r.store.stats().accepted == 200
                            and denied_or_published(r.up), timeout=40)
    assert r.up.stats.published_readings == 0 and c.rec.readings == 0
    assert r.up.stats.unconfirmed_messages >= 1
    assert r.store.stats().backlog["normal"] == 200
    assert secevents.EVENTS.counts("ot").get("acl.denied", 0) >= 1


def test_a_broker_that_disconnects_on_a_denied_publish_is_reported_not_looped_on(
        tmp_path: Path, broker: Mosquitto) -> None:
    proxy = FaultProxy(broker.port).start()
    # closes the connection on any data publish, like a broker that disconnects a client
    # for a publish it does not allow
    proxy.close_on = publishes_to(f"{PREFIX}/data")
    try:
        with ot_agent(tmp_path, proxy.url, (
                "  - {id: g, type: load, rate: 100, total: 200}\n"
                "  - {id: sos, type: load, priority: alarm, rate: 2, total: 4}\n"),
                extra=V3.replace("1s", "5s")) as r:
            assert wait_for(lambda: r.up.stats.held_topics >= 1, timeout=30)
            held = r.agent.health(Channel.OT)["delivery"]
            assert wait_for(lambda: r.up.stats.by_lane.get("alarm", 0) == 4, timeout=20)
            # held: probed with a growing delay (5 s, 10 s, 20 s, ...), no reconnect loop:
            # at most one probe (one close) in any 4 s
            closed = proxy.closed_on
            assert wait_for(lambda: False, timeout=4) is False
            assert proxy.closed_on - closed <= 1
    finally:
        proxy.stop()
    assert held["state"] == "held"
    assert "closed the connection 3 times" in held["held"]["data"]
    assert r.up.stats.published_readings == 4  # the alarms, on their own topic
    assert r.store.stats().backlog["normal"] == 200
    assert secevents.EVENTS.counts("ot").get("acl.denied", 0) >= 1


def publishes_to(topic: str) -> Callable[[bytes], bool]:
    """True for client bytes holding an MQTT PUBLISH to ``topic`` (whole packets; a packet
    split across reads is not seen, which only delays the close to the next publish)."""
    want = topic.encode()

    def check(chunk: bytes) -> bool:
        i = 0
        while i + 2 <= len(chunk):
            kind, length, shift, j = chunk[i] >> 4, 0, 0, i + 1
            while j < len(chunk):
                length |= (chunk[j] & 0x7F) << shift
                shift += 7
                j += 1
                if not chunk[j - 1] & 0x80:
                    break
            if kind == 3 and j + 2 <= len(chunk):
                n = int.from_bytes(chunk[j:j + 2], "big")
                if chunk[j + 2:j + 2 + n] == want:
                    return True
            i = j + length
        return False

    return check


@pytest.mark.parametrize("extra,expect", [
    ("    mqtt_version: 3\n", "denials are detected only by echo"),
    ("    mqtt_version: 3\n    confirm: puback\n", "UNDETECTABLE"),
    ("", None),
])
def test_check_config_warns_about_3_1_1_channels(tmp_path: Path, extra: str,
                                                 expect: str | None) -> None:
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1883", extra_ot=extra,
                     sensors="  - {id: g, type: load}\n")  # no sensors: a warning of its own
    out = subprocess.run([EDGE_AGENT, "check-config", str(cfg)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stdout.splitlines() if "WARNING" in line]
    if expect is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and expect in warnings[0] and "channel ot" in warnings[0]


def test_a_takeover_during_a_drain_is_a_takeover_not_an_acl_denial(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto],
        caplog: pytest.LogCaptureFixture) -> None:
    """MQTT 3.1.1 has no DISCONNECT: a clone with the node's client id makes mosquitto close
    the node's session while its window is in flight. Echoes have shown the broker
    delivers, so this is recognised as a (suspected) takeover, logged once, and no topic is
    held or reported as denied, and nothing is lost."""
    import threading

    N = 30000
    b = acl_broker(tmp_path, broker_factory, ALLOW)
    # a backlog of one-reading messages: the window is never empty while it drains
    cfg = write_site(tmp_path, b.url, extra_ot=V3 + "    batch_max: 1\n",
                     store="  batch_max: 1\n",
                     sensors="  - {id: g, type: load, rate: 100000, total: N}\n".replace(
                         "N", str(N)))
    c = v3_consumer(b.port)
    stop = threading.Event()

    def clone() -> None:  # another node with the same name, coming and going
        while not stop.is_set():
            other = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-n1-ot",
                                protocol=mqtt.MQTTv311)
            try:
                other.connect("127.0.0.1", b.port)
                other.loop_start()
                stop.wait(0.1)
                other.disconnect()
                other.loop_stop()
            except OSError:
                pass
            stop.wait(0.2)

    agent = run_agent(cfg)
    store, up = agent.stores[Channel.OT], agent.uplinks[Channel.OT]
    t = threading.Thread(target=clone, daemon=True)
    try:
        assert wait_for(lambda: store.stats().accepted == N, timeout=20)
        t.start()
        assert wait_for(lambda: up.stats.takeovers >= 1, timeout=60), up.stats
        assert up.stats.connects >= 3
        assert secevents.EVENTS.counts("ot").get("acl.denied", 0) == 0
        assert agent.health(Channel.OT)["delivery"]["state"] != "held"
        assert up.stats.published_readings < N  # it happened during the drain
        stop.set()
        t.join(5)
        # nothing lost meanwhile: what is not confirmed yet is still in the store
        assert wait_for(lambda: c.rec.readings >= up.stats.published_readings, timeout=20)
        st = store.stats()  # first the store, then the deliveries: none counted in neither
        delivered = up.stats.published_readings
        assert sum(st.backlog.values()) + delivered >= N
        assert st.accepted == N and st.dead_letters == 0 and not any(st.evicted.values())
        assert not c.rec.bad
    finally:
        stop.set()
        stop_agent(agent)
        c.stop()
    assert secevents.EVENTS.counts("ot").get("acl.denied", 0) == 0
    said = [r.getMessage() for r in caplog.records
            if "another node may be using client id test-n1-ot" in r.getMessage()]
    assert len(said) == 1, said
