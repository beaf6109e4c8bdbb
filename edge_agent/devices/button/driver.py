"""The emergency button on a GPIO pin: ``pressed`` and ``held`` alarms, debounced."""

from __future__ import annotations

import threading
from typing import Any

from edge_agent.core.model import Priority
from edge_agent.devices.base import Sample, Sensor, SensorContext, SensorSpec
from edge_agent.devices.button.options import ButtonOptions
from edge_agent.devices.gpio_common import Debouncer, GpioEventSensor


class ButtonSensor(GpioEventSensor):
    """``pressed`` (True) on each debounced press, ``held`` ("held") once per long press.

    Both are alarms. Presses are debounced twice: gpiozero's ``bounce_time`` in the pin
    driver, and a quiet-time rule on the agent's clock (the mock factory does not debounce).
    The hold is timed on the agent's clock too (gpiozero's hold thread would delay close()
    by up to ``hold_time`` while the button is down).
    """

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: ButtonOptions) -> None:
        super().__init__(spec, ctx, options.pin)
        self.options = options
        self.debounce = Debouncer(options.bounce_ms / 1000, ctx.clock.monotonic)
        self._hold_lock = threading.Lock()
        self._down_since: float | None = None  # monotonic time of the accepted press

    def make_device(self, factory: Any) -> Any:
        from gpiozero import DigitalInputDevice

        o = self.options
        button = DigitalInputDevice(self.pin, pull_up=o.pull_up,
                                    bounce_time=o.bounce_ms / 1000 or None, pin_factory=factory)
        button.when_activated = self._pressed
        button.when_deactivated = self._released
        return button

    def _pressed(self) -> None:
        if self.debounce.edge():
            with self._hold_lock:
                self._down_since = self.ctx.clock.monotonic()
            self.push(Sample("pressed", True, None, Priority.ALARM, self.now()))

    def _released(self) -> None:
        if self.debounce.edge():  # a bounce while pressing is not a release
            with self._hold_lock:
                self._down_since = None

    def tick(self, now: float) -> list[Sample]:
        device = self._device
        if device is not None and self.debounce.quiet(now) and not _is_active(device):
            with self._hold_lock:
                self._down_since = None
        with self._hold_lock:
            if self._down_since is None or now - self._down_since < self.options.hold_seconds:
                return []
            self._down_since = None  # once per press
        return [Sample("held", "held", None, Priority.ALARM, self.now())]


def _is_active(device: Any) -> bool:
    try:
        return bool(device.is_active)
    except Exception:
        return False


def build(spec: SensorSpec, options: ButtonOptions, ctx: SensorContext) -> Sensor:
    return ButtonSensor(spec, ctx, options)
