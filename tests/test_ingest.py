"""The ingest queue: alarms displace normal readings before any alarm is dropped, and every
drop is counted and logged (rate-limited)."""

from __future__ import annotations

import logging
import threading

import pytest

from edge_agent.core.clock import ManualClock
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.daemon.ingest import LOG_INTERVAL, IngestQueue


def alarm(i: int) -> Reading:
    return Reading("sos", Channel.IT, Priority.ALARM, "pressed", float(i), 1.7e9 + i)


def normal(i: int) -> Reading:
    return Reading("m", Channel.IT, Priority.NORMAL, "p", float(i), 1.7e9 + i)


def test_alarms_beyond_their_lane_use_free_normal_room() -> None:
    q = IngestQueue(max_readings=5, max_alarms=3, clock=ManualClock())
    q.put([alarm(i) for i in range(8)])
    assert [r.value for r in q.take_alarms()] == [float(i) for i in range(8)]
    assert q.dropped_alarms == 0 and q.displaced_readings == 0


def test_alarms_displace_the_oldest_normal_readings_before_any_alarm_is_dropped() -> None:
    q = IngestQueue(max_readings=5, max_alarms=3, clock=ManualClock())
    q.put([normal(i) for i in range(3)])
    q.put([normal(i) for i in range(3, 5)])
    q.put([alarm(i) for i in range(6)])  # 3 in the lane, 3 more need room: 0, 1, 2 go
    assert q.displaced_readings == 3 and q.dropped_alarms == 0
    assert [r.value for r in q.take_all()] == [3.0, 4.0]
    assert len(q.take_alarms()) == 6


def test_alarms_are_dropped_only_when_nothing_else_is_queued_and_it_is_reported(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    q = IngestQueue(max_readings=2, max_alarms=2, name="it", clock=clock)
    q.put([normal(0)])
    with caplog.at_level(logging.WARNING, logger="edge_agent.daemon.ingest"):
        for i in range(10):
            q.put([alarm(i)])
    assert len(q.take_alarms()) == 4
    assert q.displaced_readings == 1
    assert q.dropped_alarms == 6
    assert q.counters()["dropped_alarms"] == 6
    dropped = [r for r in caplog.records if "ALARMS DROPPED" in r.getMessage()]
    assert len(dropped) == 1  # one line per cause per interval, not one per alarm
    assert "it" in dropped[0].getMessage()
    caplog.clear()
    clock.advance(LOG_INTERVAL)
    with caplog.at_level(logging.WARNING, logger="edge_agent.daemon.ingest"):
        q.flush_log()
    assert "5 similar lines suppressed" in caplog.text


def test_normal_producers_wait_while_alarms_borrow_their_room() -> None:
    q = IngestQueue(max_readings=4, max_alarms=1, clock=ManualClock())
    q.put([alarm(i) for i in range(5)])  # the lane plus all 4 normal slots
    stop = threading.Event()
    done: list[bool] = []
    t = threading.Thread(target=lambda: done.append(q.put([normal(0)], stop)))
    t.start()
    t.join(0.3)
    assert t.is_alive()  # backpressure: alarms hold the room
    q.take_alarms()
    t.join(5)
    assert done == [True] and q.pending == 1


def test_the_normal_lane_is_bounded_in_bytes_too() -> None:
    """Text values make readings large: the queue stops taking them at ``max_bytes`` even
    though the reading count is far below ``max_readings``; alarms still go in."""
    big = "x" * 10_000
    q = IngestQueue(max_readings=1000, max_alarms=3, max_bytes=40_000, clock=ManualClock())
    stop = threading.Event()
    text = [Reading("log", Channel.OT, Priority.NORMAL, "line", big, 1.7e9)]
    for _ in range(4):
        assert q.put(text, stop)
    assert q.half_full()
    stop.set()
    assert not q.put(text, stop)  # would wait: full in bytes with 4 readings queued
    assert q.pending == 4
    assert q.put([Reading("sos", Channel.OT, Priority.ALARM, "pressed", True, 1.7e9)])
    assert len(q.take_all()) == 4 and not q.half_full()
    assert q.put(text * 8, threading.Event())  # one put larger than the bound still fits
