"""Delivery confirmation bookkeeping (edge_agent/uplink/confirm.py): time passed in."""

from __future__ import annotations

import json

from edge_agent.config.schema import ChannelConfig
from edge_agent.config.types import BrokerURL, Duration
from edge_agent.core.model import Channel, Priority
from edge_agent.uplink.confirm import (
    ECHO,
    HELD,
    PUBACK,
    UNVERIFIED,
    VERIFIED,
    DeliveryGate,
    confirm_mode,
    delivery_warning,
    echo_seq,
)
from edge_agent.uplink.envelope import EnvelopeBuilder

D, A = "p/data", "p/alarm"


def cc(**kw: object) -> ChannelConfig:
    return ChannelConfig(brokers=[BrokerURL("mqtts", "h", 8883)], **kw)  # type: ignore[arg-type]


def test_confirm_mode_defaults_to_echo_on_3_1_1_only() -> None:
    assert confirm_mode(cc()) == PUBACK
    assert confirm_mode(cc(mqtt_version=3)) == ECHO
    assert confirm_mode(cc(mqtt_version=3, confirm="puback")) == PUBACK
    assert confirm_mode(cc(confirm="echo")) == ECHO
    assert delivery_warning("ot", cc(), "x") is None
    assert "UNDETECTABLE" in (delivery_warning("ot", cc(mqtt_version=3, confirm="puback"), "x")
                              or "")
    assert "x/data" in (delivery_warning("ot", cc(mqtt_version=3), "x") or "")


def test_echo_seq_reads_plain_and_sealed_heads() -> None:
    plain = EnvelopeBuilder("n1", Channel.OT).data(Priority.NORMAL, 17, 516, b"[]")
    assert echo_seq(plain) == (17, 516)
    sealed = json.dumps({"node": "n1", "channel": "it", "lane": "alarm", "seq": [3, 3],
                         "suite": "x25519", "sealed": "AAAA" * 1000}).encode()
    assert echo_seq(sealed) == (3, 3)
    assert echo_seq(b'{"node": "n1", "store": {"next_seq": 4}}') is None


def test_a_missing_echo_holds_the_topic_and_probes_with_growing_delay() -> None:
    g = DeliveryGate([D, A], echo_timeout=10.0, probe_max=60.0)
    assert g.state() == UNVERIFIED and g.allowance(D, 0.0, 5) is None
    assert g.missing(D, 100.0, "no echo") is True
    assert g.missing(D, 100.0, "no echo") is False  # reported once, counted each time
    assert g.topics[D].unconfirmed == 2 and g.state() == HELD
    assert g.allowance(A, 100.0, 0) is None  # the alarm topic is not held with it
    assert g.allowance(D, 105.0, 0) == 0  # probe not due yet
    assert g.allowance(D, 110.0, 1) == 0  # one probe at a time
    assert g.allowance(D, 110.0, 0) == 1
    delays = []
    now = 110.0
    for _ in range(5):
        g.sent(D, now)
        delays.append(g.topics[D].probe_at - now)
        now = g.topics[D].probe_at
    assert delays == [20.0, 40.0, 60.0, 60.0, 60.0]  # doubling, capped
    assert g.confirmed(D) is True  # open again: reported once
    assert g.state() == VERIFIED and g.allowance(D, now, 8) is None
    assert g.confirmed(D) is False


def test_repeated_disconnects_right_after_publishing_hold_the_topic() -> None:
    g = DeliveryGate([D, A], echo_timeout=10.0)
    assert g.disconnected({D: 0.0}, 1.0) == []
    assert g.disconnected({D: 10.0}, 11.0) == []
    assert g.disconnected({}, 15.0) == []  # nothing published: neither counts nor resets
    assert g.disconnected({D: 20.0, A: 20.0}, 40.0) == []  # long after: not "right after"
    assert g.disconnected({D: 50.0}, 50.5) == [D]
    assert g.state() == HELD and "3 times" in g.topics[D].reason
    assert g.disconnected({D: 60.0}, 60.5) == []  # already held: not reported again
    g2 = DeliveryGate([D], echo_timeout=10.0)
    g2.disconnected({D: 0.0}, 1.0)
    g2.disconnected({D: 2.0}, 3.0)
    g2.confirmed(D)  # a confirmation breaks the run
    assert g2.disconnected({D: 4.0}, 5.0) == [] and g2.state() == VERIFIED


def test_echo_timeout_must_be_positive() -> None:
    try:
        cc(echo_timeout=Duration(0))
    except ValueError as exc:
        assert "echo_timeout" in str(exc)
    else:
        raise AssertionError("accepted echo_timeout 0")
