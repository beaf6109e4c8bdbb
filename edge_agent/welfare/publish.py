"""Welfare events as the readings that carry them to the platform, and the platform's
acknowledgements of alarms (pure).

A welfare event becomes SenML records of the sensor ``<pseudonym>/welfare`` on the IT
channel's alarm lane, all stamped with the event's time:

    <kind>/level     "caution" | "alarm" | "danger"
    <kind>/state     "raised" | "resolved"
    <kind>/since     the time of the last evidence the rule relied on (s since the epoch)
    <kind>/evidence/<sensor id>   the last time that signal was seen
    climate/temperature           the last room temperature (Cel), climate events only

The resident appears only as the keyed pseudonym (security.privacy.pseudonym). Sensor ids
are the site's names for devices (``pir-hall``), not personal data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

from edge_agent.core.errors import EdgeAgentError
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.welfare.events import WelfareEvent

WELFARE_SENSOR = "welfare"
ESCALATING_LEVELS = frozenset({"alarm", "danger"})
_KIND_SAFE = re.compile(r"[^a-z_]")
_KIND_OF_READING = {"pressed": "emergency_button", "held": "emergency_button"}


def event_readings(event: WelfareEvent, pseudonym: str) -> list[Reading]:
    sensor = f"{pseudonym}/{WELFARE_SENSOR}"
    k = event.kind

    def r(name: str, value: float | str, unit: str | None = None) -> Reading:
        return Reading(sensor, Channel.IT, Priority.ALARM, f"{k}/{name}", value, event.t, unit)

    out = [r("level", event.level), r("state", event.state), r("since", event.since, "s")]
    out += [r(f"evidence/{sid}", seen, "s") for sid, seen in sorted(event.evidence.items())]
    if event.value is not None:
        out.append(r("temperature", event.value, "Cel"))
    return out


def escalates(event: WelfareEvent) -> bool:
    """Raised at alarm or danger: worth a buzzer and an SMS when the platform is away.
    A caution, or a resolution, is not."""
    return event.state == "raised" and event.level in ESCALATING_LEVELS


def alarm_kind(readings: list[Reading]) -> str:
    """What an alarm-lane batch is about, as a short word for the SMS and the status: the
    welfare event's kind, else what the sensor's reading says (``emergency_button`` for a
    press or a hold, else the reading's name: ``fall``)."""
    for rd in readings:
        parts = rd.sensor.split("/")
        if parts[-1] == WELFARE_SENSOR:
            return rd.name.split("/", 1)[0]
    name = readings[0].name if readings else "alarm"
    if name in _KIND_OF_READING:
        return _KIND_OF_READING[name]
    kind = _KIND_SAFE.sub("_", name.lower()).strip("_")[:24]
    return kind if kind and kind[0].isalpha() else "alarm"


class AckError(EdgeAgentError, ValueError):
    """An acknowledgement payload is not ``{"seq": N, "by": "..."}``."""


class _AckBody(msgspec.Struct, forbid_unknown_fields=True):
    seq: int
    by: str
    time: float | None = None


_BY = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.@-]{0,63}")


@dataclass(frozen=True)
class AlarmAck:
    seq: int
    by: str


def parse_ack(payload: bytes) -> AlarmAck:
    """An acknowledgement on ``<prefix>/alarm/ack`` (edge_agent/schemas/alarm-ack.json)."""
    if len(payload) > 1024:
        raise AckError("acknowledgement larger than 1 KiB")
    try:
        body = msgspec.json.decode(payload, type=_AckBody)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise AckError(f"not an acknowledgement: {exc}") from None
    if body.seq < 1:
        raise AckError("seq must be >= 1")
    if not _BY.fullmatch(body.by):
        raise AckError("by must be 1-64 letters, digits, spaces or _.@-")
    return AlarmAck(body.seq, body.by)
