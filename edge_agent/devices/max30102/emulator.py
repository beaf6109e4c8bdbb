"""An emulated MAX30102: register map and a 32-sample FIFO filled with a synthetic PPG.

Samples appear at the configured rate (SR / SMP_AVE) as the clock advances, so a
ManualClock drives it exactly. The waveform dips at each beat (blood absorbs light); the
red/IR modulation ratio is set from the scenario's SpO2 (R = (110 - SpO2) / 25).
"""

from __future__ import annotations

import math
import random
import threading

from edge_agent.core.clock import Clock
from edge_agent.devices.max30102.options import MAX30102Emulate, MAX30102Options
from edge_agent.hal.emulated import I2CTarget
from edge_agent.protocols import max30102 as p


def _pulse(phase: float) -> float:
    """One heartbeat's blood volume: systolic peak and a smaller dicrotic wave."""
    return math.exp(-(((phase - 0.25) / 0.1) ** 2)) + 0.4 * math.exp(-(((phase - 0.55) / 0.1) ** 2))


class MAX30102Device:
    """The device side; ``finger``, ``heart_rate``, ``spo2`` may be changed any time."""

    IR_DC = 120_000.0
    RED_DC = 90_000.0
    AMBIENT = 1_500.0

    def __init__(self, clock: Clock, scenario: MAX30102Emulate | None = None) -> None:
        self.scenario = scenario or MAX30102Emulate()
        self.clock = clock
        self.finger = self.scenario.finger
        self.heart_rate = self.scenario.heart_rate
        self.spo2 = self.scenario.spo2
        self.perfusion = self.scenario.perfusion
        self.resets = 0
        self._start = clock.monotonic()
        self._rng = random.Random(self.scenario.seed)
        self._lock = threading.Lock()
        self._regs = bytearray(256)
        self._fifo: list[tuple[int, int]] = []
        self._pointer = 0
        self._reset()

    def _reset(self) -> None:
        self._regs[:] = bytes(256)
        self._regs[p.REG_PART_ID] = p.PART_ID
        self._regs[p.REG_REV_ID] = 0x03
        self._regs[p.REG_INT_STATUS_1] = 0x01  # PWR_RDY
        self._fifo.clear()
        self._produced = 0
        self._phase = 0.0
        self._t0: float | None = None  # sampling start (None = not sampling)
        self._rate = 0.0

    # -- sampling ------------------------------------------------------------------------

    def _sampling(self) -> bool:
        mode = self._regs[p.REG_MODE_CONFIG]
        return not mode & p.MODE_SHDN and mode & 0x07 in (p.MODE_HR, p.MODE_SPO2)

    def _restart_clock(self) -> None:
        if self._sampling():
            sr = p.rate_from_code(self._regs[p.REG_SPO2_CONFIG] >> 2)
            avg = p.average_from_code(self._regs[p.REG_FIFO_CONFIG] >> 5)
            self._rate = sr / avg
            self._t0 = self.clock.monotonic()
            self._produced = 0
        else:
            self._t0 = None

    def _elapsed(self) -> float:
        return self.clock.monotonic() - self._start

    def _advance(self) -> None:
        if self._t0 is None:
            return
        due = math.floor((self.clock.monotonic() - self._t0) * self._rate + 1e-9)
        new = due - self._produced
        # no need to synthesize more than the FIFO can show
        skip = max(0, new - 2 * p.FIFO_DEPTH)
        if skip:
            self._phase = (self._phase + skip * self.heart_rate / 60.0 / self._rate) % 1.0
            self._overflow(skip)
        for _ in range(new - skip):
            self._push(self._synth())
        self._produced = due

    def _overflow(self, n: int) -> None:
        ovf = self._regs[p.REG_OVF_COUNTER]
        self._regs[p.REG_OVF_COUNTER] = min(0x1F, ovf + n)

    def _push(self, sample: tuple[int, int]) -> None:
        if len(self._fifo) >= p.FIFO_DEPTH:
            self._overflow(1)
            if not self._regs[p.REG_FIFO_CONFIG] & p.FIFO_ROLLOVER:
                return
            self._fifo.pop(0)
            self._regs[p.REG_FIFO_RD_PTR] = (self._regs[p.REG_FIFO_RD_PTR] + 1) & 0x1F
        self._fifo.append(sample)
        self._regs[p.REG_FIFO_WR_PTR] = (self._regs[p.REG_FIFO_WR_PTR] + 1) & 0x1F

    def _synth(self) -> tuple[int, int]:
        s = self.scenario
        t = self._elapsed()
        self._phase = (self._phase + self.heart_rate / 60.0 / self._rate) % 1.0
        n_ir = self._rng.gauss(0.0, s.noise) if s.noise else 0.0
        n_red = self._rng.gauss(0.0, s.noise) if s.noise else 0.0
        finger = self.finger and (s.finger_off_after_seconds is None
                                  or t < s.finger_off_after_seconds)
        if not finger:
            return (max(0, round(self.AMBIENT + n_red)), max(0, round(self.AMBIENT + n_ir)))
        spo2 = self.spo2
        if s.desaturation_after_seconds is not None and t >= s.desaturation_after_seconds:
            spo2 = s.desaturated_spo2
        r = (110.0 - spo2) / 25.0
        breath = 0.003 * math.sin(2 * math.pi * 0.25 * t)
        beat = _pulse(self._phase)
        ir = self.IR_DC * (1 + breath - self.perfusion * beat) + n_ir
        red = self.RED_DC * (1 + breath - self.perfusion * r * beat) + n_red
        return (max(0, min(p.SAMPLE_MASK, round(red))), max(0, min(p.SAMPLE_MASK, round(ir))))

    # -- I2C -------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        with self._lock:
            self._advance()
            if not data:
                return
            self._pointer = data[0]
            for i, value in enumerate(data[1:]):
                self._write_reg((self._pointer + i) & 0xFF, value)

    def _write_reg(self, reg: int, value: int) -> None:
        if reg == p.REG_MODE_CONFIG and value & p.MODE_RESET:
            self.resets += 1
            self._reset()
            return
        if reg in (p.REG_PART_ID, p.REG_REV_ID, p.REG_FIFO_DATA):
            return
        if reg in (p.REG_FIFO_WR_PTR, p.REG_FIFO_RD_PTR):
            self._regs[reg] = value & 0x1F
            self._fifo.clear()  # pointers rewritten: the FIFO restarts (drivers write 0s)
            return
        self._regs[reg] = value
        if reg in (p.REG_MODE_CONFIG, p.REG_SPO2_CONFIG, p.REG_FIFO_CONFIG):
            self._restart_clock()

    def read(self, n: int) -> bytes:
        with self._lock:
            self._advance()
            out = bytearray()
            reg = self._pointer
            while len(out) < n:
                if reg == p.REG_FIFO_DATA:  # the pointer stays; each 6 bytes pop a sample
                    if self._fifo:
                        red, ir = self._fifo.pop(0)
                        self._regs[p.REG_FIFO_RD_PTR] = (self._regs[p.REG_FIFO_RD_PTR] + 1) & 0x1F
                        self._regs[p.REG_OVF_COUNTER] = 0
                        out += p.encode_sample(red, ir)
                    else:
                        out += bytes(6)
                    continue
                out.append(self._regs[reg])
                if reg == p.REG_INT_STATUS_1:
                    self._regs[reg] = 0  # read clears
                reg = (reg + 1) & 0xFF
            if self._pointer != p.REG_FIFO_DATA:
                self._pointer = reg
            return bytes(out[:n])

    def write_read(self, data: bytes, n: int) -> bytes:
        self.write(data)
        return self.read(n)


def emulate(options: MAX30102Options, clock: Clock) -> I2CTarget:
    """The emulated chip of a ``max30102`` sensor (it has one address)."""
    return I2CTarget(p.ADDRESS, MAX30102Device(clock, options.emulate))
