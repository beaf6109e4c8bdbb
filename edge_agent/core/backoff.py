"""Exponential backoff with full jitter: how long to wait before retry number n.

    delay(n) = uniform(0, min(maximum, initial * 2**n)),   n = 0, 1, 2, ... until reset()

"Full jitter" (the whole interval, down to 0) spreads a city's nodes out after a broker or
network outage instead of having them reconnect in waves; the cap grows exponentially, so
the mean wait still doubles. The random source is injectable, so tests are deterministic
and need no sleeping. Used by the uplink's reconnect and by sensor drivers reopening a
device.
"""

from __future__ import annotations

import random


class Backoff:
    """Reset on success. Not thread-safe (each retry loop owns one)."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0,
                 rng: random.Random | None = None) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng or random.Random()

    def cap(self) -> float:
        """The longest the next delay can be."""
        return min(self.maximum, self.initial * 2.0 ** min(self.attempt, 64))

    def next_delay(self) -> float:
        cap = self.cap()
        self.attempt += 1
        return self._rng.uniform(0.0, cap)

    def reset(self) -> None:
        self.attempt = 0
