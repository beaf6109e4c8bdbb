"""Welfare events as alarm-lane readings; acknowledgement payloads."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft7Validator

from edge_agent import schemas
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.welfare.events import WelfareEvent
from edge_agent.welfare.publish import (
    AckError,
    AlarmAck,
    alarm_kind,
    escalates,
    event_readings,
    parse_ack,
)

EV = WelfareEvent(t=1_800_000_000.0, subject="Kim Young-hee", kind="inactivity",
                  level="alarm", state="raised", since=1_799_950_000.0,
                  evidence={"pir-hall": 1_799_950_000.0, "meter-main": 1_799_940_000.0})


def test_event_readings_carry_the_pseudonym_only() -> None:
    rs = event_readings(EV, "p-0123456789abcdef")
    assert all(r.sensor == "p-0123456789abcdef/welfare" and r.channel is Channel.IT
               and r.priority is Priority.ALARM and r.time == EV.t for r in rs)
    got = {r.name: r.value for r in rs}
    assert got == {"inactivity/level": "alarm", "inactivity/state": "raised",
                   "inactivity/since": 1_799_950_000.0,
                   "inactivity/evidence/meter-main": 1_799_940_000.0,
                   "inactivity/evidence/pir-hall": 1_799_950_000.0}
    assert "Kim" not in json.dumps([r.senml() for r in rs])
    assert alarm_kind(rs) == "inactivity" and escalates(EV)


def test_only_raised_alarms_escalate() -> None:
    import msgspec
    assert not escalates(msgspec.structs.replace(EV, level="caution"))
    assert not escalates(msgspec.structs.replace(EV, state="resolved"))


def test_kind_of_a_sensor_alarm() -> None:
    r = Reading("p-1/sos-button", Channel.IT, Priority.ALARM, "pressed", True, 1.0)
    assert alarm_kind([r]) == "emergency_button"
    assert alarm_kind([Reading("x", Channel.IT, Priority.ALARM, "온도", 1, 1.0)]) == "alarm"


def test_ack_payloads() -> None:
    ok = {"seq": 503, "by": "care-centre namwon", "time": 1717000071.5}
    Draft7Validator(schemas.load(schemas.ALARM_ACK)).validate(ok)
    assert parse_ack(json.dumps(ok).encode()) == AlarmAck(503, "care-centre namwon")
    for bad in [b"", b"[]", b'{"seq": 0, "by": "x"}', b'{"seq": 1}', b'{"seq": "1", "by": "x"}',
                b'{"seq": 1, "by": "x", "extra": 1}', b'{"seq": 1, "by": "\\u0000"}',
                b'{"seq": 1, "by": "' + b"a" * 2000 + b'"}']:
        with pytest.raises(AckError):
            parse_ack(bad)
