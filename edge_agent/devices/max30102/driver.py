"""MAX30102 pulse oximeter on I2C: heart rate and SpO2 computed on the node.

The FIFO is drained every ``interval`` seconds into a bounded window; every
``report_seconds`` the window is evaluated. Only ``heart_rate`` (/min) and ``spo2`` (%)
leave the node (and an optional low-SpO2 alarm), never the waveform. No finger, low
perfusion or an irregular signal yields no reading at all.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Iterable

from edge_agent.core.errors import DeviceNotFoundError
from edge_agent.core.model import Priority
from edge_agent.devices.base import Sample, Sensor, SensorContext, SensorSpec
from edge_agent.devices.fall_detect import ThresholdAlarm
from edge_agent.devices.i2c_sensor import I2CSensor
from edge_agent.devices.max30102.options import MAX30102Options
from edge_agent.hal.interfaces import I2CBus
from edge_agent.protocols import max30102 as p


class MAX30102Sensor(I2CSensor):
    """Configures SpO2 mode (red + IR, 18-bit) and drains the FIFO every poll."""

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: MAX30102Options) -> None:
        super().__init__(spec, ctx, options.bus)
        self.options = options
        size = round(options.window_seconds * options.fifo_rate)
        self._red: deque[int] = deque(maxlen=size)
        self._ir: deque[int] = deque(maxlen=size)
        self._last_report: float | None = None
        self._alarm = (ThresholdAlarm(options.spo2_alarm_percent, options.spo2_alarm_hysteresis,
                                      above=False)
                       if options.spo2_alarm_percent is not None else None)
        self.overflows = 0
        self.last_estimate: p.Estimate | None = None

    @staticmethod
    def _reg(bus: I2CBus, reg: int, n: int) -> bytes:
        return bus.write_read(p.ADDRESS, bytes([reg]), n)

    def setup(self, bus: I2CBus) -> None:
        part = self._reg(bus, p.REG_PART_ID, 1)[0]
        if part != p.PART_ID:
            raise DeviceNotFoundError(
                errno.ENODEV, f"part id 0x{part:02X}, not a MAX30102 (0x15)")
        o = self.options
        w = bus.write
        w(p.ADDRESS, bytes([p.REG_MODE_CONFIG, p.MODE_RESET]))
        self._wait(0.01)
        w(p.ADDRESS, bytes([p.REG_FIFO_CONFIG,
                            (p.SAMPLE_AVERAGES[o.sample_average] << 5) | p.FIFO_ROLLOVER]))
        # ADC range 4096 nA, sample rate, 411 us pulses (18-bit)
        w(p.ADDRESS, bytes([p.REG_SPO2_CONFIG,
                            (1 << 5) | (p.SAMPLE_RATES[o.sample_rate_hz] << 2) | 0x03]))
        pa = min(0xFF, round(o.led_current_ma / 0.2))
        w(p.ADDRESS, bytes([p.REG_LED1_PA, pa, pa]))
        w(p.ADDRESS, bytes([p.REG_FIFO_WR_PTR, 0, 0, 0]))
        w(p.ADDRESS, bytes([p.REG_MODE_CONFIG, p.MODE_SPO2]))
        self._restart_window()

    def _restart_window(self) -> None:
        self._red.clear()
        self._ir.clear()
        self._last_report = self.ctx.clock.monotonic()

    def measure(self, bus: I2CBus) -> Iterable[Sample]:
        wr, ovf, rd = self._reg(bus, p.REG_FIFO_WR_PTR, 3)
        n = p.fifo_count(wr & 0x1F, rd & 0x1F, ovf & 0x1F)
        if ovf & 0x1F:
            # samples were lost: the window is no longer continuous, start over
            self.overflows += 1
            self._restart_window()
        if n:
            for red, ir in p.decode_fifo(self._reg(bus, p.REG_FIFO_DATA, 6 * n), 2):
                self._red.append(red)
                self._ir.append(ir)
        now = self.ctx.clock.monotonic()
        if self._last_report is None:
            self._last_report = now
        if now - self._last_report < self.options.report_seconds - 1e-9:
            return []
        self._last_report = now
        return self._report()

    def _report(self) -> list[Sample]:
        est = p.estimate(list(self._red), list(self._ir), self.options.fifo_rate)
        self.last_estimate = est
        out: list[Sample] = []
        if est.heart_rate is not None:
            out.append(Sample("heart_rate", est.heart_rate, "/min"))
        if est.spo2 is not None:
            out.append(Sample("spo2", est.spo2, "%"))
            if self._alarm is not None and self._alarm.update(est.spo2):
                out.append(Sample("spo2_alarm", True, None, Priority.ALARM))
        if not out and est.reason not in ("no finger", "short window"):
            # a finger is there but the signal is not usable: count it, publish nothing
            self.stats.errors[est.reason] += 1
        return out


def build(spec: SensorSpec, options: MAX30102Options, ctx: SensorContext) -> Sensor:
    if spec.interval * options.fifo_rate > p.FIFO_DEPTH * 0.75:
        ctx.log.warning("%s: interval %.2fs lets the 32-sample FIFO overflow at %.0f Hz",
                        spec.id, spec.interval, options.fifo_rate)
    return MAX30102Sensor(spec, ctx, options)
