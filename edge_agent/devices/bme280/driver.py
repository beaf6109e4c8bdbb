"""BME280 temperature, humidity and pressure on I2C (forced mode, one burst per poll)."""

from __future__ import annotations

import errno
from collections.abc import Iterable

from edge_agent.core.errors import DeviceNotFoundError, DeviceTimeoutError, ValueOutOfRangeError
from edge_agent.devices.base import Sample, Sensor, SensorContext, SensorSpec
from edge_agent.devices.bme280.options import BME280Options
from edge_agent.devices.i2c_sensor import I2CSensor
from edge_agent.hal.interfaces import I2CBus
from edge_agent.protocols import bme280 as p

STATUS_POLLS = 20


class BME280Sensor(I2CSensor):
    """Reset and read the trim on open; each poll triggers a forced measurement."""

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: BME280Options) -> None:
        super().__init__(spec, ctx, options.bus)
        self.options = options
        self.calibration: p.Calibration | None = None
        osrs = p.OVERSAMPLING[options.oversampling]
        self._ctrl_meas = (osrs << 5) | (osrs << 2) | p.MODE_FORCED
        self._ctrl_hum = osrs
        # max measurement time (datasheet 9.1): 1.25 + 2.3 * T + (2.3 * P + 0.575) + ...
        self._measure_time = (1.25 + 2.3 * options.oversampling * 3 + 0.575 * 2) / 1000

    def _reg(self, bus: I2CBus, reg: int, n: int) -> bytes:
        return bus.write_read(self.options.address, bytes([reg]), n)

    def setup(self, bus: I2CBus) -> None:
        addr = self.options.address
        self.calibration = None
        chip = self._reg(bus, p.REG_CHIP_ID, 1)[0]
        if chip != p.CHIP_ID:
            raise DeviceNotFoundError(
                errno.ENODEV, f"0x{addr:02X}: chip id 0x{chip:02X}, not a BME280 (0x60)")
        bus.write(addr, bytes([p.REG_RESET, p.RESET_WORD]))
        self._wait(0.003)
        self.calibration = p.parse_calibration(
            self._reg(bus, p.REG_CALIB_T_P, p.CALIB_T_P_LEN),
            self._reg(bus, p.REG_CALIB_H, p.CALIB_H_LEN))
        bus.write(addr, bytes([p.REG_CTRL_HUM, self._ctrl_hum, p.REG_CONFIG, 0x00]))

    def measure(self, bus: I2CBus) -> Iterable[Sample]:
        assert self.calibration is not None  # setup() succeeded before any measure()
        addr = self.options.address
        bus.write(addr, bytes([p.REG_CTRL_MEAS, self._ctrl_meas]))
        self._wait(self._measure_time)
        for _ in range(STATUS_POLLS):
            if not self._reg(bus, p.REG_STATUS, 1)[0] & p.STATUS_MEASURING:
                break
            self._wait(0.002)
        else:
            raise DeviceTimeoutError(errno.ETIMEDOUT, "BME280: measurement did not finish")
        m = p.compensate(self.calibration, p.decode_data(self._reg(bus, p.REG_DATA, p.DATA_LEN)))
        for name, value, (lo, hi) in (("temperature", m.temperature, p.T_RANGE),
                                      ("pressure", m.pressure, p.P_RANGE),
                                      ("humidity", m.humidity, p.H_RANGE)):
            if not lo <= value <= hi:
                raise ValueOutOfRangeError(f"{name} {value:.2f} outside {lo}..{hi}")
        return [Sample("temperature", round(m.temperature, 2), "Cel"),
                Sample("humidity", round(m.humidity, 2), "%RH"),
                Sample("pressure", round(m.pressure, 1), "Pa")]


def build(spec: SensorSpec, options: BME280Options, ctx: SensorContext) -> Sensor:
    return BME280Sensor(spec, ctx, options)
