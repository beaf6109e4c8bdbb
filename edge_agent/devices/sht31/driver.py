"""SHT31 room climate (temperature, humidity) on I2C, with an optional heat alarm."""

from __future__ import annotations

from collections.abc import Iterable

from edge_agent.core.errors import ValueOutOfRangeError
from edge_agent.core.model import Priority
from edge_agent.devices.base import Sample, Sensor, SensorContext, SensorSpec
from edge_agent.devices.fall_detect import ThresholdAlarm
from edge_agent.devices.i2c_sensor import I2CSensor
from edge_agent.devices.sht31.options import SHT31Options
from edge_agent.hal.interfaces import I2CBus
from edge_agent.protocols import sht31

MEASURE_WAIT = 0.016  # high repeatability: max 15.5 ms


class SHT31Sensor(I2CSensor):
    """Soft reset on open, then one single-shot high-repeatability measurement per poll."""

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: SHT31Options) -> None:
        super().__init__(spec, ctx, options.bus)
        self.options = options
        self._alarm = (ThresholdAlarm(options.heat_alarm_celsius, options.heat_alarm_hysteresis)
                       if options.heat_alarm_celsius is not None else None)

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
    return SHT31Sensor(spec, ctx, options)
