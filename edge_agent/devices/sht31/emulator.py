"""An emulated SHT31 on an EmulatedI2CBus: command-level, with CRCs, status and faults."""

from __future__ import annotations

import errno
import random
import threading

from edge_agent.core.clock import Clock
from edge_agent.core.errors import DeviceNotFoundError
from edge_agent.devices.sht31.options import SHT31Emulate, SHT31Options
from edge_agent.hal.emulated import I2CTarget
from edge_agent.protocols import sht31


class SHT31Device:
    """The device side. ``temperature``/``humidity`` may be set at any time (tests, rigs)."""

    def __init__(self, clock: Clock, scenario: SHT31Emulate | None = None) -> None:
        self.scenario = scenario or SHT31Emulate()
        self.clock = clock
        self.temperature = self.scenario.temperature
        self.humidity = self.scenario.humidity
        self.status = sht31.STATUS_RESET_DETECTED
        self.corrupt_next = 0  # corrupt the CRC of this many coming answers
        self.measurements = 0
        self.resets = 0
        self._start = clock.monotonic()
        self._pending: bytes | None = None  # the answer the next read returns
        self._rng = random.Random(self.scenario.seed)
        self._lock = threading.Lock()

    def current(self) -> tuple[float, float]:
        """Temperature and humidity now, after the scenario's heat wave and noise."""
        s = self.scenario
        t, rh = self.temperature, self.humidity
        if s.heat_wave_after_seconds is not None:
            elapsed = self.clock.monotonic() - self._start - s.heat_wave_after_seconds
            if elapsed > 0:
                t = max(t, min(s.heat_wave_peak, t + s.heat_wave_rate * elapsed))
                rh = max(10.0, rh - 0.5 * (t - self.temperature))
        if s.noise:
            t += self._rng.uniform(-s.noise, s.noise)
            rh += self._rng.uniform(-s.noise, s.noise)
        return t, min(100.0, max(0.0, rh))

    def write(self, data: bytes) -> None:
        with self._lock:
            if len(data) < 2:
                raise DeviceNotFoundError(errno.EREMOTEIO, "SHT31: incomplete command (NAK)")
            cmd = int.from_bytes(data[:2], "big")
            if cmd in sht31.MEASURE_COMMANDS:
                self._measure()
            elif cmd == sht31.CMD_SOFT_RESET:
                self.resets += 1
                self._pending = None
                self.status = sht31.STATUS_RESET_DETECTED
            elif cmd == sht31.CMD_READ_STATUS:
                self._pending = sht31.encode_word(self.status)
            elif cmd == sht31.CMD_CLEAR_STATUS:
                self.status &= ~(sht31.STATUS_RESET_DETECTED | sht31.STATUS_ALERT_PENDING
                                 | sht31.STATUS_RH_ALERT | sht31.STATUS_T_ALERT)
            elif cmd == sht31.CMD_HEATER_ON:
                self.status |= sht31.STATUS_HEATER_ON
            elif cmd == sht31.CMD_HEATER_OFF:
                self.status &= ~sht31.STATUS_HEATER_ON
            else:
                self.status |= sht31.STATUS_COMMAND_FAILED
                raise DeviceNotFoundError(errno.EREMOTEIO, f"SHT31: unknown command 0x{cmd:04X}")
            self.status &= ~sht31.STATUS_COMMAND_FAILED

    def _measure(self) -> None:
        s = self.scenario
        self.measurements += 1
        if s.nak_every and self.measurements % s.nak_every == 0:
            raise DeviceNotFoundError(errno.EREMOTEIO, "SHT31: busy (NAK)")
        t, rh = self.current()
        answer = bytearray(sht31.encode_measurement(sht31.raw_from_temperature(t),
                                                    sht31.raw_from_humidity(rh)))
        corrupt = s.bad_crc_every and self.measurements % s.bad_crc_every == 0
        if self.corrupt_next or corrupt:
            self.corrupt_next = max(0, self.corrupt_next - 1)
            answer[2] ^= 0x5A
        self._pending = bytes(answer)

    def read(self, n: int) -> bytes:
        with self._lock:
            if self._pending is None:  # no measurement pending: the sensor NAKs the header
                raise DeviceNotFoundError(errno.EREMOTEIO, "SHT31: no data pending (NAK)")
            out, self._pending = self._pending, None
            return out[:n]

    def write_read(self, data: bytes, n: int) -> bytes:
        self.write(data)
        return self.read(n)


def emulate(options: SHT31Options, clock: Clock) -> I2CTarget:
    """The emulated chip of an ``sht31`` sensor, at its configured address."""
    return I2CTarget(options.address, SHT31Device(clock, options.emulate))
