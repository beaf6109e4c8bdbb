"""Seeed MR60FDA1 (fall) / MR60BHA1 (breathing, heart) radars on a pty.

Every ``report_interval`` seconds the radar sends a burst of reports for the current
scenario state (presence, motion, body movement; FDA1: fall and residence; BHA1: distance,
direction, heart and breathing rates and waveforms) and answers queries. Scenario knobs
(``MR60Emulate``, the sensor's ``emulate`` option): a looping presence schedule, a fall at
time T, heart/breathing rates and faults (noise, bad checksum, silence, unplug).
Tests can also script it: ``set_present()``, ``set_fall()``, ``set_vitals()``, ``inject()``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from edge_agent.core.clock import Clock
from edge_agent.devices.mr60.options import (
    Model,
    MotionName,
    MR60Emulate,
    MR60Options,
    OccupancyStep,
)
from edge_agent.hal.emulated.pty import PtyDevice
from edge_agent.protocols import mr60

NOISE = b"\x53\x00\x59\x54\x43\xff\x53"
_MOTION = {"none": 0, "stationary": 1, "moving": 2}


@dataclass
class _State:
    present: bool
    motion: MotionName
    body_movement: int
    fall: bool


class MR60Device(PtyDevice):
    """The radar's side of the UART."""

    def __init__(self, model: Model, scenario: MR60Emulate | None = None, *,
                 clock: Clock | None = None) -> None:
        super().__init__(model, clock=clock)
        self.model = model
        self.scenario = scenario or MR60Emulate()
        self._parser = mr60.Parser()
        self._lock = threading.Lock()
        self._occupancy: OccupancyStep | None = None
        self._fall: bool | None = None
        self._vitals: tuple[int, int] | None = None
        self._start: float | None = None
        self._next_burst = 0.0
        self._bursts = 0
        self._frames = 0
        if self.scenario.unplug_after is not None:
            self.script_outage(self.scenario.unplug_after, self.scenario.unplug_for)

    # -- control (any thread) ----------------------------------------------------------------

    def set_present(self, present: bool, motion: MotionName = "stationary",
                    body_movement: int = 10) -> None:
        """Override the schedule's occupancy."""
        with self._lock:
            self._occupancy = OccupancyStep(1.0, present, motion, body_movement)

    def set_fall(self, fall: bool) -> None:
        """Override the scenario's fall state (MR60FDA1)."""
        with self._lock:
            self._fall = fall

    def set_vitals(self, heart_rate: int, respiration_rate: int) -> None:
        """Override the scenario's rates (MR60BHA1)."""
        with self._lock:
            self._vitals = (heart_rate, respiration_rate)

    def inject(self, data: bytes) -> bool:
        """Send raw bytes (noise, hand-made frames) to the host."""
        return self.write(data)

    # -- device thread -------------------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        for item in self._parser.feed(data):
            if isinstance(item, mr60.Frame) and item.value is None:
                self._answer(item)

    def on_replug(self) -> None:
        self._parser = mr60.Parser()

    def on_tick(self, now: float) -> None:
        if self._start is None:
            self._start = self._next_burst = now
        if now < self._next_burst:
            return
        sc = self.scenario
        self._next_burst = now + sc.report_interval
        t = now - self._start
        if sc.silence_after is not None and sc.silence_after <= t < sc.silence_after \
                + sc.silence_for:
            return
        self._bursts += 1
        burst = b"".join(self._frame(c, k, d) for c, k, d in self._reports(self._state(t)))
        if _every(sc.noise_every, self._bursts):
            burst = NOISE + burst
        self.write(burst)

    def _state(self, t: float) -> _State:
        sc = self.scenario
        with self._lock:
            step, fall = self._occupancy, self._fall
        if step is None:
            step = _step_at(sc.schedule, t)
        if fall is None:
            fall = sc.fall_at is not None and sc.fall_at <= t < sc.fall_at + sc.fall_for
        if fall:
            step = OccupancyStep(1.0, True, "stationary", 0)
        return _State(step.present, step.motion, step.body_movement, fall)

    def _reports(self, s: _State) -> list[tuple[int, int, bytes]]:
        out = [
            (mr60.CTRL_HUMAN, 0x01, bytes([s.present])),
            (mr60.CTRL_HUMAN, 0x02, bytes([_MOTION[s.motion]])),
            (mr60.CTRL_HUMAN, 0x03, bytes([s.body_movement])),
        ]
        if self.model == "mr60fda1":
            out += [(mr60.CTRL_FALL, 0x01, bytes([s.fall])),
                    (mr60.CTRL_FALL, 0x05, bytes([s.present and s.motion == "stationary"]))]
        elif s.present:
            with self._lock:
                heart, breath = self._vitals or (self.scenario.heart_rate,
                                                 self.scenario.respiration_rate)
            n = self._bursts
            out += [
                (mr60.CTRL_HUMAN, 0x04, self.scenario.distance_cm.to_bytes(2, "big")),
                (mr60.CTRL_HUMAN, 0x05, bytes.fromhex("800a00280000")),
                (mr60.CTRL_HEART, 0x02, bytes([heart])),
                (mr60.CTRL_HEART, 0x05, bytes((128 + (n * 7 + i * 13) % 24) for i in range(5))),
                (mr60.CTRL_BREATH, 0x01, b"\x01"),
                (mr60.CTRL_BREATH, 0x02, bytes([breath])),
                (mr60.CTRL_BREATH, 0x05, bytes((128 + (n * 3 + i * 5) % 40) for i in range(5))),
            ]
        return out

    def _frame(self, control: int, command: int, data: bytes) -> bytes:
        self._frames += 1
        bad = _every(self.scenario.bad_checksum_every, self._frames)
        return mr60.encode(control, command, data, bad_checksum=bad)

    def _answer(self, q: mr60.Frame) -> None:
        if q.control == mr60.CTRL_PRODUCT:
            text = {mr60.PRODUCT_MODEL: self.model.upper(), 0xA4: "G60SM1SYv010009"}.get(q.command)
            if text is not None:
                self.write(mr60.encode(q.control, q.command, text.encode()))
            return
        t = 0.0 if self._start is None else self.clock.monotonic() - self._start
        base = q.command & ~mr60.QUERY_BIT
        for control, command, data in self._reports(self._state(t)):
            if (control, command) == (q.control, base):
                self.write(mr60.encode(q.control, q.command, data))


def _step_at(steps: list[OccupancyStep], t: float) -> OccupancyStep:
    if not steps:
        return OccupancyStep(1.0, False, "none", 0)
    t %= sum(s.seconds for s in steps)
    for step in steps:
        if t < step.seconds:
            return step
        t -= step.seconds
    return steps[-1]


def _every(n: int, count: int) -> bool:
    return n > 0 and count % n == 0


def emulate_mr60fda1(options: MR60Options, clock: Clock) -> MR60Device:
    """The emulated fall radar of an ``mr60fda1`` sensor, on a pty."""
    return MR60Device("mr60fda1", options.emulate)


def emulate_mr60bha1(options: MR60Options, clock: Clock) -> MR60Device:
    """The emulated vital-signs radar of an ``mr60bha1`` sensor, on a pty."""
    return MR60Device("mr60bha1", options.emulate)
