"""An emulated BME280: register map with trim, chip id, forced-mode measurements."""

from __future__ import annotations

import errno
import random
import threading

from edge_agent.core.clock import Clock
from edge_agent.core.errors import DeviceNotFoundError
from edge_agent.devices.bme280.options import BME280Emulate, BME280Options
from edge_agent.hal.emulated import I2CTarget
from edge_agent.protocols import bme280 as p


class BME280Device:
    """Register-level device. Set ``temperature``/``humidity``/``pressure`` at any time."""

    def __init__(self, scenario: BME280Emulate | None = None,
                 calibration: p.Calibration = p.TYPICAL) -> None:
        self.scenario = scenario or BME280Emulate()
        self.calibration = calibration
        self.temperature = self.scenario.temperature
        self.humidity = self.scenario.humidity
        self.pressure = self.scenario.pressure
        self.measurements = 0
        self.resets = 0
        self._rng = random.Random(self.scenario.seed)
        self._lock = threading.Lock()
        self._regs = bytearray(256)
        self._pointer = 0
        self._ctrl_hum_latched = 0
        self._power_on()

    def _power_on(self) -> None:
        self._regs[:] = bytes(256)
        tp, h = p.encode_calibration(self.calibration)
        self._regs[p.REG_CALIB_T_P:p.REG_CALIB_T_P + len(tp)] = tp
        self._regs[p.REG_CALIB_H:p.REG_CALIB_H + len(h)] = h
        self._regs[p.REG_CHIP_ID] = self.scenario.chip_id
        self._regs[p.REG_DATA:p.REG_DATA + p.DATA_LEN] = p.encode_data(
            p.RawData(p.SKIPPED_20BIT, p.SKIPPED_20BIT, p.SKIPPED_16BIT))
        self._ctrl_hum_latched = 0

    def write(self, data: bytes) -> None:
        with self._lock:
            if not data:
                return
            if len(data) == 1:
                self._pointer = data[0]
                return
            if len(data) % 2:
                raise DeviceNotFoundError(errno.EREMOTEIO, "BME280: odd register write (NAK)")
            for i in range(0, len(data), 2):  # (register, value) pairs
                self._write_reg(data[i], data[i + 1])

    def _write_reg(self, reg: int, value: int) -> None:
        if reg == p.REG_RESET:
            if value == p.RESET_WORD:
                self.resets += 1
                self._power_on()
            return
        if reg == p.REG_CTRL_HUM:
            self._regs[reg] = value & 0x07
        elif reg == p.REG_CONFIG:
            self._regs[reg] = value & 0xFD
        elif reg == p.REG_CTRL_MEAS:
            self._regs[reg] = value
            self._ctrl_hum_latched = self._regs[p.REG_CTRL_HUM]  # takes effect now
            if value & 0x03 in (p.MODE_FORCED, 2):
                self._measure(value)
                self._regs[reg] = value & 0xFC  # back to sleep
            elif value & 0x03 == p.MODE_NORMAL:
                self._measure(value)
        # other registers are read-only: writes are ignored like the chip does

    def _measure(self, ctrl_meas: int) -> None:
        s = self.scenario
        self.measurements += 1
        n = self._rng.uniform(-s.noise, s.noise) if s.noise else 0.0
        raw = p.raw_for(self.calibration, self.temperature + n, self.pressure + 100 * n,
                        min(100.0, max(0.0, self.humidity + n)))
        raw = p.RawData(
            raw.adc_p if (ctrl_meas >> 2) & 0x07 else p.SKIPPED_20BIT,
            raw.adc_t if (ctrl_meas >> 5) & 0x07 else p.SKIPPED_20BIT,
            raw.adc_h if self._ctrl_hum_latched & 0x07 else p.SKIPPED_16BIT)
        self._regs[p.REG_DATA:p.REG_DATA + p.DATA_LEN] = p.encode_data(raw)

    def read(self, n: int) -> bytes:
        with self._lock:
            out = bytes(self._regs[(self._pointer + i) & 0xFF] for i in range(n))
            self._pointer = (self._pointer + n) & 0xFF
            return out

    def write_read(self, data: bytes, n: int) -> bytes:
        self.write(data)
        return self.read(n)


def emulate(options: BME280Options, clock: Clock) -> I2CTarget:
    """The emulated chip of a ``bme280`` sensor, at its configured address."""
    return I2CTarget(options.address, BME280Device(options.emulate))
