"""``pir``: a PIR motion sensor on a GPIO pin: ``motion`` on change, optional counts."""

from __future__ import annotations

from edge_agent.devices.base import Sample, Sensor, SensorContext, SensorSpec
from edge_agent.devices.gpio_common import StateInput
from edge_agent.devices.pir.options import PirOptions


class PirSensor(StateInput):
    """``motion`` True/False on change; optionally ``motion_count`` (onsets) per period."""

    name = "motion"

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: PirOptions) -> None:
        super().__init__(spec, ctx, options.pin, options.pull_up, options.bounce_ms)
        self.options = options
        self._count = 0
        self._period_start: float | None = None

    def value_of(self, active: bool) -> bool:
        return active

    def on_change(self, value: bool) -> list[Sample]:
        if value:
            self._count += 1
        return super().on_change(value)

    def tick(self, now: float) -> list[Sample]:
        super().tick(now)
        period = self.options.count_seconds
        if period is None:
            return []
        if self._period_start is None:
            self._period_start = now
        if now - self._period_start < period:
            return []
        self._period_start = now
        count, self._count = self._count, 0
        return [Sample("motion_count", count, "count", None, self.now())]


def build(spec: SensorSpec, options: PirOptions, ctx: SensorContext) -> Sensor:
    return PirSensor(spec, ctx, options)
