"""Injectable time. Components take a Clock; unit tests pass a ManualClock and advance it
instead of sleeping for time to pass.

Tests that drive real threads or processes (a driver against its emulator on a pty, the
agent against a broker) still wait, but for a condition with a bound (``wait_for``), not
for a fixed time that is hoped to be enough."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (may jump)."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds for intervals and timeouts (never jumps)."""
        ...


class SystemClock:
    """The real clocks."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to. Thread-safe."""

    def __init__(self, wall: float = 1_700_000_000.0, mono: float = 1000.0) -> None:
        self._wall = wall
        self._mono = mono
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._wall += seconds
            self._mono += seconds

    def set_wall(self, wall: float) -> None:
        """Jump the wall clock (as NTP or a missing RTC does); monotonic time is unaffected."""
        with self._lock:
            self._wall = wall
