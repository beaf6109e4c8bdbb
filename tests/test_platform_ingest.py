"""The reference ingest (edge_agent/tools/ingest.py) and its ledger: shared subscriptions
split a fleet between processes, gaps are told apart (explained by the node, pending, real
loss), sealed payloads are opened and their node signature checked, duplicates dropped.
Real mosquitto, real agent, real keys."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.core.model import Channel
from edge_agent.daemon.runtime import Agent
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.security import seal
from edge_agent.tools.ingest import Ingest, IngestConfig, main, merged_gaps
from edge_agent.tools.ledger import Ledger
from edge_agent.tools.mosquitto import Mosquitto
from tests.conftest import enrol_node, wait_for, write_site

K = "edge/s/n1/ot"
P = "edge/test/n1/ot"  # the test site's OT prefix


def health(next_seq: int, backlog: int, t: float, evicted: list[list[object]] | None = None,
           dead: list[list[int]] | None = None) -> dict[str, object]:
    return {"site": "s", "node": "n1", "channel": "ot", "time": t,
            "store": {"next_seq": next_seq, "backlog": {"normal": backlog},
                      "evicted_ranges": evicted or [], "dead_dropped_ranges": dead or []}}


# ---------------------------------------------------------------------- ledger

def test_duplicates_are_dropped_and_counted() -> None:
    led = Ledger()
    assert led.deliver(K, 1, 10)
    assert not led.deliver(K, 1, 10)  # the same message again
    assert not led.deliver(K, 3, 5)  # inside what was delivered
    assert led.deliver(K, 8, 12)  # partly new: passed on, overlap counted
    st = led.streams[K]
    assert (st.readings, st.duplicates) == (12, 10 + 3 + 3)
    with pytest.raises(ValueError, match="seq"):
        led.deliver(K, 5, 4)


def test_gaps_explained_by_the_node_pending_and_real_loss() -> None:
    led = Ledger()
    led.deliver(K, 1, 10)
    led.deliver(K, 21, 30)
    led.deliver(K, 41, 50)
    # seen missing at t=100: 11..20 and 31..40, the node still has a backlog
    led.health(K, health(51, 5, 99.0))
    assert [g.kind for g in led.gaps(K, 100.0)] == ["pending", "pending"]
    # the node reports 11..20 evicted (size) and, later, an empty backlog
    led.health(K, health(51, 0, 150.0, evicted=[[11, 20, "size"]]))
    gaps = led.gaps(K, 160.0)
    assert [(g.first, g.last, g.kind) for g in gaps] == [(11, 20, "evicted:size"),
                                                         (31, 40, "loss")]
    assert gaps[1].since == 100.0  # dated when first seen, not now


def test_a_health_message_older_than_the_gap_does_not_make_it_a_loss() -> None:
    led = Ledger()
    led.health(K, health(21, 0, 50.0))
    led.deliver(K, 1, 10)
    led.deliver(K, 16, 20)
    assert [g.kind for g in led.gaps(K, 100.0)] == ["pending"]  # may still be in flight
    led.deliver(K, 11, 15)
    assert led.gaps(K, 101.0) == []


def test_dead_dropped_ranges_and_every_eviction_reason_are_explained() -> None:
    led = Ledger()
    led.deliver(K, 60, 60)
    ev = [[1, 9, "corrupt"], [10, 19, "skipped"], [20, 29, "shredded"], [30, 39, "retention"],
          [40, 49, "rejected"]]
    led.health(K, health(61, 0, 10.0, evicted=ev, dead=[[50, 59]]))
    kinds = {(g.first, g.kind) for g in led.gaps(K, 20.0)}
    assert kinds == {(1, "evicted:corrupt"), (10, "evicted:skipped"),
                     (20, "evicted:shredded"), (30, "evicted:retention"),
                     (40, "evicted:rejected"), (50, "evicted:dead-dropped")}


def test_reports_of_a_group_merge_into_one_view() -> None:
    a, b = Ledger(), Ledger()
    for first in range(1, 100, 10):  # the broker split the messages between two processes
        (a if first % 20 == 1 else b).deliver(K, first, first + 9)
    a.deliver(K, 91, 100)  # one delivered to both (at-least-once)
    assert a.gaps(K, 1.0)  # each alone sees gaps
    merged = merged_gaps([{"streams": a.report(1.0)}, {"streams": b.report(1.0)}], 2.0)
    assert merged[K]["gaps"] == []
    assert merged[K]["readings"] == 100
    assert merged[K]["duplicates"] == 10


def test_gaps_cli_exits_1_on_a_real_loss(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    led = Ledger()
    led.deliver(K, 1, 10)
    led.deliver(K, 21, 30)
    led.gaps(K, 5.0)  # seen missing at 5
    led.health(K, health(31, 0, 9.0))
    (tmp_path / "a.json").write_text(json.dumps({"streams": led.report(10.0)}))
    assert main(["gaps", str(tmp_path / "a.json")]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out[K]["gaps"][0][:3] == [11, 20, "loss"]
    (tmp_path / "b.json").write_text("{not json")
    assert main(["gaps", str(tmp_path / "b.json")]) == 2


# ---------------------------------------------------------------------- against mosquitto

def test_two_processes_share_the_fleet_and_together_receive_everything(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    b = broker_factory()
    cfg = write_site(tmp_path, b.url, sensors="  - {id: g, type: load, rate: 2000, "
                                                "total: 20000, chunk: 0.01}\n",
                     extra_ot="    batch_max: 50\n")
    group = [Ingest(IngestConfig("127.0.0.1", b.port, group="g1", client_id=f"i{i}")).start()
             for i in range(2)]
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
    agent.start()
    try:
        def together() -> int:
            return sum(i.counters.readings for i in group)

        assert wait_for(lambda: together() >= 20000, timeout=60)
        # health goes to every member (not shared): each knows the node's top
        assert wait_for(lambda: all(P in i.ledger.streams and i.ledger.streams[P].top >= 20000
                                    for i in group), timeout=10)
    finally:
        agent.stop_event.set()
        agent.shutdown()
        for i in group:
            i.stop()
    shares = [i.counters.readings for i in group]
    assert all(n > 0 for n in shares), shares  # the broker split the messages
    assert sum(shares) == 20000  # and gave each message to one of them only
    merged = merged_gaps([i.report() for i in group], 1e12)
    assert merged[P]["gaps"] == [] and merged[P]["readings"] == 20000


def test_sealed_it_payloads_are_opened_and_a_forged_node_is_refused(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    ot, it = broker_factory(), broker_factory()
    pk = seal.generate_files("x25519", tmp_path / "p.key", tmp_path / "p.pub")
    cfg = write_site(tmp_path, ot.url, it.url, sensors=(
        "  - {id: g, type: load, channel: it, rate: 200, total: 400}\n"),
        extra_it=f"    seal: {{public_key_file: {tmp_path / 'p.pub'}}}\n")
    enrolled = enrol_node(tmp_path / "state")
    stranger = enrol_node(tmp_path / "other", node="n1")  # another key under the same name
    got: list[dict[str, object]] = []
    good = Ingest(IngestConfig("127.0.0.1", it.port, group=None, client_id="good",
                               private_key=pk.private_key, node_keys=enrolled),
                  sink=got.append).start()
    fooled = Ingest(IngestConfig("127.0.0.1", it.port, group=None, client_id="fooled",
                                 private_key=pk.private_key, node_keys=stranger)).start()
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
    agent.start()
    try:
        assert wait_for(lambda: good.counters.readings >= 400, timeout=60)
        assert wait_for(lambda: fooled.counters.bad > 0, timeout=10)
    finally:
        agent.stop_event.set()
        agent.shutdown()
        good.stop()
        fooled.stop()
    assert agent.stores[Channel.IT].stats().accepted == 400
    assert good.counters.bad == 0 and got and all("senml" in m for m in got)
    assert all(m["signer"] for m in got)
    assert fooled.counters.readings == 0 and "FORGED" in str(fooled.counters.last_bad)


def test_cli_run_writes_ngsi_ld_entities_and_its_report(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    import io
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    b = broker_factory()
    out, reports = tmp_path / "out.jsonl", tmp_path / "reports"
    rc: list[int] = []
    counters = io.StringIO()
    t = threading.Thread(target=lambda: rc.append(main(
        ["run", "--broker", b.url, "--group", "cli", "--client-id", "cli-1", "--out", str(out),
         "--ngsi-ld", "--report-dir", str(reports), "--report-interval", "0.3",
         "--seconds", "4"], out=counters)))
    t.start()
    assert wait_for(lambda: (reports / "cli-1.json").exists(), timeout=10)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", b.port)
    pub.loop_start()
    env = {"node": "n1", "channel": "ot", "lane": "normal", "seq": [1, 1], "site": "s",
           "senml": [{"n": "meter/power", "u": "W", "v": 5.0, "t": 1_764_500_000.0}]}
    pub.publish("edge/s/n1/ot/data", json.dumps(env), qos=1).wait_for_publish(5)
    pub.publish("edge/s/n1/ot/data", json.dumps(env), qos=1).wait_for_publish(5)  # again
    pub.loop_stop()
    t.join(20)
    assert rc == [0]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [e["type"] for e in lines] == ["DeviceMeasurement"]  # the duplicate was dropped
    rep = json.loads((reports / "cli-1.json").read_text())
    assert rep["counters"]["duplicates"] == 1
    assert rep["streams"]["edge/s/n1/ot"]["delivered"] == [[1, 1]]
    assert json.loads(counters.getvalue().splitlines()[-1])["readings"] == 1
