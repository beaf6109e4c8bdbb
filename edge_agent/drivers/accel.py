"""Fall detection with an I2C accelerometer (MPU6050 or ADXL345).

The sensor polls at ``sample_rate_hz`` and feeds a FallDetector; only events leave the node
(a ``fall`` alarm) plus an optional ``activity`` summary per period, never raw samples.
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from edge_agent.core.errors import DeviceNotFoundError
from edge_agent.core.model import Channel, Priority
from edge_agent.drivers.base import Sample, Sensor, SensorContext, SensorSpec
from edge_agent.drivers.fall_detect import ActivityMeter, FallDetector
from edge_agent.drivers.i2c_sensor import I2CSensor, bus_opener
from edge_agent.drivers.registry_types import SensorType
from edge_agent.emulators.i2c_accel import AccelEmulate, ADXL345Device, Motion, MPU6050Device
from edge_agent.hal.interfaces import I2CBus
from edge_agent.protocols import accel as p

G = 9.80665  # m/s2 per g


@dataclass(frozen=True)
class AccelOptions:
    bus: int = 1
    address: int | None = None  # default: 0x68 (MPU6050) / 0x53 (ADXL345)
    range_g: int = 8  # 4, 8 or 16: an impact (> 2.5 g) must not saturate
    sample_rate_hz: float = 50.0
    activity_seconds: float | None = 60.0  # emit ``activity`` per period (None = never)
    emulate: AccelEmulate = field(default_factory=AccelEmulate)

    def __post_init__(self) -> None:
        if self.range_g not in (4, 8, 16):
            raise ValueError("range_g must be 4, 8 or 16 (2 g saturates before an impact)")
        if not 10.0 <= self.sample_rate_hz <= 200.0:
            raise ValueError("sample_rate_hz must be within 10..200")
        if self.activity_seconds is not None and self.activity_seconds <= 0:
            raise ValueError("activity_seconds must be > 0")


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
                 chip: Chip, open_bus: Callable[[], I2CBus]) -> None:
        super().__init__(dataclasses.replace(spec, interval=1.0 / options.sample_rate_hz), ctx,
                         open_bus)
        self.options = options
        self.chip = chip
        self.address = options.address if options.address is not None else chip.default_address
        self.detector = FallDetector()
        self._activity = ActivityMeter()
        self._period_start: float | None = None
        self.emulator: MPU6050Device | ADXL345Device | None = None

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


def _builder(chip: type[Chip]) -> Callable[[SensorSpec, AccelOptions, SensorContext], Sensor]:
    def build(spec: SensorSpec, options: AccelOptions, ctx: SensorContext) -> Sensor:
        c = chip()
        device: MPU6050Device | ADXL345Device | None = None
        if ctx.hardware == "emulated":
            motion = Motion(ctx.clock, options.emulate)
            device = MPU6050Device(motion) if chip is MPU6050 else ADXL345Device(motion)
        address = options.address if options.address is not None else c.default_address
        open_bus, _ = bus_opener(ctx, options.bus, address, device)
        sensor = AccelSensor(spec, ctx, options, c, open_bus)
        sensor.emulator = device
        return sensor

    return build


TYPES = (
    SensorType(
        name="mpu6050",
        summary="MPU6050 accelerometer (I2C): fall alarm and activity level, no raw data",
        options=AccelOptions,
        build=_builder(MPU6050),
        default_channel=Channel.IT,
        default_priority=Priority.NORMAL,
        default_interval=0.02,
    ),
    SensorType(
        name="adxl345",
        summary="ADXL345 accelerometer (I2C): fall alarm and activity level, no raw data",
        options=AccelOptions,
        build=_builder(ADXL345),
        default_channel=Channel.IT,
        default_priority=Priority.NORMAL,
        default_interval=0.02,
    ),
)
