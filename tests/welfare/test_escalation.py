"""Local escalation as a pure state machine: injected time, actions out."""

from __future__ import annotations

import pytest

from edge_agent.welfare.escalation import (
    Audit,
    Escalation,
    EscalationStateError,
    Indicate,
    Policy,
    SendSms,
    sms_text,
)

P = Policy(site="namwon-01", node="pi-0042", after=60, numbers=("+821011112222",),
           sms_attempts=3, retry_every=30, buzz_for=600, ack_signal_for=60)


def of(actions: list[object], kind: type) -> list[object]:
    return [a for a in actions if isinstance(a, kind)]


def test_undelivered_alarm_escalates_once_after_the_delay() -> None:
    e = Escalation(P)
    assert of(e.raised(7, "inactivity", 1000.0), Indicate) == [Indicate(None)]
    assert e.tick(1059.9) == []
    acts = e.tick(1060.0)
    assert of(acts, SendSms) == [SendSms(7, "+821011112222",
                                         sms_text("namwon-01", "pi-0042", "inactivity"), 1)]
    assert Indicate("alarm") in acts
    assert [a.outcome for a in of(acts, Audit)] == ["escalated"]  # type: ignore[attr-defined]
    assert e.tick(1061.0) == [] and e.tick(2000.0) == [Indicate(None)]  # buzz_for elapsed
    assert e.tick(5000.0) == []


def test_delivered_in_time_never_escalates() -> None:
    e = Escalation(P)
    e.raised(7, "fall", 1000.0)
    e.delivered(7, 1001.0)
    assert e.tick(1100.0) == [] and e.next_deadline() is None


def test_sms_retries_are_bounded_then_reported() -> None:
    e = Escalation(P)
    e.raised(1, "fall", 0.0)
    e.tick(60.0)
    sends = 1
    t = 60.0
    outcomes = []
    for _ in range(5):
        acts = e.sms_result(1, "+821011112222", False, "cms 38 at text", t)
        outcomes += [a.outcome for a in of(acts, Audit)]  # type: ignore[attr-defined]
        t += 30.0
        sends += len(of(e.tick(t), SendSms))
    assert sends == 3
    assert outcomes == ["sms_retry", "sms_retry", "sms_failed"]
    st = e.status()["alarms"][0]["sms"]["**********222"]
    assert st == {"attempts": 3, "sent": False, "failed": True, "last_error": "cms 38 at text"}


def test_ack_stops_escalation_and_reports_time_to_ack() -> None:
    e = Escalation(P)
    e.raised(3, "button", 0.0)
    e.tick(60.0)
    e.sms_result(3, "+821011112222", False, "timeout at ATE0", 61.0)
    acts = e.acknowledged(3, "platform", 75.5)
    assert Indicate("ack") in acts
    assert of(e.tick(200.0), SendSms) == []  # the retry due at 91 s never goes
    assert e.status()["alarms"][0]["time_to_ack"] == 75.5
    assert e.signal(200.0) is None


def test_ack_before_escalation_prevents_it() -> None:
    e = Escalation(P)
    e.raised(3, "fall", 0.0)
    acts = e.acknowledged(3, "platform", 10.0)
    assert [a.outcome for a in of(acts, Audit)] == ["acknowledged"]  # type: ignore[attr-defined]
    assert e.tick(100.0) == []


def test_unknown_ack_is_audited_and_ignored() -> None:
    e = Escalation(P)
    acts = e.acknowledged(99, "platform", 1.0)
    assert [a.outcome for a in of(acts, Audit)] == ["ack_unknown"]  # type: ignore[attr-defined]


def test_restart_keeps_the_clock_and_does_not_escalate_twice() -> None:
    e = Escalation(P)
    e.raised(5, "inactivity", 0.0)
    e.tick(30.0)
    e2 = Escalation(P, e.state_json())  # restart 30 s into the delay
    assert of(e2.tick(59.0), SendSms) == []
    assert len(of(e2.tick(60.0), SendSms)) == 1
    e3 = Escalation(P, e2.state_json())  # restart after escalation
    acts = e3.tick(61.0)
    assert of(acts, SendSms) == [] and Indicate("alarm") in acts  # output driven again


def test_sms_text_carries_no_values_and_fits() -> None:
    t = sms_text("s" * 80, "n" * 80, "away_overdue")
    assert len(t) <= 160 and "away overdue" in t


def test_bad_state_and_kind() -> None:
    with pytest.raises(EscalationStateError):
        Escalation(P, b"{nope")
    with pytest.raises(ValueError):
        Escalation(P).raised(1, "Heart rate 180", 0.0)


def test_a_message_of_several_readings_is_one_alarm() -> None:
    e = Escalation(P)
    e.raised(10, "inactivity", 0.0, last=14)
    e.delivered(12, 1.0)  # the broker took the message 10..14
    assert e.tick(100.0) == []
    e.raised(20, "fall", 0.0, last=22, delivered=True)  # its PUBACK came first
    assert e.tick(100.0) == []
    acts = e.acknowledged(21, "platform", 5.0)
    assert [a.outcome for a in of(acts, Audit)] == ["acknowledged"]  # type: ignore[attr-defined]
    assert [a["seq"] for a in e.status()["alarms"] if "time_to_ack" in a] == [20]
