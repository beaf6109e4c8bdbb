"""The node's health, as one typed model with each field name defined once.

The runtime builds a :class:`NodeHealth` from its components' stats objects
(:meth:`edge_agent.daemon.runtime.Agent.health_model`); three renderers read it:

- the status file ``<state_dir>/status.json`` (:mod:`edge_agent.daemon.status`), a
  :class:`StatusFile`: the node's health plus the service's own state, read back by
  ``edge-agent status``;
- the Prometheus textfile (:mod:`edge_agent.daemon.metrics`);
- the MQTT health message of a channel (:func:`health_message`): that channel's
  :class:`ChannelHealth` and its sensors.

None of them holds a health value: for a sensor on the IT channel, counts, times, states
and fault kinds only (``last`` says when, not what; error texts are scrubbed by
``edge_agent.security.redact`` when the model is built). The health message carries no
reading value on any channel (no ``last``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from edge_agent.core.model import Channel, Reading, Value
from edge_agent.security import redact

# Every model ignores fields it does not know when read back (a newer writer).


class StoreHealth(msgspec.Struct, frozen=True, kw_only=True):
    next_seq: int
    backlog: dict[str, int]  # readings waiting, per lane label
    backlog_total: int
    bytes: int  # on disk
    oldest_undelivered: float | None  # wall time of the oldest reading not yet delivered
    evicted: dict[str, int]  # readings, per reason
    evicted_ranges: list[tuple[int, int, str]]  # recent (first, last, reason)
    quarantined: int
    dead_letters: int
    dead_dropped: int
    dead_dropped_ranges: list[tuple[int, int]]
    quarantine_dropped: int
    aside_bytes: int  # dead letters and quarantined files kept
    accepted: int
    not_accepted: int
    # segments found at start and still being scanned (their readings are not in backlog)
    recovering_segments: int = 0


class IngestHealth(msgspec.Struct, frozen=True, kw_only=True):
    dropped_alarms: int = 0
    displaced_readings: int = 0
    queued_alarms: int = 0
    queued_readings: int = 0


class UplinkHealth(msgspec.Struct, frozen=True, kw_only=True):
    connected: bool
    broker: str | None
    brokers: list[str]
    last_error: str | None
    last_publish: float | None
    published_readings: int
    published_messages: int
    rejected_messages: int
    connects: int
    connect_failures: int
    inflight: int
    # sessions closed because another client used this channel's client id (two nodes
    # with one node name); the first is logged, the rest only counted here
    takeovers: int = 0


class DeliveryHealth(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How deliveries are confirmed (PUBACK or echo) and whether that is verified yet."""

    mqtt: str
    confirm: str
    unconfirmed: int
    holds: int
    state: str
    note: str | None = None
    held: dict[str, str] | None = None  # topic -> why it is held


class ChannelHealth(msgspec.Struct, frozen=True, kw_only=True):
    channel: str
    store: StoreHealth
    ingest: IngestHealth
    uplink: UplinkHealth
    delivery: DeliveryHealth
    cert_expiry: float | None  # days left on the soonest-expiring certificate
    security: dict[str, int]  # "category.outcome" -> count


