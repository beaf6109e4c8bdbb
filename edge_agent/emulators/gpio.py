"""Emulated digital inputs: drive a gpiozero MockPin like a button, a PIR or a reed switch.

``PinDriver`` does single actions (press, release, bounce) on one MockPin; ``PulseSchedule``
runs a daemon thread that repeats active pulses every so often, with jitter and sometimes a
long pulse (a held button). The thread is bounded, stoppable and joined by ``stop()``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any


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

    def __init__(self, driver: PinDriver, plan: PulsePlan) -> None:
        if plan.every <= 0 or plan.duration < 0:
            raise ValueError("every must be > 0 and duration >= 0")
        self.driver = driver
        self.plan = plan
        self.pulses = 0
        self._rng = random.Random(plan.seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        return max(0.0, base + self._rng.uniform(-p.jitter, p.jitter))

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
