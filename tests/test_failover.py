"""Broker-list semantics per channel (``failover``), on the sans-I/O session: which broker
it connects to, in which order, and whether it fails back. No broker, no clock."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from edge_agent.uplink import session as s
from tests.conftest import write_site


def session(failover: str, brokers: int = 3, seed: str = "namwon-01/pi-0042/ot",
            failback: float = 60.0) -> s.Session:
    return s.Session(s.SessionConfig(brokers=brokers, topic_data="p/data",
                                     topic_alarm="p/alarm", failover=failover, seed=seed,
                                     failback_after=failback, reconnect_min=1.0,
                                     reconnect_max=8.0), rng=random.Random(1))


def connect(sess: s.Session, now: float) -> int:
    """Follow next_connection until a Connect; say it connected."""
    step = sess.next_connection(now)
    while isinstance(step, s.Backoff):
        step = sess.next_connection(now)
    sess.handle(s.Connected(step.broker), now)
    return step.broker


def drop(sess: s.Session, now: float) -> None:
    sess.handle(s.ConnectionLost("node killed"), now)
    sess.handle(s.Closed(), now)


def test_a_thousand_nodes_spread_over_the_cluster() -> None:
    starts = Counter(session(s.ANY, seed=f"site-{i // 50}/pi-{i:04d}/ot").next_connection(0)
                     for i in range(1000))
    assert set(starts) == {s.Connect(0), s.Connect(1), s.Connect(2)}
    # uniform would be 333 each; binomial sd ~15: a wide margin, still far from "all on one"
    assert all(250 <= n <= 420 for n in starts.values()), starts


def test_the_start_is_stable_per_node_and_differs_between_nodes() -> None:
    a = [session(s.ANY, brokers=16, seed="s/pi-1/ot").next_connection(0) for _ in range(3)]
    assert a[0] == a[1] == a[2]  # a restart starts at the same node: no reshuffling
    others = {session(s.ANY, brokers=16, seed=f"s/pi-{i}/ot").next_connection(0)
              for i in range(40)}
    assert len(others) > 8


def test_ordered_always_starts_at_the_first() -> None:
    assert {session(s.ORDERED, seed=f"s/pi-{i}/ot").next_connection(0)
            for i in range(50)} == {s.Connect(0)}


def test_any_moves_on_after_a_drop_and_never_fails_back() -> None:
    sess = session(s.ANY, failback=60.0)
    first = connect(sess, 0.0)
    drop(sess, 1.0)
    second = connect(sess, 1.0)
    assert second == (first + 1) % 3  # the next node, not the one that just failed
    # hours on that node: no failback disconnect, whatever failback_after says
    for t in range(2, 4 * 3600, 30):
        assert not [a for a in sess.poll(float(t)) if isinstance(a, s.Disconnect)]
    assert sess.connected and sess.broker == second
    drop(sess, 5 * 3600.0)
    assert connect(sess, 5 * 3600.0) == (second + 1) % 3


def test_any_goes_round_the_list_from_the_start_then_backs_off() -> None:
    sess = session(s.ANY)
    start = sess.next_connection(0.0)
    assert isinstance(start, s.Connect)
    tried = []
    step: s.Connect | s.Backoff = start
    while isinstance(step, s.Connect):
        tried.append(step.broker)
        sess.handle(s.ConnectFailed(step.broker, "refused"), 0.0)
        step = sess.next_connection(0.0)
    assert tried == [(start.broker + i) % 3 for i in range(3)]
    assert isinstance(step, s.Backoff)
    assert sess.next_connection(0.0) == start  # the next round: the same order again


def test_any_connect_failure_skips_to_the_next_and_stays_there() -> None:
    sess = session(s.ANY)
    start = sess.next_connection(0.0)
    assert isinstance(start, s.Connect)
    sess.handle(s.ConnectFailed(start.broker, "refused"), 0.0)
    nxt = connect(sess, 0.0)
    assert nxt == (start.broker + 1) % 3
    sess.handle(s.Closed(), 10.0)  # a clean close (no loss reported) still moves on
    assert sess.next_connection(10.0) == s.Connect((nxt + 1) % 3)


def test_ordered_keeps_primary_backup_with_failback() -> None:
    sess = session(s.ORDERED, failback=60.0)
    sess.handle(s.ConnectFailed(0, "down"), 0.0)
    assert connect(sess, 0.0) == 1
    acts = sess.poll(61.0)
    assert [type(a).__name__ for a in acts] == ["Disconnect"]
    sess.handle(s.Closed(), 61.0)
    assert sess.next_connection(61.0) == s.Connect(0)


def test_stopping_does_not_move_the_start() -> None:
    sess = session(s.ANY)
    b = connect(sess, 0.0)
    sess.handle(s.Stopping(), 1.0)
    sess.handle(s.Closed(), 1.0)
    assert sess.next_connection(1.0) == s.Connect(b)


def test_session_config_refuses_an_unknown_policy() -> None:
    with pytest.raises(ValueError, match="failover"):
        session("random")


def test_check_config_validates_failover(tmp_path: Path) -> None:
    from edge_agent.config import ConfigError, load_config
    from edge_agent.core.model import Channel
    from edge_agent.devices.registry import SENSOR_TYPES

    ok = write_site(tmp_path, "mqtt://127.0.0.1:1", extra_ot="    failover: any\n")
    assert load_config(ok, SENSOR_TYPES).channels[Channel.OT].failover == "any"
    plain = write_site(tmp_path, "mqtt://127.0.0.1:1")
    assert load_config(plain, SENSOR_TYPES).channels[Channel.OT].failover == "ordered"
    bad = write_site(tmp_path, "mqtt://127.0.0.1:1", extra_ot="    failover: random\n")
    with pytest.raises(ConfigError) as e:
        load_config(bad, SENSOR_TYPES)
    assert "failover" in str(e.value)


def subscribes(acts: list[s.Action]) -> int:
    return sum(isinstance(a, s.Subscribe) for a in acts)


def test_a_refused_subscription_is_tried_again_with_a_growing_delay() -> None:
    """A cluster node whose stream leader is being re-elected refuses the SUBACK for a few
    seconds: without a new SUBSCRIBE no echo ever comes and the backlog stays held."""
    from edge_agent.uplink.confirm import ECHO

    sess = s.Session(s.SessionConfig(brokers=3, topic_data="p/data", topic_alarm="p/alarm",
                                     confirm=ECHO, failover=s.ANY, reconnect_min=1.0,
                                     reconnect_max=8.0, health_interval=1e9))
    acts = sess.handle(s.Connected(0), 0.0)
    assert subscribes(acts) == 1
    acts = sess.handle(s.Subscribed(False), 0.1)
    assert any(isinstance(a, s.SubscriptionRefused) for a in acts)
    assert subscribes(sess.poll(0.5)) == 0
    assert subscribes(sess.poll(1.2)) == 1  # again after reconnect_min
    assert subscribes(sess.poll(1.3)) == 0  # once, until its SUBACK
    sess.handle(s.Subscribed(False), 1.3)
    assert subscribes(sess.poll(2.5)) == 0  # the delay doubled
    assert subscribes(sess.poll(3.4)) == 1
    sess.handle(s.Subscribed(True), 3.5)
    assert all(subscribes(sess.poll(3.5 + t)) == 0 for t in range(1, 60))
    assert sess.connected  # the connection was kept
