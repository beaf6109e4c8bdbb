"""Giving the heap back after a burst (edge_agent/daemon/memtrim.py): when, and how often."""

from __future__ import annotations

import platform

import pytest

from edge_agent.core.clock import ManualClock
from edge_agent.daemon.memtrim import TRIM_AFTER, TRIM_INTERVAL, Trimmer, libc_trim


def make() -> tuple[Trimmer, ManualClock, list[int]]:
    clock = ManualClock()
    calls: list[int] = []
    return Trimmer(clock, lambda: calls.append(1)), clock, calls


def test_trims_once_the_queues_are_empty_after_a_burst() -> None:
    t, clock, calls = make()
    assert not t.maybe(accepted=TRIM_AFTER - 1, queued=0)  # not enough went through
    assert not t.maybe(accepted=TRIM_AFTER * 5, queued=3)  # the burst is still queued
    assert t.maybe(accepted=TRIM_AFTER * 5, queued=0)
    assert calls == [1]
    # nothing new went through: no second trim, however long it stays idle
    clock.advance(TRIM_INTERVAL * 10)
    assert not t.maybe(accepted=TRIM_AFTER * 5, queued=0)


def test_not_while_the_burst_is_still_coming_in() -> None:
    t, _, calls = make()
    # the queue happens to be empty, but many readings arrived since the last round
    assert not t.maybe(accepted=TRIM_AFTER * 3, queued=0)
    assert t.maybe(accepted=TRIM_AFTER * 3 + 10, queued=0)  # quiet now: the burst is over
    assert calls == [1]


def test_at_most_one_trim_per_interval() -> None:
    t, clock, calls = make()
    t.maybe(accepted=TRIM_AFTER, queued=1)
    assert t.maybe(accepted=TRIM_AFTER, queued=0)
    t.maybe(accepted=TRIM_AFTER * 3, queued=1)
    clock.advance(TRIM_INTERVAL / 2)
    assert not t.maybe(accepted=TRIM_AFTER * 3, queued=0)
    clock.advance(TRIM_INTERVAL / 2)
    assert t.maybe(accepted=TRIM_AFTER * 3, queued=0)
    assert len(calls) == 2


def test_a_request_trims_without_readings() -> None:
    t, _, calls = make()
    t.request()  # e.g. the store scan after a start is done
    assert t.maybe(accepted=0, queued=0)
    assert not t.maybe(accepted=0, queued=0)
    assert calls == [1]


def test_without_malloc_trim_nothing_is_called() -> None:
    t = Trimmer(ManualClock(), None)
    t.request()
    assert not t.maybe(accepted=10 * TRIM_AFTER, queued=0)
    assert t.trims == 0


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_malloc_trim_is_found_and_callable() -> None:
    trim = libc_trim()
    assert trim is not None
    trim()


def test_the_mmap_threshold_is_pinned_where_glibc_has_mallopt() -> None:
    import ctypes.util

    from edge_agent.daemon.memtrim import pin_mmap_threshold

    if platform.libc_ver()[0] != "glibc" or ctypes.util.find_library("c") is None:
        pytest.skip("not glibc")
    assert pin_mmap_threshold() is True
