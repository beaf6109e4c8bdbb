"""Fall detection with an I2C accelerometer (MPU6050 or ADXL345).

The sensor polls at ``sample_rate_hz`` and feeds a FallDetector; only events leave the node
(a ``fall`` alarm) plus an optional ``activity`` summary per period, never raw samples.
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Iterable

from edge_agent.core.errors import DeviceNotFoundError
from edge_agent.core.model import Priority
from edge_agent.devices.accel.options import AccelOptions
from edge_agent.devices.base import Sample, Sensor, SensorContext, SensorSpec
from edge_agent.devices.fall_detect import ActivityMeter, FallDetector
from edge_agent.devices.i2c_sensor import I2CSensor
from edge_agent.hal.interfaces import I2CBus
from edge_agent.protocols import accel as p

G = 9.80665  # m/s2 per g


class Chip:
    """How to probe, configure and read one accelerometer model."""

    name = "accel"
    default_address = 0

    def setup(self, bus: I2CBus, address: int, range_g: int) -> None:
        raise NotImplementedError

    def read(self, bus: I2CBus, address: int, range_g: int) -> tuple[float, float, float]:
        raise NotImplementedError


def _probe(bus: I2CBus, address: int, reg: int, want: int, name: str) -> None:
    got = bus.write_read(address, bytes([reg]), 1)[0]
    if got != want:
        raise DeviceNotFoundError(
            errno.ENODEV, f"0x{address:02X}: id 0x{got:02X}, not a {name} (0x{want:02X})")


class MPU6050(Chip):
    name = "MPU6050"
    default_address = p.MPU_ADDRESS

    def setup(self, bus: I2CBus, address: int, range_g: int) -> None:
        _probe(bus, address, p.MPU_WHO_AM_I, p.MPU_WHO_AM_I_VALUE, self.name)
        bus.write(address, bytes([p.MPU_PWR_MGMT_1, 0x01]))  # awake, PLL with X gyro clock
        bus.write(address, bytes([p.MPU_ACCEL_CONFIG, p.MPU_AFS_SEL[range_g] << 3]))

    def read(self, bus: I2CBus, address: int, range_g: int) -> tuple[float, float, float]:
        return p.mpu_decode(bus.write_read(address, bytes([p.MPU_ACCEL_XOUT_H]), 6), range_g)


class ADXL345(Chip):
    name = "ADXL345"
    default_address = p.ADXL_ADDRESS

    def setup(self, bus: I2CBus, address: int, range_g: int) -> None:
        _probe(bus, address, p.ADXL_DEVID, p.ADXL_DEVID_VALUE, self.name)
        bus.write(address, bytes([p.ADXL_DATA_FORMAT, p.ADXL_FULL_RES | p.ADXL_RANGE[range_g]]))
        bus.write(address, bytes([p.ADXL_BW_RATE, 0x0A]))  # 100 Hz output rate
        bus.write(address, bytes([p.ADXL_POWER_CTL, p.ADXL_MEASURE]))

    def read(self, bus: I2CBus, address: int, range_g: int) -> tuple[float, float, float]:
        return p.adxl_decode(bus.write_read(address, bytes([p.ADXL_DATAX0]), 6))


class AccelSensor(I2CSensor):
    """Polls every 1/sample_rate_hz seconds (the config's ``interval`` is not used)."""

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: AccelOptions,
                 chip: Chip) -> None:
        super().__init__(dataclasses.replace(spec, interval=1.0 / options.sample_rate_hz), ctx,
                         options.bus)
        self.options = options
        self.chip = chip
        self.address = options.address if options.address is not None else chip.default_address
        self.detector = FallDetector()
        self._activity = ActivityMeter()
        self._period_start: float | None = None

    def setup(self, bus: I2CBus) -> None:
        self.chip.setup(bus, self.address, self.options.range_g)
        self.detector.reset()  # a gap in the data must not complete a half-seen fall

    def measure(self, bus: I2CBus) -> Iterable[Sample]:
        ax, ay, az = self.chip.read(bus, self.address, self.options.range_g)
        now = self.ctx.clock.monotonic()
        out: list[Sample] = []
        if self.detector.update(now, ax, ay, az):
            out.append(Sample("fall", True, None, Priority.ALARM))
        period = self.options.activity_seconds
        if period is not None:
            self._activity.add(ax, ay, az)
            if self._period_start is None:
                self._period_start = now
            elif now - self._period_start >= period:
                self._period_start = now
                mean = self._activity.take()
                if mean is not None:
                    out.append(Sample("activity", round(mean * G, 3), "m/s2"))
        return out


def build_mpu6050(spec: SensorSpec, options: AccelOptions, ctx: SensorContext) -> Sensor:
    return AccelSensor(spec, ctx, options, MPU6050())


def build_adxl345(spec: SensorSpec, options: AccelOptions, ctx: SensorContext) -> Sensor:
    return AccelSensor(spec, ctx, options, ADXL345())
