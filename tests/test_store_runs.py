"""Leasing runs: consecutive small records of one lane go out as one message (one batch),
and are acknowledged, released or rejected as one; the journal and a restart agree."""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.store.channel_store import ChannelStore

KEY = bytes(range(32))


def one(i: int, prio: Priority = Priority.NORMAL) -> list[Reading]:
    return [Reading("meter-main", Channel.OT, prio, "power", float(i), 1_700_000_000.0 + i, "W")]


def store(root: Path) -> ChannelStore:
    return ChannelStore(root, Channel.OT, KEY, batch_max=1, reserve_bytes=0)


def fill(s: ChannelStore, n: int, prio: Priority = Priority.NORMAL) -> None:
    for i in range(n):
        s.append(one(i, prio))


def test_consecutive_records_lease_as_one_batch_with_every_reading(tmp_path: Path) -> None:
    s = store(tmp_path)
    fill(s, 25)
    batches = s.lease(2, max_readings=10)
    assert [(b.first, b.last) for b in batches] == [(1, 10), (11, 20)]
    assert [r["v"] for r in json.loads(batches[0].senml)] == [float(i) for i in range(10)]
    assert s.stats().inflight_records == 20
    for b in batches:
        assert s.ack(b.first)
    (rest,) = s.lease(8, max_readings=10)
    assert (rest.first, rest.last) == (21, 25)
    s.ack(rest.first)
    assert s.stats().backlog_records == 0
    assert list(s.acked_ranges()) == [(1, 25)]
    s.close()
    again = store(tmp_path)
    assert again.lease(100, max_readings=100) == []
    again.close()


def test_a_run_stops_at_a_gap_and_at_the_lane(tmp_path: Path) -> None:
    s = store(tmp_path)
    fill(s, 3)
    s.append(one(99, Priority.ALARM))  # seq 4 in the alarm lane: a gap in the normal lane
    fill(s, 2)
    got = [(int(b.lane), b.first, b.last) for b in s.lease(8, max_readings=500)]
    assert got == [(0, 4, 4), (1, 1, 3), (1, 5, 6)]
    s.close()


def test_a_released_run_is_leased_again_whole_and_first(tmp_path: Path) -> None:
    s = store(tmp_path)
    fill(s, 12)
    (a, _b) = s.lease(2, max_readings=5)
    s.release([a.first])
    assert s.stats().inflight_records == 5
    (again,) = s.lease(1, max_readings=5)
    assert (again.first, again.last) == (1, 5)
    s.release()
    assert s.stats().inflight_records == 0
    assert [(x.first, x.last) for x in s.lease(3, max_readings=5)] == [(1, 5), (6, 10), (11, 12)]
    s.close()


def test_an_unacked_run_is_resent_after_restart(tmp_path: Path) -> None:
    s = store(tmp_path)
    fill(s, 6)
    (_a, b) = s.lease(2, max_readings=3)
    s.ack(b.first)  # 4..6 delivered, 1..3 still in flight at the crash
    s.close()
    again = store(tmp_path)
    assert [(x.first, x.last) for x in again.lease(8, max_readings=10)] == [(1, 3)]
    again.close()


def test_a_rejected_run_goes_to_dead_letters_whole(tmp_path: Path) -> None:
    s = store(tmp_path)
    fill(s, 4)
    (b,) = s.lease(1, max_readings=4)
    assert s.reject(b.first, "0x87 Not authorized")
    st = s.stats()
    assert st.backlog_records == 0 and st.evicted.get("rejected") == 4
    assert st.dead_letters == 4
    s.close()
