"""The store's delivery index (edge_agent/store/delivery.py) and how the store leases:
in order per lane, alarms first, at a cost that does not follow the backlog, and without
holding the store lock while records are read and decrypted."""

from __future__ import annotations

import threading
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.security.keyring import StaticKeyring
from edge_agent.store.channel_store import ChannelStore
from edge_agent.store.delivery import DeliveryIndex
from edge_agent.store.segments import RecordRef, Segment

Segs = dict[Priority, Segment]


def lane_segments() -> Segs:
    """One segment per lane (a segment holds the records of one lane)."""
    return {lane: Segment(lane, 1, Path("/nonexistent"), 0) for lane in Priority}


def ref(segs: Segs, lane: int, first: int, count: int = 1,
        oldest: float = 1.7e9) -> RecordRef:
    return RecordRef(Priority(lane), first, count, oldest, segs[Priority(lane)], 0, 0)


ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 2), st.integers(1, 3)),
    st.tuples(st.just("lease"), st.integers(0, 6), st.sets(st.integers(0, 2), min_size=1)),
    st.tuples(st.just("release"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("remove"), st.integers(0, 40), st.booleans()),
    st.tuples(st.just("freeze"), st.integers(0, 2), st.booleans()),
), max_size=120)


@settings(max_examples=300, deadline=None)
@given(ops)
@example([("add", 0, 1), ("add", 0, 1), ("add", 0, 2), ("remove", 1, False),
          ("lease", 1, {0}), ("release", 0, True), ("freeze", 0, False), ("lease", 5, {0})])
def test_index_matches_a_plain_model(script: list[tuple[object, ...]]) -> None:
    """Whatever happens, ``lease`` hands out exactly what a naive scan of the pending
    records would: the lowest sequence numbers not in flight, lanes in priority order;
    a segment frozen in between (nothing of it in flight) answers the same."""
    idx = DeliveryIndex()
    segs = lane_segments()
    pending: dict[int, tuple[int, int]] = {}  # first -> (lane, count)
    inflight: set[int] = set()
    nxt = 1
    for op in script:
        if op[0] == "add":
            _, lane, count = op
            assert isinstance(lane, int) and isinstance(count, int)
            idx.add(ref(segs, lane, nxt, count, oldest=float(nxt % 7)))
            pending[nxt] = (lane, count)
            nxt += count
        elif op[0] == "lease":
            _, n, lanes = op
            assert isinstance(n, int) and isinstance(lanes, set)
            want = [f for lane in sorted(lanes)
                    for f in sorted(f for f, (ln, _) in pending.items()
                                    if ln == lane and f not in inflight)][:n]
            got = [r.first for r in idx.lease(n, lanes)]
            assert got == want
            inflight.update(got)
        elif op[0] == "release":
            _, k, everything = op
            assert isinstance(k, int)
            back = set(inflight) if everything else set(sorted(inflight)[-k:] if k else [])
            idx.release(None if everything else [*sorted(back, reverse=True), 10000])
            inflight -= back
        elif op[0] == "freeze":
            _, lane, _ = op
            assert isinstance(lane, int)
            seg = segs[Priority(lane)]
            mine = {f for f, (ln, _) in pending.items() if ln == lane}
            can = bool(mine) and not mine & inflight and seg.rows is not None
            assert seg.freeze() is can
        else:
            _, i, _ = op
            assert isinstance(i, int)
            firsts = sorted(pending)
            if firsts:
                f = firsts[i % len(firsts)]
                assert idx.remove(f) is not None
                del pending[f]
                inflight.discard(f)
        assert len(idx) == len(pending)
        assert idx.unleased() == len(pending) - len(inflight)
        assert idx.floor() == (min(pending) if pending else None)
        for lane in range(3):
            mine = [c for ln, c in pending.values() if ln == lane]
            assert idx.backlog(lane) == (len(mine), sum(mine))
        assert idx.oldest() == (min(float(f % 7) for f in pending) if pending else None)


