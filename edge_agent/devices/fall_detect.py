"""Pure edge detectors (no I/O, no clock): falls, activity, threshold crossings.

Drivers feed them values with timestamps they took; tests feed them synthetic series.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class ThresholdAlarm:
    """Fires once when a value crosses a threshold; re-arms only after it comes back past
    ``threshold -/+ hysteresis`` (so a value hovering at the threshold alarms once)."""

    def __init__(self, threshold: float, hysteresis: float, *, above: bool = True) -> None:
        if hysteresis < 0:
            raise ValueError("hysteresis must be >= 0")
        self.threshold = threshold
        self.hysteresis = hysteresis
        self.above = above
        self.active = False

    def update(self, value: float) -> bool:
        """Feed one value; True exactly when it crosses into the alarm state."""
        if self.above:
            crossed = value >= self.threshold
            cleared = value < self.threshold - self.hysteresis
        else:
            crossed = value <= self.threshold
            cleared = value > self.threshold + self.hysteresis
        if not self.active and crossed:
            self.active = True
            return True
        if self.active and cleared:
            self.active = False
        return False


@dataclass(frozen=True)
class FallParams:
    free_fall_g: float = 0.4  # |a| below this is free fall
    free_fall_s: float = 0.08  # for at least this long
    impact_g: float = 2.5  # then |a| above this
    impact_window_s: float = 1.0  # within this long after the free fall
    still_band_g: float = 0.2  # then |a| = 1 g +- band
    still_s: float = 2.0  # for at least this long
    still_window_s: float = 10.0  # stillness must start within this long after the impact


class _Phase(enum.Enum):
    IDLE = "idle"
    FREE_FALL = "free_fall"  # confirmed free fall, waiting for the impact
    IMPACT = "impact"  # impact seen, waiting for stillness


class FallDetector:
    """Free fall, then impact, then lying still: one ``True`` per fall.

    Feed ``update(t, ax, ay, az)`` with monotonic seconds and accelerations in g.
    """

    def __init__(self, params: FallParams | None = None) -> None:
        self.params = params or FallParams()
        self.phase = _Phase.IDLE
        self._ff_start: float | None = None  # start of the current low-g run
        self._ff_last = 0.0  # last low-g sample of the confirmed free fall
        self._impact_t = 0.0
        self._still_start: float | None = None

    def reset(self) -> None:
        self.phase = _Phase.IDLE
        self._ff_start = None
        self._still_start = None

    def update(self, t: float, ax: float, ay: float, az: float) -> bool:
        p = self.params
        mag = math.sqrt(ax * ax + ay * ay + az * az)
        low = mag < p.free_fall_g
        if self.phase is _Phase.IDLE:
            if not low:
                self._ff_start = None
                return False
            if self._ff_start is None:
                self._ff_start = t
            if t - self._ff_start >= p.free_fall_s:
                self.phase = _Phase.FREE_FALL
                self._ff_last = t
            return False
        if self.phase is _Phase.FREE_FALL:
            if low:
                self._ff_last = t
            elif mag > p.impact_g:
                self.phase = _Phase.IMPACT
                self._impact_t = t
                self._still_start = None
            elif t - self._ff_last > p.impact_window_s:
                self.reset()
            return False
        # IMPACT: wait for stillness
        if abs(mag - 1.0) <= p.still_band_g:
            if self._still_start is None:
                self._still_start = t
            if t - self._still_start >= p.still_s:
                self.reset()
                return True
            return False
        self._still_start = None
        if t - self._impact_t > p.still_window_s:
            self.reset()
        return False


class ActivityMeter:
    """Mean deviation of |a| from 1 g over a period: a coarse activity level."""

    def __init__(self) -> None:
        self._sum = 0.0
        self._n = 0

    def add(self, ax: float, ay: float, az: float) -> None:
        self._sum += abs(math.sqrt(ax * ax + ay * ay + az * az) - 1.0)
        self._n += 1

    def take(self) -> float | None:
        """The mean since the last take (None if nothing was added), and restart."""
        if self._n == 0:
            return None
        mean = self._sum / self._n
        self._sum = 0.0
        self._n = 0
        return mean
