"""MLX90614 IR body temperature on I2C (SMBus with PEC), optional fever alarm."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from edge_agent.core.errors import ValueOutOfRangeError
from edge_agent.core.model import Channel, Priority
from edge_agent.drivers.base import Sample, Sensor, SensorContext, SensorSpec
from edge_agent.drivers.fall_detect import ThresholdAlarm
from edge_agent.drivers.i2c_sensor import I2CSensor, Wait, bus_opener
from edge_agent.drivers.registry_types import SensorType
from edge_agent.emulators.i2c_mlx90614 import MLX90614Device, MLX90614Emulate
from edge_agent.hal.interfaces import I2CBus
from edge_agent.protocols import mlx90614 as p


@dataclass(frozen=True)
class MLX90614Options:
    bus: int = 1
    address: int = p.ADDRESS_DEFAULT
    presence_min_celsius: float = 30.0  # below this nobody is in front: no reading
    fever_alarm_celsius: float | None = None
    fever_alarm_hysteresis: float = 0.3
    emulate: MLX90614Emulate = field(default_factory=MLX90614Emulate)

    def __post_init__(self) -> None:
        if not 0x03 <= self.address <= 0x77:
            raise ValueError("address must be a 7-bit I2C address")
        if self.fever_alarm_hysteresis < 0:
            raise ValueError("fever_alarm_hysteresis must be >= 0")


class MLX90614Sensor(I2CSensor):
    """Reads ambient (as a sanity check) and object temperature every poll."""

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: MLX90614Options,
                 open_bus: Callable[[], I2CBus], wait: Wait = time.sleep) -> None:
        super().__init__(spec, ctx, open_bus, wait)
        self.options = options
        self._alarm = (ThresholdAlarm(options.fever_alarm_celsius, options.fever_alarm_hysteresis)
                       if options.fever_alarm_celsius is not None else None)
        self.emulator: MLX90614Device | None = None

    def _read(self, bus: I2CBus, command: int) -> float:
        addr = self.options.address
        return p.decode_temperature(addr, command,
                                    bus.write_read(addr, bytes([command]), 3)).celsius

    def setup(self, bus: I2CBus) -> None:
        self._read(bus, p.RAM_TA)  # probe: the device answers with a valid PEC

    def measure(self, bus: I2CBus) -> Iterable[Sample]:
        ambient = self._read(bus, p.RAM_TA)
        obj = self._read(bus, p.RAM_TOBJ1)
        for name, value, (lo, hi) in (("ambient", ambient, p.T_AMBIENT_RANGE),
                                      ("object", obj, p.T_OBJECT_RANGE)):
            if not lo <= value <= hi:
                raise ValueOutOfRangeError(f"{name} temperature {value:.2f} outside {lo}..{hi}")
        if obj < self.options.presence_min_celsius:
            return []  # nobody measured: no body temperature (never a room reading)
        out = [Sample("body_temperature", round(obj, 2), "Cel")]
        if self._alarm is not None and self._alarm.update(obj):
            out.append(Sample("fever_alarm", True, None, Priority.ALARM))
        return out


def build(spec: SensorSpec, options: MLX90614Options, ctx: SensorContext) -> Sensor:
    device = (MLX90614Device(ctx.clock, options.address, options.emulate)
              if ctx.hardware == "emulated" else None)
    open_bus, wait = bus_opener(ctx, options.bus, options.address, device)
    sensor = MLX90614Sensor(spec, ctx, options, open_bus, wait)
    sensor.emulator = device
    return sensor


TYPES = (
    SensorType(
        name="mlx90614",
        summary="Melexis MLX90614 IR body temperature (I2C/SMBus with PEC), fever alarm",
        options=MLX90614Options,
        build=build,
        default_channel=Channel.IT,
        default_priority=Priority.NORMAL,
        default_interval=30.0,
    ),
)
