"""The agent end to end against real mosquitto brokers (started per test on free ports)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.core.model import Channel
from edge_agent.security.keys import load_key
from edge_agent.store.channel_store import ChannelStore
from edge_agent.store.ranges import RangeSet
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from tests.conftest import EDGE_AGENT, run_agent, start_agent, wait_for, write_site

LOAD_OT = "  - {id: gen-ot, type: load, channel: ot, rate: 200}\n"
LOAD_IT = "  - {id: gen-it, type: load, channel: it, rate: 100}\n"
ALARM_IT = "  - {id: sos, type: load, channel: it, priority: alarm, rate: 2}\n"


def accepted_ranges(state: Path, ch: Channel) -> tuple[int, RangeSet]:
    """Open the store offline (the agent has stopped): what was accepted, what was evicted."""
    key = load_key(state / "keys" / f"{ch.value}.key")
    s = ChannelStore(state / "store", ch, key)
    try:
        return s.next_seq - 1, s.evicted_ranges()
    finally:
        s.close()


def consumer(b: Mosquitto, ch: str) -> Consumer:
    return Consumer("127.0.0.1", b.port, f"edge/test/n1/{ch}").start()



def test_both_channels_deliver_contiguous_and_separated(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    ot, it = broker_factory(), broker_factory()
    c_ot, c_it = consumer(ot, "ot"), consumer(it, "it")
    cfg = write_site(tmp_path, ot.url, it.url, sensors=LOAD_OT + LOAD_IT + ALARM_IT)
    agent = run_agent(cfg)
    assert wait_for(lambda: c_ot.rec.readings > 300 and c_it.rec.readings > 150)
    agent.stop_event.set()
    agent.shutdown()
    for c, ch, names in ((c_ot, "ot", {"gen-ot/counter"}),
                         (c_it, "it", {"gen-it/counter", "sos/counter"})):
        rec = c.snapshot()
        assert not rec.bad
        assert rec.ranges.gaps(1, rec.ranges.max()) == []
        seen = {r["n"] for m in rec.messages for r in m.msg["senml"]}
        assert seen == names | (seen & names)  # nothing from the other channel
        assert seen <= names
        assert all(m.msg["channel"] == ch and m.msg["node"] == "n1" for m in rec.messages)
        assert rec.status is not None
    it_alarms = [m for m in c_it.snapshot().messages if m.topic.endswith("/alarm")]
    assert it_alarms and all(m.msg["lane"] == "alarm" for m in it_alarms)
    top_ot, _ = accepted_ranges(tmp_path / "state", Channel.OT)
    assert c_ot.received().gaps(1, top_ot) == []  # clean shutdown delivered everything


def test_broker_restart_loses_nothing_and_keeps_lane_order(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    # The consumer must be subscribed before the agent reconnects to the restarted broker, or
    # it would miss what the broker acknowledged to nobody. The broker refuses the agent's
    # credentials until the consumer is in place (a refused CONNECT is retried, not lost).
    pw = tmp_path / "passwd"

    def users(*names: str) -> None:
        pw.write_text("")
        for name in names:
            subprocess.run(["mosquitto_passwd", "-b", str(pw), name, f"{name}-pw"], check=True)
        pw.chmod(0o644)

    users("agent", "viewer")
    (tmp_path / "agent.pw").write_text("agent-pw\n")
    (tmp_path / "agent.pw").chmod(0o600)
    ot = broker_factory(allow_anonymous=False, extra=f"password_file {pw}\n")
    cfg = write_site(tmp_path, ot.url, sensors=LOAD_OT,
                     extra_ot="    reconnect_min: 100ms\n    reconnect_max: 500ms\n"
                              f"    username: agent\n    password_file: {tmp_path / 'agent.pw'}\n")

    def viewer() -> Consumer:
        return Consumer("127.0.0.1", ot.port, "edge/test/n1/ot", username="viewer",
                        password="viewer-pw").start()

    agent = run_agent(cfg)
    c = viewer()
    assert wait_for(lambda: c.rec.readings > 100)
    ot.kill()  # before the consumer stops: it has seen all the broker acknowledged
    c.stop()
    # readings keep being accepted into the store meanwhile
    assert wait_for(lambda: agent.stores[Channel.OT].stats().backlog["normal"] > 100)
    users("viewer")
    ot.start()
    c2 = viewer()
    users("agent", "viewer")
    assert ot.proc is not None
    ot.proc.send_signal(signal.SIGHUP)  # mosquitto re-reads its password file

    def delivered() -> RangeSet:
        got = c.received()
        for a, b in c2.received():
            got.add(a, b)
        return got

    top = agent.stores[Channel.OT].next_seq - 1
    assert wait_for(lambda: delivered().gaps(1, top) == [], timeout=30)
    agent.stop_event.set()
    agent.shutdown()
    rec = c2.snapshot()
    assert rec.lane_order_violations == 0
    assert not rec.bad
    assert delivered().gaps(1, top) == []


def test_sigkill_mid_stream_then_restart_delivers_every_accepted_reading(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    ot = broker_factory()
    c = consumer(ot, "ot")
    cfg = write_site(tmp_path, ot.url, sensors="  - {id: gen-ot, type: load, rate: 2000}\n")
    log = tmp_path / "agent.log"
    for i in range(3):
        p = start_agent(cfg, log)
        seen = c.rec.readings
        # this run is up and publishing (not only the backlog of the last one arriving)
        assert wait_for(lambda i=i: log.read_text().count(": running") == i + 1, timeout=30)
        assert wait_for(lambda seen=seen: c.rec.readings > seen, timeout=15)
        # mid-stream: a few hundred more delivered, more accepted and in flight
        assert wait_for(lambda seen=seen: c.rec.readings > seen + 500, timeout=15)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    # what the killed runs accepted: read the store offline, before the next start
    top, evicted = accepted_ranges(tmp_path / "state", Channel.OT)
    assert top > 1000
    assert evicted.count() == 0
    p = start_agent(cfg, log)
    assert wait_for(lambda: log.read_text().count(": running") == 4)
    assert wait_for(lambda: c.received().gaps(1, top) == [], timeout=20), \
        (c.received().gaps(1, top), log.read_text()[-3000:])
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) == 0
    assert c.snapshot().duplicates <= 3 * 8 * 500  # bounded by the in-flight window per crash


def test_refused_publish_is_dead_lettered_not_delivered(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite edge/test/n1/ot/status\n"
                   "topic readwrite edge/test/n1/ot/health\ntopic read #\n")
    ot = broker_factory(extra=f"acl_file {acl}\n")
    cfg = write_site(tmp_path, ot.url, sensors="  - {id: g, type: load, rate: 50, total: 20}\n")
    agent = run_agent(cfg)
    store = agent.stores[Channel.OT]
    assert wait_for(lambda: store.stats().dead_letters >= 1)
    up = agent.uplinks[Channel.OT].stats
    agent.stop_event.set()
    agent.shutdown()
    assert up.published_readings == 0
    assert up.rejected_messages >= 1
    assert "0x87" in (up.last_error or "")
    st = store.stats()
    assert st.evicted["rejected"] >= 1
    assert list((tmp_path / "state" / "store" / "ot" / "dead").glob("*.rec"))


def test_run_exits_zero_on_sigterm_quickly(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = write_site(tmp_path, broker.url, sensors=LOAD_OT)
    log = tmp_path / "agent.log"
    p = start_agent(cfg, log)
    c = consumer(broker, "ot")
    assert wait_for(lambda: c.rec.readings > 0, timeout=15)
    p.send_signal(signal.SIGTERM)
    assert p.wait(5) == 0  # quickly: TimeoutExpired otherwise
    text = log.read_text()
    assert "INFO edge_agent.daemon.runtime: stopped" in text
    assert wait_for(lambda: (c.rec.status or {}).get("state") == "offline", timeout=5)


def test_loose_key_permissions_refuse_to_start(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = write_site(tmp_path, broker.url, sensors=LOAD_OT)
    keyf = tmp_path / "state" / "keys" / "ot.key"
    keyf.parent.mkdir(parents=True)
    keyf.write_text("00" * 32)
    keyf.chmod(0o640)
    out = subprocess.run([EDGE_AGENT, "run", "-c", str(cfg)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2
    assert f"chmod 600 {keyf}" in out.stderr


@pytest.mark.parametrize("text,expect", [
    ("brokers: [\"mqtt://127.0.0.1:1\"]", "plaintext mqtt://127.0.0.1:1 refused"),
])
def test_check_config_cli(tmp_path: Path, text: str, expect: str) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"site: s\nnode: n\nhardware: emulated\nstate_dir: {tmp_path}\n"
                   f"channels:\n  ot:\n    {text}\n")
    out = subprocess.run([EDGE_AGENT, "check-config", str(cfg)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.splitlines()[0] == (
        f"{cfg}:7: channels.ot.brokers[0]: {expect}: use mqtts:// or set allow_insecure: "
        "true for this channel")
    cfg.write_text(cfg.read_text() + "    allow_insecure: true\n")
    out = subprocess.run([EDGE_AGENT, "check-config", str(cfg)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "OK - site s, node n" in out.stdout
