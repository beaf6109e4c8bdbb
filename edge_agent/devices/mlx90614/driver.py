"""MLX90614 IR body temperature on I2C (SMBus with PEC), optional fever alarm."""

from __future__ import annotations

from collections.abc import Iterable

from edge_agent.core.errors import ValueOutOfRangeError
from edge_agent.core.model import Priority
from edge_agent.devices.base import Sample, Sensor, SensorContext, SensorSpec
from edge_agent.devices.fall_detect import ThresholdAlarm
from edge_agent.devices.i2c_sensor import I2CSensor
from edge_agent.devices.mlx90614.options import MLX90614Options
from edge_agent.hal.interfaces import I2CBus
from edge_agent.protocols import mlx90614 as p


class MLX90614Sensor(I2CSensor):
    """Reads ambient (as a sanity check) and object temperature every poll."""

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: MLX90614Options) -> None:
        super().__init__(spec, ctx, options.bus)
        self.options = options
        self._alarm = (ThresholdAlarm(options.fever_alarm_celsius, options.fever_alarm_hysteresis)
                       if options.fever_alarm_celsius is not None else None)

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
    return MLX90614Sensor(spec, ctx, options)
