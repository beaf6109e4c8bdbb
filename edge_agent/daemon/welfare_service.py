"""The welfare rules and the local escalation, run by the agent in one thread of their own.

Other threads only hand things in (bounded, never blocking): ``observe`` (sensor threads:
the readings of the sensors named in ``welfare:``, OT meters included: they are used here,
on the node, and never leave through this path), ``alarms_accepted`` (the IT writer: the
sequence ranges of committed alarm messages), ``delivered`` (the IT uplink: the broker took
an alarm message), ``ack_payload`` (the IT uplink: a message on ``<prefix>/alarm/ack``).

The thread feeds the engine (edge_agent.welfare), ticks its timers on the wall clock,
publishes its events through ``publish`` (the IT ingest queue, alarm lane, under the
resident's pseudonym), drives the escalation state machine (welfare.escalation) and
carries out its actions: the buzzer/LED (devices.indicator), texts through the gsm-modem
sensor, security events. Both states are saved in ``state_dir`` (atomic writes) whenever an
event or an escalation step happened, and at least every ``SAVE_EVERY`` seconds otherwise,
so a restart neither forgets a raised alarm nor restarts its clock.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge_agent.config.escalate import EscalateConfig, check_pattern
from edge_agent.config.welfare import WelfareSubject
from edge_agent.core.clock import Clock
from edge_agent.core.errors import EdgeAgentError, HardwareError
from edge_agent.core.fsutil import atomic_write
from edge_agent.core.model import Reading
from edge_agent.devices.indicator import Indicator
from edge_agent.hal.interfaces import Hardware
from edge_agent.protocols.at_modem import SmsSent, SmsTextError
from edge_agent.security import events as secevents
from edge_agent.security.privacy import pseudonym
from edge_agent.welfare.engine import Welfare
from edge_agent.welfare.escalation import (
    Action,
    Audit,
    Escalation,
    EscalationStateError,
    Indicate,
    Policy,
    SendSms,
)
from edge_agent.welfare.events import Observation, WelfareEvent
from edge_agent.welfare.publish import (
    WELFARE_SENSOR,
    AckError,
    alarm_kind,
    escalates,
    event_readings,
    parse_ack,
)
from edge_agent.welfare.rules import WelfareStateError

WELFARE_STATE = "welfare.json"
ESCALATION_STATE = "escalation.json"
SAVE_EVERY = 60.0  # s: the engine's "last seen" times, saved at most this stale
STEP = 0.05  # s: the thread's period (the buzzer pattern's resolution)
INBOX_MAX = 10_000
DELIVERED_MEMORY = 256


class Modem(Protocol):
    """What the service needs of a gsm-modem sensor (devices.modem.driver.ModemSensor)."""

    def send(self, number: str, text: str, token: Any) -> bool: ...

    def results(self) -> list[tuple[Any, Any]]: ...


@dataclass(frozen=True)
class WelfareSetup:
    site: str
    node: str
    subjects: list[WelfareSubject]
    sensor_types: dict[str, str]  # sensor id -> type, for the rules
    escalate: EscalateConfig | None
    numbers: tuple[str, ...] = ()


class WelfareService:
    def __init__(self, setup: WelfareSetup, *, clock: Clock, state_dir: Path,
                 pseudonym_key: bytes | None, publish: Callable[[list[Reading]], bool],
                 hw: Hardware | None = None, modem: Modem | None = None,
                 log: logging.Logger | None = None) -> None:
        self.setup = setup
        self.clock = clock
        self.state_dir = state_dir
        self.log = log or logging.getLogger("edge_agent.welfare")
        self._publish = publish
        self._modem = modem
        self._names: dict[str, str] = {}
        for subj in setup.subjects:
            if pseudonym_key is None:
                raise EdgeAgentError("welfare rules need the pseudonym key")
            self._names[str(subj.subject)] = pseudonym(pseudonym_key, str(subj.subject))
        self.watched = frozenset().union(*(s.sensors() for s in setup.subjects)) \
            if setup.subjects else frozenset()
        self.welfare = Welfare(setup.subjects, setup.sensor_types,
                               self._load(WELFARE_STATE, "welfare"))
        self.escalation: Escalation | None = None
        self.indicator: Indicator | None = None
        self._patterns: dict[str, tuple[float, ...]] = {}
        esc = setup.escalate
        if esc is not None:
            policy = Policy(site=setup.site, node=setup.node, after=float(esc.after),
                            numbers=setup.numbers if esc.modem else (),
                            sms_attempts=esc.sms_attempts,
                            retry_every=float(esc.retry_every), buzz_for=float(esc.buzz_for),
                            ack_signal_for=float(esc.ack_signal_for))
            saved = self._load(ESCALATION_STATE, "escalation")
            try:
                self.escalation = Escalation(policy, saved)
            except EscalationStateError as exc:
                self.log.error("%s; starting without the saved escalations", exc)
                self.escalation = Escalation(policy)
            if esc.output is not None and hw is not None:
                self.indicator = Indicator(hw, esc.output.pin,
                                           active_high=esc.output.active_high)
                self._patterns = {"alarm": check_pattern(esc.output.alarm_pattern),
                                  "ack": check_pattern(esc.output.ack_pattern)}
        self._lock = threading.Lock()
        self._inbox: collections.deque[tuple[str, Any]] = collections.deque()
        self.dropped_observations = 0
        self._delivered: collections.deque[tuple[int, int]] = collections.deque(
            maxlen=DELIVERED_MEMORY)
        self._dirty = False
        self._saved_at = clock.monotonic()
        self.events_published = 0
        self.acks_rejected = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ any thread

    def observe(self, readings: Iterable[Reading]) -> None:
        picked = [r for r in readings if r.sensor in self.watched]
        if not picked:
            return
        with self._lock:
            for r in picked:
                if len(self._inbox) >= INBOX_MAX:
                    self.dropped_observations += 1
                    continue
                self._inbox.append(("obs", r))

    def alarms_accepted(self, ranges: list[tuple[int, int]], readings: list[Reading]) -> None:
        if self.escalation is None or not ranges:
            return
        with self._lock:
            self._inbox.append(("accepted", (list(ranges), list(readings),
                                             self.clock.time())))

    def delivered(self, first: int, last: int) -> None:
        if self.escalation is None:
            return
        with self._lock:
            self._inbox.append(("delivered", (first, last, self.clock.time())))

    def ack_payload(self, payload: bytes) -> None:
        with self._lock:
            if len(self._inbox) < INBOX_MAX:
                self._inbox.append(("ack", bytes(payload[:2048])))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.indicator is not None:
            try:
                self.indicator.open()
            except HardwareError as exc:
                self.log.error("escalation output GPIO%d: %s (escalating by SMS only)",
                               self.indicator.pin, exc)
                self.indicator = None
        self._thread = threading.Thread(target=self._run, name="welfare", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._save(force=True)
        if self.indicator is not None:
            self.indicator.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.step()
                self._stop.wait(STEP)
        except Exception as exc:  # a bug: visible to the supervisor
            self.error = exc
            self.log.exception("welfare service crashed")
            raise

    # ------------------------------------------------------------------ the thread's work

    def step(self) -> None:
        """One round: inbox, timers, modem results, output, state. Public for tests."""
        now = self.clock.time()
        with self._lock:
            items = list(self._inbox)
            self._inbox.clear()
        events: list[WelfareEvent] = []
        actions: list[Action] = []
        esc = self.escalation
        for what, item in items:
            if what == "obs":
                r: Reading = item
                events += self.welfare.feed(Observation.from_reading(r))
                self._dirty = True
            elif esc is None:
                continue
            elif what == "accepted":
                ranges, batch, at = item
                actions += self._accepted(esc, ranges, batch, at)
            elif what == "delivered":
                first, last, at = item
                self._delivered.append((first, last))
                for seq in (first, last):
                    actions += esc.delivered(seq, at)
            elif what == "ack":
                actions += self._ack(esc, item, now)
        events += self.welfare.tick(now)
        for ev in events:
            self._event(ev)
        if esc is not None:
            if self._modem is not None:
                for token, outcome in self._modem.results():
                    seq, number = token
                    ok = isinstance(outcome, SmsSent)
                    actions += esc.sms_result(seq, number, ok,
                                              "" if ok else outcome.detail, now)
            actions += esc.tick(now)
            self._perform(esc, actions, now)
        if self.indicator is not None:
            self.indicator.tick(self.clock.monotonic())
        self._save(force=bool(events or actions))

    def _accepted(self, esc: Escalation, ranges: list[tuple[int, int]],
                  readings: list[Reading], now: float) -> list[Action]:
        out: list[Action] = []
        i = 0
        for first, last in ranges:
            chunk = readings[i:i + last - first + 1]
            i += last - first + 1
            if not chunk or not self._escalating(chunk):
                continue
            taken = any(a <= first <= b or a <= last <= b for a, b in self._delivered)
            out += esc.raised(first, alarm_kind(chunk), now, last=last, delivered=taken)
        return out

    @staticmethod
    def _escalating(chunk: list[Reading]) -> bool:
        welfare = [r for r in chunk if r.sensor.rsplit("/", 1)[-1] == WELFARE_SENSOR]
        if not welfare:
            return True  # a sensor's alarm: the button, a fall
        level = {r.name.rsplit("/", 1)[-1]: r.value for r in welfare}
        return level.get("state") == "raised" and level.get("level") in ("alarm", "danger")

    def _ack(self, esc: Escalation, payload: bytes, now: float) -> list[Action]:
        try:
            ack = parse_ack(payload)
        except AckError as exc:
            self.acks_rejected += 1
            return [Audit("ack_rejected", str(exc)[:200])]
        return esc.acknowledged(ack.seq, ack.by, now)

    def _event(self, ev: WelfareEvent) -> None:
        name = self._names.get(ev.subject)
        if name is None:
            return
        readings = event_readings(ev, name)
        self.log.info("welfare %s %s %s (since %.0f)", ev.kind, ev.level, ev.state, ev.since)
        if self._publish(readings):
            self.events_published += 1
        self._dirty = True
        if escalates(ev):
            self.log.warning("welfare %s at level %s raised", ev.kind, ev.level)

    def _perform(self, esc: Escalation, actions: list[Action], now: float) -> None:
        for a in actions:
            if isinstance(a, Audit):
                secevents.emit("escalation", a.outcome, channel="it", detail=a.detail)
            elif isinstance(a, Indicate):
                if self.indicator is not None:
                    pattern = self._patterns.get(a.signal) if a.signal else None
                    self.indicator.show(pattern, self.clock.monotonic())
            elif isinstance(a, SendSms):
                self._send(esc, a, now)

    def _send(self, esc: Escalation, a: SendSms, now: float) -> None:
        why = ""
        if self._modem is None:
            why = "no modem"
        else:
            try:
                if not self._modem.send(a.number, a.text, (a.alarm, a.number)):
                    why = "modem queue full"
            except SmsTextError as exc:
                why = str(exc)
        if why:
            self._perform(esc, esc.sms_result(a.alarm, a.number, False, why, now), now)

    # ------------------------------------------------------------------ state

    def _load(self, name: str, what: str) -> bytes | None:
        path = self.state_dir / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.log.error("%s: cannot read the %s state: %s", path, what, exc)
            return None
        if what == "welfare":
            try:
                Welfare(self.setup.subjects, self.setup.sensor_types, data)
            except WelfareStateError as exc:
                self.log.error("%s: %s; starting the rules afresh", path, exc)
                return None
        return data

    def _save(self, force: bool = False) -> None:
        mono = self.clock.monotonic()
        if not force and not (self._dirty and mono - self._saved_at >= SAVE_EVERY):
            return
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.setup.subjects:
                atomic_write(self.state_dir / WELFARE_STATE, self.welfare.state_json(), 0o600)
            if self.escalation is not None:
                atomic_write(self.state_dir / ESCALATION_STATE,
                             self.escalation.state_json(), 0o600)
        except OSError as exc:
            self.log.error("cannot save the welfare state: %s", exc)
            return
        self._dirty = False
        self._saved_at = mono

    # ------------------------------------------------------------------ reporting

    def health(self) -> dict[str, Any] | None:
        """The health message's ``escalation`` (IT), or None without ``escalate:``."""
        return None if self.escalation is None else self.escalation.status()

    def status(self) -> dict[str, Any]:
        raised = {self._names.get(str(sr.rules.subject), "?"): sorted(sr.s.raised)
                  for sr in self.welfare.subjects}
        out: dict[str, Any] = {"raised": raised, "events_published": self.events_published,
                               "dropped_observations": self.dropped_observations,
                               "acks_rejected": self.acks_rejected}
        if self.escalation is not None:
            out["escalation"] = self.escalation.status()
        return out


