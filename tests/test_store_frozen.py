"""Frozen record tables (``RecordTable.freeze``, ``Segment.freeze``): a backlog the drain has
not reached is kept compressed, given back exactly, and still counted, aged and evicted
right without being thawed."""

from __future__ import annotations

import json
import random
from pathlib import Path

from edge_agent.core.clock import ManualClock
from edge_agent.core.model import CLOCK_FLOOR, Channel, Priority, Reading
from edge_agent.store.channel_store import ChannelStore
from edge_agent.store.segments import Segment
from edge_agent.store.table import GONE, LEASED, QUEUED, RecordTable

KEY = bytes(range(32))
SEGMENT = 4096  # a few dozen one-reading records per segment
T0 = 1_700_000_000.0


def table(rng: random.Random, n: int) -> RecordTable:
    t = RecordTable()
    first = rng.randint(1, 1000)
    for i in range(n):
        count = rng.randint(1, 5)
        oldest = rng.choice([T0 + i, T0 - rng.random() * 1e5, 1000.0 + i])
        t.append(first, count, i * 100, 100, oldest, rng.randint(1, 3))
        first += count + rng.choice([0, 0, 3])
    for i in range(n):
        if rng.random() < 0.4:
            t.drop(i)
        elif rng.random() < 0.2:
            t.state[i] = LEASED
    return t


def test_a_frozen_table_thaws_to_the_same_rows_and_states() -> None:
    rng = random.Random(3)
    for n in (0, 1, 2, 50, 3000):
        t = table(rng, n)
        cold = t.freeze()
        back = RecordTable.thaw(cold)
        for name in ("firsts", "counts", "offsets", "sizes", "oldest", "keys"):
            assert getattr(back, name) == getattr(t, name), name
        assert back.state == t.state
        assert (back.lo, back.live, back.readings) == (t.lo, t.live, t.readings)
        assert (cold.live, cold.readings) == (t.live, t.readings)
        assert cold.first_pending == (t.firsts[t.lo] if t.live else None)
        assert cold.min_oldest == t.min_oldest()
        for cutoff in (T0 - 2e5, T0, T0 + 1e6):
            assert cold.all_older(cutoff) == t.all_older(cutoff)
        if n >= 50:  # about 5 bytes a row of 31 (the random columns compress less)
            assert len(cold.blob) < 16 * n


def test_a_segment_with_records_in_flight_is_not_frozen() -> None:
    seg = Segment(Priority.NORMAL, 1, Path("/nonexistent"), 0)
    seg.table.append(1, 1, 0, 10, T0, 1)
    seg.table.append(2, 1, 10, 10, T0, 1)
    seg.table.state[1] = LEASED
    assert not seg.freeze()
    seg.table.state[1] = QUEUED
    assert seg.freeze() and seg.rows is None
    assert seg.cold is not None and (seg.cold.live, seg.cold.readings) == (2, 2)
    assert seg.live == 2 and seg.first_pending() == 1
    assert seg.table.state == bytearray([QUEUED, QUEUED]) and seg.cold is None
    seg.table.state[0] = seg.table.state[1] = GONE
    seg.table.live = 0
    assert not seg.freeze()  # nothing pending: the file is deleted, not kept


def readings(n: int, start: int, prio: Priority = Priority.NORMAL,
             t: float = T0) -> list[Reading]:
    return [Reading("meter", Channel.OT, prio, "power", float(start + i), t + start + i, "W")
            for i in range(n)]


def open_store(root: Path, clock: ManualClock | None = None,
               retention: float | None = None) -> ChannelStore:
    return ChannelStore(root, Channel.OT, KEY, segment_bytes=SEGMENT, batch_max=1,
                        reserve_bytes=0, clock=clock, retention=retention)


def drain(s: ChannelStore) -> list[float]:
    out: list[float] = []
    while batches := s.lease(7, max_readings=5):
        for b in batches:
            out.extend(float(r["v"]) for r in json.loads(b.senml))
            s.ack(b.first)
    return out


def frozen(s: ChannelStore) -> int:
    return sum(1 for seg in s._segments if seg.cold is not None)


def test_a_backlog_is_frozen_while_it_builds_up_and_drains_whole(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    try:
        for i in range(600):
            s.append(readings(1, i))
        segs = list(s._segments)
        assert len(segs) > 10
        assert frozen(s) == len(segs) - 1  # every closed segment; the active one is not
        st = s.stats()
        assert st.backlog_records == 600 and sum(st.backlog.values()) == 600
        assert s.pending_ranges().max() == 600 and frozen(s) == len(segs) - 1
        assert drain(s) == [float(i) for i in range(600)]
        assert s.stats().backlog_records == 0
    finally:
        s.close()


def test_a_restart_freezes_what_it_reads_and_the_drain_thaws_it(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    for i in range(400):
        s.append(readings(1, i))
    got = drain_some(s, 120)
    s.close()
    s2 = open_store(tmp_path)
    try:
        n = len(list(s2._segments))
        assert frozen(s2) == n
        assert s2.stats().backlog_records == 400 - len(got) == 320
        # an alarm while the backlog is frozen: delivered first
        s2.append(readings(1, 10_000, Priority.ALARM))
        got += drain(s2)
    finally:
        s2.close()
    assert got[80] == 10_000.0
    assert sorted(got) == [float(i) for i in range(400)] + [10_000.0]


def drain_some(s: ChannelStore, n: int) -> list[float]:
    """Lease ``n`` one-reading records and acknowledge two in three: the rest stay in
    flight (released at close), so what is pending is not a prefix."""
    out: list[float] = []
    for _ in range(n):
        for b in s.lease(1):
            v = float(json.loads(b.senml)[0]["v"])
            if int(v) % 3:
                out.append(v)
                s.ack(b.first)
    return out


def test_retention_evicts_frozen_segments_without_thawing_the_rest(tmp_path: Path) -> None:
    clock = ManualClock(T0 + 1000)
    s = open_store(tmp_path, clock, retention=100.0)
    try:
        for i in range(300):  # readings 50 s old: inside retention
            s.append(readings(1, i, t=T0 + 950 - i))
        for i in range(300, 360):  # taken before the clock was set: exempt
            s.append(readings(1, i, t=CLOCK_FLOOR - 1e6 - i))
        before = frozen(s)
        assert s.enforce_retention() == 0
        assert frozen(s) == before  # asked of the summaries only
        clock.advance(10_000)
        evicted = s.enforce_retention()
        st = s.stats()
        # every segment wholly older went, reported; the exempt ones and the one they
        # share with old readings stay
        assert 0 < evicted <= 300 and st.evicted["retention"] == evicted
        assert st.backlog_records == 360 - evicted
        left = drain(s)
        assert all(v >= 300 for v in left[-60:]) and len(left) == 360 - evicted
    finally:
        s.close()


def test_rows_whose_differences_do_not_fit_64_bits_are_frozen_as_they_are() -> None:
    t = RecordTable()
    for i, oldest in enumerate((-1e300, 1e300, -0.0, 5e-324, T0)):
        t.append(1 + i * 2**60, 1, i * 10, 10, oldest, 1)
    cold = t.freeze()
    assert cold.blob[32] == 0  # the header's delta flag: stored as they are
    back = RecordTable.thaw(cold)
    assert back.oldest == t.oldest and back.firsts == t.firsts
    assert back.offsets == t.offsets and back.state == t.state
