"""One backoff for reconnects and drivers (edge_agent/core/backoff.py): exponential, with
full jitter, RNG injected (no sleeping, no wall time)."""

from __future__ import annotations

import random

import pytest

from edge_agent.core.backoff import Backoff
from edge_agent.devices import base


class _Edge(random.Random):
    """uniform() returns one end of the interval: the extremes jitter can reach."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def test_the_cap_doubles_up_to_the_maximum_and_reset_starts_over() -> None:
    b = Backoff(0.5, 4.0, rng=_Edge(high=True))
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5


def test_full_jitter_reaches_down_to_zero() -> None:
    """Full jitter spreads retries over the whole interval (the drivers' old backoff only
    used its upper half, so a city's nodes retried in waves)."""
    b = Backoff(1.0, 60.0, rng=_Edge(high=False))
    assert [b.next_delay() for _ in range(4)] == [0.0, 0.0, 0.0, 0.0]


def test_seeded_delays_are_reproducible_and_within_the_cap() -> None:
    one, two = Backoff(1.0, 8.0, rng=random.Random(3)), Backoff(1.0, 8.0, rng=random.Random(3))
    delays = [one.next_delay() for _ in range(50)]
    assert delays == [two.next_delay() for _ in range(50)]
    caps = [min(8.0, 2.0 ** n) for n in range(50)]
    assert all(0.0 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert min(delays[4:]) < 4.0  # below half the cap: not "equal jitter"


def test_drivers_use_the_same_backoff() -> None:
    assert base.Backoff is Backoff


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError, match="initial"):
        Backoff(2.0, 1.0)
