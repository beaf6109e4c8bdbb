"""The emergency button on a GPIO pin: ``pressed`` and ``held`` alarms, debounced."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from edge_agent.core.model import Channel, Priority
from edge_agent.drivers.base import Sample, Sensor, SensorContext, SensorSpec
from edge_agent.drivers.gpio_inputs import (
    Debouncer,
    FactoryMaker,
    GpioEventSensor,
    mock_pin_factory,
    real_pin_factory,
)
from edge_agent.drivers.registry_types import SensorType
from edge_agent.emulators.gpio import PulsePlan


@dataclass(frozen=True)
class ButtonEmulate:
    """Emulated presses: every ``press_every_seconds`` (None = never) +- jitter; a press
    is held past ``hold_seconds`` with ``hold_probability``; contacts bounce."""

    press_every_seconds: float | None = 300.0
    jitter_seconds: float = 60.0
    first_after_seconds: float | None = None
    press_seconds: float = 0.3
    hold_probability: float = 0.2
    bounce_edges: int = 3
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.hold_probability <= 1.0:
            raise ValueError("hold_probability must be within 0..1")


@dataclass(frozen=True)
class ButtonOptions:
    pin: int
    pull_up: bool = True  # a button to GND with the internal pull-up
    bounce_ms: int = 20
    hold_seconds: float = 3.0
    emulate: ButtonEmulate = field(default_factory=ButtonEmulate)

    def __post_init__(self) -> None:
        if not 0 <= self.pin <= 27:
            raise ValueError("pin must be a BCM GPIO number 0..27")
        if self.bounce_ms < 0:
            raise ValueError("bounce_ms must be >= 0")
        if self.hold_seconds <= 0:
            raise ValueError("hold_seconds must be > 0")


class ButtonSensor(GpioEventSensor):
    """``pressed`` (True) on each debounced press, ``held`` ("held") once per long press.

    Both are alarms. Presses are debounced twice: gpiozero's ``bounce_time`` in the pin
    driver, and a quiet-time rule on the agent's clock (the mock factory does not debounce).
    The hold is timed on the agent's clock too (gpiozero's hold thread would delay close()
    by up to ``hold_time`` while the button is down).
    """

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: ButtonOptions,
                 make_factory: FactoryMaker, schedule: PulsePlan | None = None) -> None:
        super().__init__(spec, ctx, options.pin, make_factory, schedule,
                         active_low=options.pull_up)
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
    if ctx.hardware != "emulated":
        return ButtonSensor(spec, ctx, options, real_pin_factory)
    e = options.emulate
    plan = None
    if e.press_every_seconds is not None:
        plan = PulsePlan(every=e.press_every_seconds, duration=e.press_seconds,
                         jitter=e.jitter_seconds, first_after=e.first_after_seconds,
                         long_probability=e.hold_probability,
                         long_duration=options.hold_seconds + 0.5,
                         bounce_edges=e.bounce_edges, seed=e.seed)
    return ButtonSensor(spec, ctx, options, mock_pin_factory, plan)


TYPES = (
    SensorType(
        name="button",
        summary="Emergency button on a GPIO pin: pressed/held alarms (debounced)",
        options=ButtonOptions,
        build=build,
        default_channel=Channel.IT,
        default_priority=Priority.ALARM,
    ),
)
