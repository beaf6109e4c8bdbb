"""Local escalation of alarms the platform did not get: a buzzer/LED and an SMS (pure).

An alarm-lane message (an emergency button, a fall, a welfare event) is *raised* when it is
accepted, *delivered* when the IT broker acknowledges it (PUBACK, or the echo on MQTT 3.1.1)
and *acknowledged* when the platform answers on ``<prefix>/alarm/ack``. An alarm not
delivered within ``after`` seconds (no IT broker reachable) escalates, once: the buzzer plays
the alarm pattern and a text goes to every configured number through the modem, each
retried at most ``sms_attempts`` times ``retry_every`` seconds apart, then given up and
reported. An acknowledgement stops all of it and plays the "help is coming" pattern for
``ack_signal_for`` seconds. The buzzer stops by itself ``buzz_for`` seconds after the
escalation.

No clock and no I/O: every call takes ``now`` (wall-clock seconds, so a restart carries on
from the saved state) and returns ``Action``s the caller performs: ``Indicate``,
``SendSms``, ``Audit`` (a security event, category ``escalation``). ``state_json()``
is everything needed after a restart (write it atomically).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from edge_agent.core.errors import EdgeAgentError

STATE_VERSION = 1
MAX_ALARMS = 32  # alarms kept (the oldest finished ones go first)
_KIND = re.compile(r"[a-z][a-z_]{0,23}")

Signal = Literal["alarm", "ack"]


class EscalationStateError(EdgeAgentError, ValueError):
    """Saved escalation state cannot be read."""


@dataclass(frozen=True)
class Policy:
    site: str
    node: str
    after: float = 60.0
    numbers: tuple[str, ...] = ()
    sms_attempts: int = 3
    retry_every: float = 30.0
    buzz_for: float = 600.0
    ack_signal_for: float = 60.0

    def __post_init__(self) -> None:
        if self.after <= 0 or self.retry_every <= 0 or self.buzz_for <= 0 \
                or self.ack_signal_for <= 0:
            raise ValueError("escalation times must be > 0")
        if not 1 <= self.sms_attempts <= 10:
            raise ValueError("sms_attempts must be within 1..10")


@dataclass(frozen=True)
class Indicate:
    signal: Signal | None  # None: silent


@dataclass(frozen=True)
class SendSms:
    alarm: int
    number: str
    text: str
    attempt: int


@dataclass(frozen=True)
class Audit:
    outcome: str
    detail: str


Action = Indicate | SendSms | Audit


class Sms(msgspec.Struct):
    attempts: int = 0
    next_at: float | None = None  # None: nothing to send (in flight, sent or given up)
    sent_at: float | None = None
    failed: bool = False  # given up
    last_error: str | None = None


class Alarm(msgspec.Struct):
    seq: int  # the first sequence number of the alarm's message
    kind: str
    raised_at: float
    last: int | None = None  # its last sequence number (None: the message holds one)
    delivered_at: float | None = None
    escalated_at: float | None = None
    acked_at: float | None = None
    acked_by: str | None = None
    sms: dict[str, Sms] = msgspec.field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.acked_at is not None or (
            self.escalated_at is None and self.delivered_at is not None) or (
            self.escalated_at is not None
            and all(s.sent_at is not None or s.failed for s in self.sms.values()))


class _State(msgspec.Struct):
    version: int = STATE_VERSION
    alarms: list[Alarm] = msgspec.field(default_factory=list)


def sms_text(site: str, node: str, kind: str) -> str:
    """Site, node and the kind of alarm: never a health value or a resident's name."""
    return (f"ALARM {site[:32]} node {node[:32]}: {kind.replace('_', ' ')}. Platform "
            "unreachable; please check on the resident.")