def build_service(cfg: Any, *, clock: Clock, hw: Hardware | None, modems: dict[str, Any],
                  pseudonym_key: Callable[[], bytes],
                  publish: Callable[[list[Reading]], bool]) -> WelfareService | None:
    """The service for a site (``cfg``: a SiteConfig), or None without ``welfare:`` and
    ``escalate:``. Refuses (KeyFileError) a missing or loose numbers file, like a key."""
    from edge_agent.devices.modem.numbers import load_numbers

    esc = cfg.escalate
    if not cfg.welfare and esc is None:
        return None
    numbers: tuple[str, ...] = ()
    modem = None
    if esc is not None and esc.modem is not None and esc.numbers_file is not None:
        numbers = load_numbers(esc.numbers_file)
        modem = modems.get(str(esc.modem))
        if modem is None:
            logging.getLogger("edge_agent.welfare").error(
                "escalation modem %s is not running (disabled or failed to start): alarms "
                "escalate by the buzzer only", esc.modem)
    setup = WelfareSetup(cfg.site, cfg.node, list(cfg.welfare),
                         {s.id: s.type for s in cfg.sensors if s.enabled}, esc, numbers)
    return WelfareService(setup, clock=clock, state_dir=cfg.state_dir / "welfare",
                          pseudonym_key=pseudonym_key() if cfg.welfare else None,
                          publish=publish, hw=hw, modem=modem)
