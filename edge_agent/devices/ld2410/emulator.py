"""An HLK-LD2410 on a pty: pushes report frames, answers configuration commands.

The scenario (``LD2410Emulate``, the sensor's ``emulate`` option) is a looping presence
schedule plus faults: noise before frames, a bad check byte, silence, and an unplug.
Tests can also script it directly: ``set_target()``, ``inject()``, ``unplug()``/``replug()``.
"""

from __future__ import annotations

import threading
from collections import deque

from edge_agent.core.clock import Clock
from edge_agent.devices.ld2410.options import LD2410Emulate, LD2410Options, StateName
from edge_agent.hal.emulated.pty import PtyDevice
from edge_agent.protocols import ld2410
from edge_agent.protocols.ld2410 import Report, TargetState

FIRMWARE_VALUE = bytes.fromhex("0001020116240622")  # type 0x0100, V1.02.22062416
NOISE = b"\x00\xf4\x55\xfd\x13\x37\xf8\xaa"


def make_report(state: TargetState, distance_cm: int, energy: int,
                engineering: bool = False) -> Report:
    """The report a radar sends for one target at ``distance_cm``."""
    moving = state in (TargetState.MOVING, TargetState.BOTH)
    still = state in (TargetState.STATIONARY, TargetState.BOTH)
    present = state is not TargetState.NONE
    gates: tuple[int, ...] = ()
    if engineering:
        hit = min(distance_cm // 75, ld2410.MAX_GATE)
        gates = tuple(energy if present and g == hit else 5 for g in range(ld2410.MAX_GATE + 1))
    return Report(
        state=state,
        moving_distance=distance_cm if moving else 0,
        moving_energy=energy if moving else 0,
        stationary_distance=distance_cm if still else 0,
        stationary_energy=energy if still else 0,
        detection_distance=distance_cm if present else 0,
        engineering=engineering,
        moving_gate_energy=gates,
        stationary_gate_energy=gates,
    )


class LD2410Device(PtyDevice):
    """The radar's side of the UART."""

    def __init__(self, scenario: LD2410Emulate | None = None, *,
                 clock: Clock | None = None) -> None:
        super().__init__("ld2410", clock=clock)
        self.scenario = scenario or LD2410Emulate()
        self._parser = ld2410.Parser()
        self._lock = threading.Lock()
        self._override: tuple[TargetState, int, int] | None = None
        self._start: float | None = None
        self._next_frame = 0.0
        self._frames = 0
        self.engineering = False
        self.config_mode = False
        self.commands: deque[int] = deque(maxlen=64)  # last command words received
        if self.scenario.unplug_after is not None:
            self.script_outage(self.scenario.unplug_after, self.scenario.unplug_for)

    # -- control (any thread) ----------------------------------------------------------------

    def set_target(self, state: StateName, distance_cm: int = 150, energy: int = 60) -> None:
        """Override the schedule with a fixed target (tests, demos)."""
        with self._lock:
            self._override = (TargetState[state.upper()], distance_cm, energy)

    def inject(self, data: bytes) -> bool:
        """Send raw bytes (noise, hand-made frames) to the host."""
        return self.write(data)

    # -- device thread -------------------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        for item in self._parser.feed(data):
            if isinstance(item, ld2410.CommandFrame) and not item.is_ack:
                self._answer(item.word)

    def on_replug(self) -> None:
        self._parser = ld2410.Parser()
        self.config_mode = False

    def on_tick(self, now: float) -> None:
        if self._start is None:
            self._start = self._next_frame = now
        if now < self._next_frame:
            return
        self._next_frame = now + self.scenario.frame_interval
        t = now - self._start
        sc = self.scenario
        if self.config_mode or (sc.silence_after is not None
                                and sc.silence_after <= t < sc.silence_after + sc.silence_for):
            return
        self._frames += 1
        state, distance, energy = self._target(t)
        frame = ld2410.encode_report(
            make_report(state, distance, energy, self.engineering),
            check=0x5A if _every(sc.bad_check_every, self._frames) else ld2410.REPORT_CHECK,
        )
        if _every(sc.noise_every, self._frames):
            frame = NOISE + frame
        self.write(frame)

    def _target(self, t: float) -> tuple[TargetState, int, int]:
        with self._lock:
            if self._override is not None:
                return self._override
        steps = self.scenario.schedule
        if not steps:
            return TargetState.NONE, 0, 0
        t %= sum(s.seconds for s in steps)
        for step in steps:
            if t < step.seconds:
                return TargetState[step.state.upper()], step.distance_cm, step.energy
            t -= step.seconds
        last = steps[-1]
        return TargetState[last.state.upper()], last.distance_cm, last.energy

    def _answer(self, word: int) -> None:
        self.commands.append(word)
        if word == ld2410.CMD_ENABLE_CONFIG:
            self.config_mode = True
            self.write(ld2410.ack(word, 0, b"\x01\x00\x40\x00"))
        elif not self.config_mode:
            self.write(ld2410.ack(word, 1))  # commands need configuration mode
        elif word == ld2410.CMD_END_CONFIG:
            self.config_mode = False
            self.write(ld2410.ack(word))
        elif word == ld2410.CMD_READ_FIRMWARE:
            self.write(ld2410.ack(word, 0, FIRMWARE_VALUE))
        elif word in (ld2410.CMD_ENGINEERING_ON, ld2410.CMD_ENGINEERING_OFF):
            self.engineering = word == ld2410.CMD_ENGINEERING_ON
            self.write(ld2410.ack(word))
        else:
            self.write(ld2410.ack(word, 1))


def _every(n: int, count: int) -> bool:
    return n > 0 and count % n == 0


def emulate(options: LD2410Options, clock: Clock) -> LD2410Device:
    """The emulated radar of an ``ld2410`` sensor, on a pty (real time: it is real I/O)."""
    return LD2410Device(options.emulate)