class Escalation:
    def __init__(self, policy: Policy, state: bytes | None = None) -> None:
        self.policy = policy
        self._alarms: dict[int, Alarm] = {}
        if state is not None:
            try:
                saved = msgspec.json.decode(state, type=_State)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise EscalationStateError(f"escalation state unreadable: {exc}") from None
            self._alarms = {a.seq: a for a in saved.alarms}
        self._shown: Signal | None = None
        self._shown_known = False  # after a restart the output is re-driven once

    # -- inputs -------------------------------------------------------------------------------

    def raised(self, seq: int, kind: str, now: float, last: int | None = None,
               delivered: bool = False) -> list[Action]:
        """An alarm message (``seq``..``last``) was accepted; ``delivered``: the broker
        already took it (its PUBACK came first)."""
        if not _KIND.fullmatch(kind):
            raise ValueError(f"alarm kind must be a short lower-case word, got {kind!r}")
        if seq not in self._alarms:
            self._alarms[seq] = Alarm(seq, kind, now, last if last != seq else None,
                                      delivered_at=now if delivered else None)
            self._trim()
        return self.tick(now)

    def find(self, seq: int) -> Alarm | None:
        """The alarm whose message holds ``seq``."""
        a = self._alarms.get(seq)
        if a is not None:
            return a
        return next((a for a in self._alarms.values()
                     if a.last is not None and a.seq <= seq <= a.last), None)

    def delivered(self, seq: int, now: float) -> list[Action]:
        a = self.find(seq)
        if a is not None and a.delivered_at is None:
            a.delivered_at = now
        return self.tick(now)

    def acknowledged(self, seq: int, by: str, now: float) -> list[Action]:
        a = self.find(seq)
        if a is None:
            return [Audit("ack_unknown", f"acknowledgement of unknown alarm seq {seq}"),
                    *self.tick(now)]
        seq = a.seq
        if a.acked_at is not None:
            return self.tick(now)
        a.acked_at, a.acked_by = now, by[:64]
        for s in a.sms.values():
            s.next_at = None
        out: list[Action] = [Audit("acknowledged",
                                   f"alarm seq {seq} ({a.kind}) acknowledged by {a.acked_by} "
                                   f"after {now - a.raised_at:.1f} s")]
        return out + self.tick(now)

    def sms_result(self, seq: int, number: str, ok: bool, detail: str,
                   now: float) -> list[Action]:
        a = self._alarms.get(seq)
        s = a.sms.get(number) if a is not None else None
        if a is None or s is None or s.failed or s.sent_at is not None \
                or s.next_at is not None or s.attempts == 0:
            return self.tick(now)  # no attempt of it in flight: a stale or repeated result
        out: list[Action] = []
        if ok:
            s.sent_at, s.last_error = now, None
            out.append(Audit("sms_sent", f"alarm seq {seq}: SMS {_mask(number)} sent "
                                         f"(attempt {s.attempts})"))
        else:
            s.last_error = detail[:120]
            if s.attempts >= self.policy.sms_attempts:
                s.failed = True
                out.append(Audit("sms_failed", f"alarm seq {seq}: SMS {_mask(number)} given up "
                                               f"after {s.attempts} attempts: {s.last_error}"))
            elif a.acked_at is None:
                s.next_at = now + self.policy.retry_every
                out.append(Audit("sms_retry", f"alarm seq {seq}: SMS {_mask(number)} attempt "
                                              f"{s.attempts} failed: {s.last_error}"))
        return out + self.tick(now)

    def tick(self, now: float) -> list[Action]:
        p = self.policy
        out: list[Action] = []
        for a in self._alarms.values():
            if a.escalated_at is None and a.delivered_at is None and a.acked_at is None \
                    and now - a.raised_at >= p.after:
                a.escalated_at = now
                a.sms = {n: Sms(next_at=now) for n in p.numbers}
                out.append(Audit("escalated",
                                 f"alarm seq {a.seq} ({a.kind}) not delivered to the IT broker "
                                 f"within {p.after:g} s: buzzer"
                                 + (f" and SMS to {len(p.numbers)} number(s)"
                                    if p.numbers else "")))
            if a.acked_at is not None:
                continue
            for number, s in a.sms.items():
                if s.next_at is not None and now >= s.next_at:
                    s.next_at = None
                    s.attempts += 1
                    out.append(SendSms(a.seq, number, sms_text(p.site, p.node, a.kind),
                                       s.attempts))
        signal = self.signal(now)
        if signal != self._shown or not self._shown_known:
            self._shown, self._shown_known = signal, True
            out.append(Indicate(signal))
        return out

    # -- outputs ------------------------------------------------------------------------------

    def signal(self, now: float) -> Signal | None:
        p = self.policy
        if any(a.acked_at is not None and 0 <= now - a.acked_at < p.ack_signal_for
               and a.escalated_at is not None for a in self._alarms.values()):
            return "ack"
        if any(a.escalated_at is not None and a.acked_at is None
               and now - a.escalated_at < p.buzz_for for a in self._alarms.values()):
            return "alarm"
        return None

    def next_deadline(self) -> float | None:
        """When ``tick`` next has something to do (None: nothing pending)."""
        p = self.policy
        ds: list[float] = []
        for a in self._alarms.values():
            if a.acked_at is not None:
                if a.escalated_at is not None:
                    ds.append(a.acked_at + p.ack_signal_for)
                continue
            if a.escalated_at is None and a.delivered_at is None:
                ds.append(a.raised_at + p.after)
            if a.escalated_at is not None:
                ds.append(a.escalated_at + p.buzz_for)
            ds += [s.next_at for s in a.sms.values() if s.next_at is not None]
        return min(ds) if ds else None

    def status(self) -> dict[str, Any]:
        """For ``status`` and the health message: no resident data, numbers masked."""
        alarms = []
        for a in sorted(self._alarms.values(), key=lambda x: x.seq):
            d: dict[str, Any] = {"seq": a.seq, "kind": a.kind, "raised_at": a.raised_at,
                                 "delivered_at": a.delivered_at,
                                 "escalated_at": a.escalated_at}
            if a.acked_at is not None:
                d["acked_at"] = a.acked_at
                d["acked_by"] = a.acked_by
                d["time_to_ack"] = round(a.acked_at - a.raised_at, 3)
            if a.sms:
                d["sms"] = {_mask(n): {"attempts": s.attempts, "sent": s.sent_at is not None,
                                       "failed": s.failed, "last_error": s.last_error}
                            for n, s in a.sms.items()}
            alarms.append(d)
        return {"signal": self._shown, "alarms": alarms}

    def state_json(self) -> bytes:
        return msgspec.json.encode(_State(alarms=list(self._alarms.values())))

    def _trim(self) -> None:
        if len(self._alarms) <= MAX_ALARMS:
            return
        order = sorted(self._alarms.values(), key=lambda a: (not a.finished, a.seq))
        for a in order[:len(self._alarms) - MAX_ALARMS]:
            del self._alarms[a.seq]


def _mask(number: str) -> str:
    """A phone number as logs and status show it: the last three digits only."""
    return "*" * max(0, len(number) - 3) + number[-3:]
