"""SHT31 room climate (temperature, humidity) on I2C, with an optional heat alarm."""

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
from edge_agent.emulators.i2c_sht31 import SHT31Device, SHT31Emulate
from edge_agent.hal.interfaces import I2CBus
from edge_agent.protocols import sht31

MEASURE_WAIT = 0.016  # high repeatability: max 15.5 ms


@dataclass(frozen=True)
class SHT31Options:
    bus: int = 1
    address: int = sht31.ADDRESS_DEFAULT
    heat_alarm_celsius: float | None = None
    heat_alarm_hysteresis: float = 1.0
    emulate: SHT31Emulate = field(default_factory=SHT31Emulate)

    def __post_init__(self) -> None:
        if self.address not in (0x44, 0x45):
            raise ValueError("address must be 0x44 (68) or 0x45 (69)")
        if self.heat_alarm_hysteresis < 0:
            raise ValueError("heat_alarm_hysteresis must be >= 0")


class SHT31Sensor(I2CSensor):
    """Soft reset on open, then one single-shot high-repeatability measurement per poll."""

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: SHT31Options,
                 open_bus: Callable[[], I2CBus], wait: Wait = time.sleep) -> None:
        super().__init__(spec, ctx, open_bus, wait)
        self.options = options
        self._alarm = (ThresholdAlarm(options.heat_alarm_celsius, options.heat_alarm_hysteresis)
                       if options.heat_alarm_celsius is not None else None)
        self.emulator: SHT31Device | None = None

    def setup(self, bus: I2CBus) -> None:
        addr = self.options.address
        bus.write(addr, sht31.command(sht31.CMD_SOFT_RESET))
        self._wait(0.002)
        sht31.decode_word(bus.write_read(addr, sht31.command(sht31.CMD_READ_STATUS), 3))
        bus.write(addr, sht31.command(sht31.CMD_CLEAR_STATUS))

    def measure(self, bus: I2CBus) -> Iterable[Sample]:
        addr = self.options.address
        bus.write(addr, sht31.command(sht31.CMD_MEASURE_HIGH))
        self._wait(MEASURE_WAIT)
        m = sht31.decode_measurement(bus.read(addr, 6))
        t, rh = m.temperature, m.humidity
        if not sht31.T_MIN <= t <= sht31.T_MAX:
            raise ValueOutOfRangeError(f"temperature {t:.2f} degC outside the sensor's range")
        if not sht31.RH_MIN <= rh <= sht31.RH_MAX:
            raise ValueOutOfRangeError(f"humidity {rh:.2f} %RH outside 0..100")
        out = [Sample("temperature", round(t, 2), "Cel"), Sample("humidity", round(rh, 2), "%RH")]
        if self._alarm is not None and self._alarm.update(t):
            out.append(Sample("heat_alarm", True, None, Priority.ALARM))
        return out


def build(spec: SensorSpec, options: SHT31Options, ctx: SensorContext) -> Sensor:
    device = SHT31Device(ctx.clock, options.emulate) if ctx.hardware == "emulated" else None
    open_bus, wait = bus_opener(ctx, options.bus, options.address, device)
    sensor = SHT31Sensor(spec, ctx, options, open_bus, wait)
    sensor.emulator = device
    return sensor


TYPES = (
    SensorType(
        name="sht31",
        summary="Sensirion SHT31 room temperature/humidity (I2C), optional heat alarm",
        options=SHT31Options,
        build=build,
        default_channel=Channel.IT,
        default_priority=Priority.NORMAL,
        default_interval=60.0,
    ),
)