class LastReading(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The last reading kept: on the IT channel only when (``withheld``), never what."""

    time: float
    withheld: bool = False
    name: str | None = None
    value: Value | None = None
    unit: str | None = None


class SensorHealth(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    type: str
    channel: str
    alive: bool
    restarts: int
    readings: int
    errors: dict[str, int]
    last_error: str | None
    last_error_kind: str | None
    last_value_time: float | None
    dropped: dict[str, int]  # readings dropped by the privacy stage, per name
    last: LastReading | None = None


class SmsHealth(msgspec.Struct, frozen=True, kw_only=True):
    attempts: int
    sent: bool
    failed: bool
    last_error: str | None


class EscalatedAlarm(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One alarm as the escalation sees it (edge_agent.welfare.escalation)."""

    seq: int
    kind: str
    raised_at: float
    delivered_at: float | None = None
    escalated_at: float | None = None
    acked_at: float | None = None
    acked_by: str | None = None
    time_to_ack: float | None = None  # s from raised to the platform's acknowledgement
    sms: dict[str, SmsHealth] | None = None  # per number, masked to its last three digits


class EscalationHealth(msgspec.Struct, frozen=True, kw_only=True):
    signal: str | None  # what the buzzer/LED plays: alarm, ack, or nothing
    alarms: list[EscalatedAlarm]


class WelfareHealth(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The welfare rules (levels raised per pseudonym) and the local escalation."""

    raised: dict[str, list[str]]
    events_published: int
    dropped_observations: int
    acks_rejected: int
    escalation: EscalationHealth | None = None


class NodeHealth(msgspec.Struct, frozen=True, kw_only=True):
    time: float  # wall time the model was built
    site: str
    node: str
    hardware: str
    state_dir: str
    channels: dict[str, ChannelHealth]
    sensors: dict[str, SensorHealth]
    welfare: WelfareHealth | None = None


# ---------------------------------------------------------------------- building


def store_health(st: Any) -> StoreHealth:
    """From a :class:`edge_agent.store.channel_store.StoreStats`."""
    return StoreHealth(
        next_seq=st.next_seq, backlog=dict(st.backlog), backlog_total=sum(st.backlog.values()),
        bytes=st.bytes_on_disk, oldest_undelivered=st.oldest_undelivered,
        evicted=dict(st.evicted),
        evicted_ranges=[(a, b, why) for a, b, why in st.evicted_recent],
        quarantined=st.quarantined, dead_letters=st.dead_letters,
        dead_dropped=st.dead_dropped,
        dead_dropped_ranges=[(a, b) for a, b in st.dead_dropped_ranges],
        quarantine_dropped=st.quarantine_dropped,
        aside_bytes=st.dead_bytes + st.quarantine_bytes,
        accepted=st.accepted, not_accepted=st.not_accepted,
        recovering_segments=st.recovering_segments)


def uplink_health(up: Any, brokers: list[str]) -> UplinkHealth:
    """From a :class:`edge_agent.uplink.mqtt.UplinkStats`."""
    return UplinkHealth(
        connected=bool(up.connected), broker=up.broker, brokers=brokers,
        last_error=up.last_error, last_publish=up.last_publish,
        published_readings=up.published_readings, published_messages=up.published_messages,
        rejected_messages=up.rejected_messages, connects=up.connects,
        connect_failures=up.connect_failures, inflight=up.inflight,
        takeovers=getattr(up, "takeovers", 0))


def sensor_health(stype: str, channel: Channel, *, alive: bool, restarts: int, stats: Any,
                  dropped: Mapping[str, int], last: Reading | None) -> SensorHealth:
    """From a sensor's :class:`edge_agent.devices.base.SensorStats` (IT texts scrubbed)."""
    kept: LastReading | None = None
    if last is not None and redact.holds_values(channel):
        kept = LastReading(time=last.time, withheld=True)  # when, not what (nor which)
    elif last is not None:
        kept = LastReading(time=last.time, name=last.name, value=last.value, unit=last.unit)
    return SensorHealth(
        type=stype, channel=channel.value, alive=alive, restarts=restarts,
        readings=stats.readings, errors=dict(stats.errors),
        last_error=redact.error_text(channel, stats.last_error),
        last_error_kind=stats.last_error_kind, last_value_time=stats.last_value_time,
        dropped=dict(dropped), last=kept)


def days(value: float | None) -> float | None:
    """Days left on a certificate, to a tenth."""
    return None if value is None else round(value, 1)


def not_started(stype: str, channel: Channel) -> SensorHealth:
    """A configured sensor whose driver could not be built."""
    return SensorHealth(type=stype, channel=channel.value, alive=False, restarts=0,
                        readings=0, errors={}, last_error="could not be started (see the log)",
                        last_error_kind=None, last_value_time=None, dropped={})


# ---------------------------------------------------------------------- rendering


def health_message(node: NodeHealth, channel: str) -> dict[str, Any]:
    """The body of a channel's MQTT health message (the uplink adds node, site, time):
    the channel's health and its sensors, without any reading value."""
    body: dict[str, Any] = msgspec.to_builtins(node.channels[channel])
    body["sensors"] = {
        sid: msgspec.to_builtins(msgspec.structs.replace(s, last=None))
        for sid, s in node.sensors.items() if s.channel == channel}
    esc = node.welfare.escalation if node.welfare is not None else None
    if channel == Channel.IT.value and esc is not None:
        body["escalation"] = escalation_message(esc)
    return body


def escalation_message(esc: EscalationHealth) -> dict[str, Any]:
    """The health message's ``escalation`` (schema: delivered_at/escalated_at always
    present, null until they happen)."""
    out: dict[str, Any] = msgspec.to_builtins(esc)
    for a in out["alarms"]:
        a.setdefault("delivered_at", None)
        a.setdefault("escalated_at", None)
    return out
