"""``door``: a door contact (reed switch) on a GPIO pin: ``open`` on change and at start."""

from __future__ import annotations

from edge_agent.devices.base import Sensor, SensorContext, SensorSpec
from edge_agent.devices.door.options import DoorOptions
from edge_agent.devices.gpio_common import StateInput


class DoorSensor(StateInput):
    """``open`` True/False on change (and the state at start)."""

    name = "open"

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: DoorOptions) -> None:
        super().__init__(spec, ctx, options.pin, options.pull_up, options.bounce_ms)
        self.options = options

    def value_of(self, active: bool) -> bool:
        return not active  # gpiozero "active" = contact closed = door shut


def build(spec: SensorSpec, options: DoorOptions, ctx: SensorContext) -> Sensor:
    return DoorSensor(spec, ctx, options)
