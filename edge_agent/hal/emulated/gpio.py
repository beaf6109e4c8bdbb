"""Emulated digital inputs: drive a gpiozero MockPin like a button, a PIR or a reed switch.

``PinDriver`` does single actions (press, release, bounce) on one MockPin; ``PulseSchedule``
runs a daemon thread that repeats active pulses every so often, with jitter and sometimes a
long pulse (a held button). The thread is bounded, stoppable and joined by ``stop()``.

``EmulatedPinFactory`` is what ``ctx.hw.pin_factory()`` gives a GPIO driver on emulated
hardware: gpiozero's MockFactory whose input pin is wired to an ``InputEmulation``. The pin
rests at the input's inactive level from the start (a shut door's reed switch holds the pin
low whatever the pull-up says), the pulses start once a device listens for edges on the pin,
and they stop when the driver closes the factory. The driver only sees a pin factory.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin


class PinDriver:
    """Drives one MockPin. ``active_low``: the active level is low (a button to GND)."""

    def __init__(self, pin: Any, *, active_low: bool) -> None:
        self.pin = pin
        self.active_low = active_low
        self._lock = threading.Lock()

    def drive_low(self) -> None:
        with self._lock:
            self.pin.drive_low()

    def drive_high(self) -> None:
        with self._lock:
            self.pin.drive_high()

    def activate(self, bounce_edges: int = 0) -> None:
        """Go to the active level, after ``bounce_edges`` contact bounces (extra toggles)."""
        for _ in range(bounce_edges):
            self._set(True)
            self._set(False)
        self._set(True)

    def deactivate(self, bounce_edges: int = 0) -> None:
        for _ in range(bounce_edges):
            self._set(False)
            self._set(True)
        self._set(False)

    def _set(self, active: bool) -> None:
        if active != self.active_low:
            self.drive_high()
        else:
            self.drive_low()


@dataclass(frozen=True)
class PulsePlan:
    """When and how long the schedule activates the input (seconds)."""

    every: float
    duration: float
    jitter: float = 0.0
    first_after: float | None = None  # None = after one ``every``
    long_probability: float = 0.0  # chance a pulse lasts ``long_duration`` instead
    long_duration: float = 0.0
    bounce_edges: int = 0
    seed: int | None = None


class PulseSchedule:
    """Repeats ``PinDriver`` pulses per a PulsePlan on a daemon thread until stopped."""

    def __init__(self, driver: PinDriver, plan: PulsePlan, settle: float = 0.0) -> None:
        if plan.every <= 0 or plan.duration < 0:
            raise ValueError("every must be > 0 and duration >= 0")
        self.driver = driver
        self.plan = plan
        self.settle = settle  # the first pulse comes no sooner than this after start()
        self.pulses = 0
        self._rng = random.Random(plan.seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None or self._stop.is_set()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        self.driver.deactivate()  # rest at the inactive level (a shut door, a released button)
        self._thread = threading.Thread(target=self._run, name="gpio-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _gap(self, first: bool) -> float:
        p = self.plan
        base = p.first_after if first and p.first_after is not None else p.every
        return max(self.settle if first else 0.0, base + self._rng.uniform(-p.jitter, p.jitter))

    def _run(self) -> None:
        p = self.plan
        first = True
        while not self._stop.wait(self._gap(first)):
            first = False
            long = p.long_probability > 0 and self._rng.random() < p.long_probability
            self.driver.activate(p.bounce_edges)
            self.pulses += 1
            self._stop.wait(p.long_duration if long else p.duration)
            self.driver.deactivate(p.bounce_edges)


@dataclass(frozen=True)
class InputEmulation:
    """An emulated contact on ``pin``: where it rests and when it pulses.

    ``active_low``: the active level is low. ``plan`` None: nothing is wired to drive the
    pin, which then floats at its pull level.
    """

    pin: int
    active_low: bool
    plan: PulsePlan | None = None


class _WiredPin(MockPin):  # type: ignore[misc]
    """A MockPin whose level, once driven, is held by the emulated circuit: setting the pull
    resistor (gpiozero does so when a device opens or closes the pin) does not override a
    contact that is closed."""

    def __init__(self, factory: Any, info: Any) -> None:
        self._held: bool | None = None
        super().__init__(factory, info)

    def drive_high(self) -> None:
        self._held = True
        super().drive_high()

    def drive_low(self) -> None:
        self._held = False
        super().drive_low()

    def _set_pull(self, value: str) -> None:
        held = self._held
        super()._set_pull(value)
        self._held = held
        if held is not None:
            self._change_state(held)

    def _enable_event_detect(self) -> None:
        super()._enable_event_detect()
        listening = getattr(self.factory, "listening", None)
        if callable(listening):
            listening(self)


SETTLE = 0.1
"""Seconds between a device starting to listen and the first pulse: gpiozero enables edge
detection inside the device's constructor, before the driver has wired its callbacks, and
a press in between would be lost (a real driver would miss it too, but a demo should not)."""


class EmulatedPinFactory(MockFactory):  # type: ignore[misc]
    """A MockFactory with one emulated input (or none: every pin floats)."""

    def __init__(self, emulation: InputEmulation | None = None) -> None:
        super().__init__(pin_class=_WiredPin)
        self.emulation = emulation
        self.schedule: PulseSchedule | None = None
        if emulation is not None and emulation.plan is not None:
            driver = PinDriver(self.pin(emulation.pin), active_low=emulation.active_low)
            driver.deactivate()  # rest at the inactive level (a shut door, a released button)
            self.schedule = PulseSchedule(driver, emulation.plan, settle=SETTLE)

    def listening(self, pin: Any) -> None:
        """A device listens for edges on ``pin``: the emulated input starts pulsing."""
        schedule = self.schedule
        if schedule is not None and schedule.driver.pin is pin and not schedule.started:
            schedule.start()

    def close(self) -> None:
        if self.schedule is not None:
            self.schedule.stop()
        super().close()