def test_release_puts_batches_back_in_order_ahead_of_the_rest() -> None:
    idx = DeliveryIndex()
    segs = lane_segments()
    for first in range(1, 11):
        idx.add(ref(segs, 1, first))
    assert [r.first for r in idx.lease(4, [1])] == [1, 2, 3, 4]
    idx.release([3])
    idx.release([1])
    assert [r.first for r in idx.lease(3, [1])] == [1, 3, 5]
    idx.remove(2)
    idx.remove(4)
    idx.release()
    assert [r.first for r in idx.lease(10, [1])] == [1, 3, 5, 6, 7, 8, 9, 10]


def test_a_long_drain_leases_every_record_once_in_order(tmp_path: Path) -> None:
    s = ChannelStore(tmp_path, Channel.OT, bytes(32), batch_max=1, reserve_bytes=0)
    try:
        s.append([Reading("m", Channel.OT, Priority.NORMAL, "p", float(i), 1.7e9)
                  for i in range(3000)])
        s.append([Reading("b", Channel.OT, Priority.ALARM, "pressed", True, 1.7e9)])
        seen: list[int] = []
        while batches := s.lease(8):
            for i, b in enumerate(batches):
                if i == 3 and b.first % 5 == 0:
                    # connection lost: this one and the rest go back, and are sent again
                    s.release(x.first for x in batches[i:])
                    break
                seen.append(b.first)
                assert s.ack(b.first)
        assert seen[0] == 3001  # the alarm first, then the backlog in order
        assert seen[1:] == list(range(1, 3001))
        assert s.stats().backlog_records == 0
    finally:
        s.close()


class _BlockingKeyring(StaticKeyring):
    """Decrypting blocks until released: a slow SD card or a slow CPU, made visible."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self.reading = threading.Event()
        self.go_on = threading.Event()
        self.block = False

    def get(self, key_id: int) -> AESGCM | None:
        if self.block:
            self.reading.set()
            assert self.go_on.wait(10)
        return super().get(key_id)


def test_an_alarm_commit_does_not_wait_for_a_lease_reading_records(tmp_path: Path) -> None:
    keys = _BlockingKeyring(bytes(32))
    s = ChannelStore(tmp_path, Channel.OT, keys, reserve_bytes=0)
    try:
        s.append([Reading("m", Channel.OT, Priority.NORMAL, "p", 1.0, 1.7e9)] * 10)
        keys.block = True
        leased: list[int] = []
        t = threading.Thread(target=lambda: leased.extend(b.first for b in s.lease(8)))
        t.start()
        assert keys.reading.wait(10)  # the lease is reading and decrypting its records
        # ... and an alarm is committed meanwhile (the store lock is free)
        ranges = s.append([Reading("sos", Channel.OT, Priority.ALARM, "pressed", True,
                                   1.7e9)])
        assert ranges == [(11, 11)]
        assert t.is_alive()  # still blocked: the commit did not wait for it
        keys.go_on.set()
        t.join(10)
        assert leased == [1]
    finally:
        keys.go_on.set()
        s.close()


def test_a_hold_keeps_a_lane_in_order_while_older_segments_are_attached() -> None:
    """Recovery: newer records are added first, older segments attached later; nothing
    at or above the hold is leased, and once attached the older records go first."""
    idx = DeliveryIndex()
    old = Segment(Priority.NORMAL, 1, Path("/nonexistent"), 0)
    new = Segment(Priority.NORMAL, 11, Path("/nonexistent"), 0)
    idx.hold(Priority.NORMAL, 1)  # segment 1.. not scanned yet
    for first in range(11, 16):
        idx.add(RecordRef(Priority.NORMAL, first, 1, 1.7e9, new, 0, 0))
    assert idx.lease(10, [1]) == []
    assert not idx.leasable()
    for first in range(1, 11):  # the scan of the older segment
        old.table.append(first, 1, 0, 0, 1.7e9, 0)
    idx.attach(old)
    idx.hold(Priority.NORMAL, None)
    assert len(idx) == 15
    assert [r.first for r in idx.lease(4, [1])] == [1, 2, 3, 4]
    idx.release([2])
    assert [r.first for r in idx.lease(20, [1])] == [2, *range(5, 16)]
    assert idx.floor() == 1
