"""Emulated MPU6050 and ADXL345 whose motion follows a scenario on the clock (a fall)."""

from __future__ import annotations

import math
import random
import threading

from edge_agent.core.clock import Clock
from edge_agent.devices.accel.options import AccelEmulate, AccelOptions
from edge_agent.hal.emulated import I2CTarget
from edge_agent.protocols import accel as p


class Motion:
    """Acceleration (g, x/y/z) as a function of time for a scenario."""

    def __init__(self, clock: Clock, scenario: AccelEmulate) -> None:
        self.clock = clock
        self.scenario = scenario
        self._start = clock.monotonic()
        self._rng = random.Random(scenario.seed)

    def _phase_time(self, t: float) -> float | None:
        s = self.scenario
        if s.fall_at_seconds is None or t < s.fall_at_seconds:
            return None
        dt = t - s.fall_at_seconds
        if s.fall_every_seconds:
            dt = math.fmod(dt, s.fall_every_seconds)
        return dt

    def now(self) -> tuple[float, float, float]:
        s = self.scenario
        dt = self._phase_time(self.clock.monotonic() - self._start)
        ax, ay, az = 0.0, 0.0, 1.0  # standing/sitting still: gravity on z
        if dt is not None:
            if dt < s.free_fall_seconds:
                ax, ay, az = 0.05, 0.03, 0.1
            elif dt < s.free_fall_seconds + s.impact_seconds:
                ax, ay, az = s.impact_g * 0.8, s.impact_g * 0.3, s.impact_g * 0.5
            elif dt < s.free_fall_seconds + s.impact_seconds + s.lie_seconds:
                ax, ay, az = 1.0, 0.0, 0.0  # lying on the floor
        n = s.noise_g
        if n:
            ax += self._rng.uniform(-n, n)
            ay += self._rng.uniform(-n, n)
            az += self._rng.uniform(-n, n)
        return ax, ay, az


class _RegisterDevice:
    """Register pointer + auto-increment, as both chips do over I2C."""

    data_reg = 0

    def __init__(self) -> None:
        self.regs = bytearray(128)
        self._pointer = 0
        self._lock = threading.Lock()
        self.samples = 0

    def sample_bytes(self) -> bytes:
        raise NotImplementedError

    def on_write(self, reg: int, value: int) -> None:
        self.regs[reg] = value

    def write(self, data: bytes) -> None:
        with self._lock:
            if not data:
                return
            self._pointer = data[0] & 0x7F
            for i, value in enumerate(data[1:]):
                self.on_write((self._pointer + i) & 0x7F, value)

    def read(self, n: int) -> bytes:
        with self._lock:
            start = self._pointer
            if start <= self.data_reg < start + n or self.data_reg <= start < self.data_reg + 6:
                self.samples += 1
                self.regs[self.data_reg:self.data_reg + 6] = self.sample_bytes()
            out = bytes(self.regs[(start + i) & 0x7F] for i in range(n))
            self._pointer = (start + n) & 0x7F
            return out

    def write_read(self, data: bytes, n: int) -> bytes:
        self.write(data)
        return self.read(n)


class MPU6050Device(_RegisterDevice):
    data_reg = p.MPU_ACCEL_XOUT_H

    def __init__(self, motion: Motion) -> None:
        super().__init__()
        self.motion = motion
        self.resets = 0
        self._reset()

    def _reset(self) -> None:
        self.regs[:] = bytes(128)
        self.regs[p.MPU_WHO_AM_I] = p.MPU_WHO_AM_I_VALUE
        self.regs[p.MPU_PWR_MGMT_1] = p.MPU_PWR_SLEEP  # asleep after power-on

    def on_write(self, reg: int, value: int) -> None:
        if reg == p.MPU_PWR_MGMT_1 and value & p.MPU_PWR_RESET:
            self.resets += 1
            self._reset()
        elif reg != p.MPU_WHO_AM_I:
            self.regs[reg] = value

    @property
    def range_g(self) -> int:
        sel = (self.regs[p.MPU_ACCEL_CONFIG] >> 3) & 0x03
        return {v: k for k, v in p.MPU_AFS_SEL.items()}[sel]

    def sample_bytes(self) -> bytes:
        if self.regs[p.MPU_PWR_MGMT_1] & p.MPU_PWR_SLEEP:
            return bytes(self.regs[self.data_reg:self.data_reg + 6])  # frozen while asleep
        return p.mpu_encode(*self.motion.now(), self.range_g)


class ADXL345Device(_RegisterDevice):
    data_reg = p.ADXL_DATAX0

    def __init__(self, motion: Motion) -> None:
        super().__init__()
        self.motion = motion
        self.regs[p.ADXL_DEVID] = p.ADXL_DEVID_VALUE
        self.regs[p.ADXL_BW_RATE] = 0x0A

    def on_write(self, reg: int, value: int) -> None:
        if reg != p.ADXL_DEVID:
            self.regs[reg] = value

    @property
    def range_g(self) -> int:
        return {v: k for k, v in p.ADXL_RANGE.items()}[self.regs[p.ADXL_DATA_FORMAT] & 0x03]

    def sample_bytes(self) -> bytes:
        if not self.regs[p.ADXL_POWER_CTL] & p.ADXL_MEASURE:
            return bytes(self.regs[self.data_reg:self.data_reg + 6])  # standby: no new data
        full = bool(self.regs[p.ADXL_DATA_FORMAT] & p.ADXL_FULL_RES)
        return p.adxl_encode(*self.motion.now(), self.range_g if full else 2)


def _address(options: AccelOptions, default: int) -> int:
    return options.address if options.address is not None else default


def emulate_mpu6050(options: AccelOptions, clock: Clock) -> I2CTarget:
    """The emulated MPU6050 of an ``mpu6050`` sensor, moving per ``emulate:``."""
    return I2CTarget(_address(options, p.MPU_ADDRESS),
                     MPU6050Device(Motion(clock, options.emulate)))


def emulate_adxl345(options: AccelOptions, clock: Clock) -> I2CTarget:
    """The emulated ADXL345 of an ``adxl345`` sensor, moving per ``emulate:``."""
    return I2CTarget(_address(options, p.ADXL_ADDRESS),
                     ADXL345Device(Motion(clock, options.emulate)))
