"""The delivery index of one channel store: which records are pending, in which order they
are leased, and which are in flight.

A record is *pending* from the moment it is accepted (or found at open) until it is
acknowledged, rejected or evicted. ``lease`` hands out pending records that are not in
flight, per lane in sequence order, and marks them in flight until they are acknowledged
or released.

What it keeps per pending record is one row of its segment's ``RecordTable`` (parallel
arrays, about 31 bytes; table.py): no Python object per record. A segment the drain has
not reached keeps its table frozen (compressed, about 5 bytes a record;
``Segment.freeze``): the walk thaws a segment when it gets there, and the reports that
look at every segment (counts, the oldest reading, the floor) read the frozen summary.
Per lane it keeps the segments that have rows, sorted by first sequence number, a
*cursor* (every record below it was handed out at least once) and the released records (a
heap of first sequence numbers, all below the cursor). A lease walks forward from there,
so its cost is what it returns plus the records in flight (a bounded window), never the
size of the backlog.
Only the records in flight exist as ``RecordRef`` objects.

While the store is still scanning the segments it found at open (recovery.py), each lane
has a *hold*: the first sequence number of its oldest segment not scanned yet. A lease
never hands out a record at or above its lane's hold, so a lane is delivered in order
even while its older records are still being found (newer records wait behind them).

Pure bookkeeping, no I/O and no lock: the owning store calls it under its lock.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable

from edge_agent.store.segments import LANES, RecordRef, Segment
from edge_agent.store.table import GONE, LEASED, QUEUED, RecordTable

__all__ = ["LANES", "DeliveryIndex"]

_LANE = {int(lane): lane for lane in LANES}


class DeliveryIndex:
    def __init__(self) -> None:
        lanes = [int(lane) for lane in LANES]
        # per lane: the segments with rows, by first seq, and their first seqs
        self._segs: dict[int, list[Segment]] = {lane: [] for lane in lanes}
        self._starts: dict[int, list[int]] = {lane: [] for lane in lanes}
        self._cursor: dict[int, int] = dict.fromkeys(lanes, 0)
        self._released: dict[int, list[int]] = {lane: [] for lane in lanes}
        self._hold: dict[int, int | None] = dict.fromkeys(lanes)
        self._inflight: dict[int, RecordRef] = {}
        self._records: dict[int, int] = dict.fromkeys(lanes, 0)
        self._readings: dict[int, int] = dict.fromkeys(lanes, 0)
        self._count = 0

    # ------------------------------------------------------------------ membership

    def add(self, ref: RecordRef) -> None:
        """A record was written to ``ref.seg``. Records of a segment are added in
        sequence order; a segment is registered with its first record."""
        lane = int(ref.lane)
        if int(ref.seg.lane) != lane:
            raise ValueError(f"record {ref.first} of lane {lane} in a segment of lane "
                             f"{int(ref.seg.lane)}")
        seg = ref.seg
        segs = self._segs[lane]
        if not segs or segs[-1] is not seg:
            self._register(lane, seg)
        ref.idx = seg.table.append(ref.first, ref.count, ref.offset, ref.size, ref.oldest,
                                   ref.key_id)
        self._records[lane] += 1
        self._readings[lane] += ref.count
        self._count += 1

    def attach(self, seg: Segment) -> None:
        """A segment found at open, scanned, with the rows of its pending records."""
        lane = int(seg.lane)
        self._register(lane, seg)
        self._records[lane] += seg.table.live
        self._readings[lane] += seg.table.readings
        self._count += seg.table.live

    def _register(self, lane: int, seg: Segment) -> None:
        segs, starts = self._segs[lane], self._starts[lane]
        if seg in segs:
            return
        i = bisect.bisect_right(starts, seg.first)
        segs.insert(i, seg)
        starts.insert(i, seg.first)

    def forget_segment(self, seg: Segment) -> None:
        """The segment's file is deleted (nothing in it is pending)."""
        lane = int(seg.lane)
        segs = self._segs[lane]
        for i, s in enumerate(segs):
            if s is seg:
                del segs[i]
                del self._starts[lane][i]
                return

    def evict_segment(self, seg: Segment) -> list[tuple[int, int]]:
        """Every pending record of ``seg`` leaves at once. Returns the contiguous
        sequence ranges (ascending) they covered."""
        lane, table = int(seg.lane), seg.table  # thawed: its ranges are reported
        self._records[lane] -= table.live
        self._readings[lane] -= table.readings
        self._count -= table.live
        for i in range(table.lo, len(table)):
            if table.state[i] == LEASED:
                self._inflight.pop(table.firsts[i], None)
        out = table.drop_all()
        self.forget_segment(seg)
        return out

    def _locate(self, first: int) -> tuple[Segment, int] | None:
        for lane, starts in self._starts.items():
            i = bisect.bisect_right(starts, first) - 1
            if i < 0:
                continue
            seg = self._segs[lane][i]
            j = seg.table.find(first)
            if j >= 0 and seg.table.state[j] != GONE:
                return seg, j
        return None

    @staticmethod
    def _ref(seg: Segment, i: int) -> RecordRef:
        t = seg.table
        return RecordRef(_LANE[int(seg.lane)], t.firsts[i], t.counts[i], t.oldest[i], seg,
                         t.offsets[i], t.sizes[i], t.keys[i], i)

    def remove(self, first: int) -> RecordRef | None:
        """A record is no longer pending (delivered, rejected, evicted). Returns it."""
        ref = self._inflight.get(first)
        if ref is not None:
            return ref if self.discard(ref) else None
        at = self._locate(first)
        if at is None:
            return None
        ref = self._ref(*at)
        self.discard(ref)
        return ref

    def discard(self, ref: RecordRef) -> bool:
        """Like ``remove`` for a ref handed out by this index. False if it had left."""
        table = ref.seg.table
        i = ref.idx
        if not 0 <= i < len(table.state) or table.firsts[i] != ref.first:
            return False
        st = table.state[i]
        if st == GONE:
            return False
        if st == LEASED:
            self._inflight.pop(ref.first, None)
        table.drop(i)
        lane = ref.lane
        self._records[lane] -= 1
        self._readings[lane] -= ref.count
        self._count -= 1
        return True  # a released row left in the lane's heap is skipped when reached

    def pending(self, ref: RecordRef) -> bool:
        """Whether ``ref`` (handed out by this index) is still pending."""
        table, i = ref.seg.table, ref.idx
        state = table.state
        return 0 <= i < len(state) and table.firsts[i] == ref.first and state[i] != GONE

    def get(self, first: int) -> RecordRef | None:
        """The pending record that starts at ``first`` (the in-flight ref if leased)."""
        ref = self._inflight.get(first)
        if ref is not None:
            return ref
        at = self._locate(first)
        return None if at is None else self._ref(*at)

    def __contains__(self, first: object) -> bool:
        if not isinstance(first, int):
            return False
        return first in self._inflight or self._locate(first) is not None

    def __len__(self) -> int:
        return self._count

    def spans(self) -> list[tuple[int, int]]:
        """The sequence ranges of every pending record (offline reports: O(backlog))."""
        out: list[tuple[int, int]] = []
        for lane in self._segs:
            for seg in self._segs[lane]:
                out.extend(seg.view().spans())
        return out

    def hold(self, lane: int, first: int | None) -> None:
        """Lease nothing of ``lane`` at or above ``first`` (None: no hold)."""
        self._hold[int(lane)] = first

    def holds(self) -> dict[int, int]:
        return {lane: h for lane, h in self._hold.items() if h is not None}

    # ------------------------------------------------------------------ leasing

    def _next(self, lane: int, at: list[int]) -> tuple[Segment, int] | None:
        """The next record to hand out in ``lane``: a released one, else the first queued
        at or after the cursor (``at``: [segment index, row] of the walk, or [-1, 0])."""
        heap = self._released[lane]
        while heap:
            found = self._locate_in(lane, heap[0])
            if found is not None and found[0].table.state[found[1]] == QUEUED:
                return found
            heapq.heappop(heap)  # left meanwhile (acknowledged or evicted)
        segs = self._segs[lane]
        if at[0] < 0:
            cursor = self._cursor[lane]
            si = max(0, bisect.bisect_right(self._starts[lane], cursor) - 1)
            at[0] = si
            at[1] = segs[si].table.at_or_after(cursor) if si < len(segs) else 0
        si, ti = at
        hold = self._hold[lane]
        while si < len(segs):
            table = segs[si].table
            state = table.state
            n = len(state)
            ti = max(ti, table.lo)
            while ti < n and state[ti] != QUEUED:
                ti += 1
            if ti < n:
                at[0], at[1] = si, ti
                if hold is not None and table.firsts[ti] >= hold:
                    return None
                return segs[si], ti
            si, ti = si + 1, 0
        at[0], at[1] = si, 0
        return None

    def _locate_in(self, lane: int, first: int) -> tuple[Segment, int] | None:
        i = bisect.bisect_right(self._starts[lane], first) - 1
        if i < 0:
            return None
        seg = self._segs[lane][i]
        j = seg.table.find(first)
        return None if j < 0 else (seg, j)

    def _take(self, lane: int, seg: Segment, i: int) -> RecordRef:
        table = seg.table
        heap = self._released[lane]
        first = table.firsts[i]
        if heap and heap[0] == first:
            heapq.heappop(heap)
        else:
            self._cursor[lane] = first + table.counts[i]
        table.state[i] = LEASED
        ref = self._ref(seg, i)
        self._inflight[first] = ref
        return ref

    def lease(self, max_records: int, lanes: Iterable[int]) -> list[RecordRef]:
        """Up to ``max_records`` pending records not in flight, lanes in priority order and
        each lane in sequence order; marks them in flight. O(records returned)."""
        return [run[0] for run in self.lease_runs(max_records, lanes, 1, 0)]

    def lease_runs(self, max_runs: int, lanes: Iterable[int], max_readings: int,
                   max_bytes: int) -> list[list[RecordRef]]:
        """Like ``lease``, but each item is a *run*: records of one lane whose sequence
        numbers follow on without a gap, up to ``max_readings`` readings and ``max_bytes``
        bytes on disk (a run always holds at least one record). One run is one message,
        so a backlog of small records drains as fast as one of large records. O(records
        returned)."""
        out: list[list[RecordRef]] = []
        for lane in sorted({int(x) for x in lanes}):
            if len(out) >= max_runs:
                break
            run: list[RecordRef] = []
            at = [-1, 0]
            # released records first (after a lost connection: a few); they are all below
            # the cursor
            while self._released[lane] and len(out) < max_runs:
                nxt = self._next(lane, at)
                if nxt is None:
                    break
                seg, i = nxt
                if not self._fits(run, seg.table, i, max_readings, max_bytes):
                    out.append(run)
                    run = []
                    continue
                run.append(self._take(lane, seg, i))
            if len(out) < max_runs and not self._released[lane]:
                run = self._walk(lane, run, out, max_runs, max_readings, max_bytes)
            if run:
                out.append(run)
        return out

    @staticmethod
    def _fits(run: list[RecordRef], table: RecordTable, i: int, max_readings: int,
              max_bytes: int) -> bool:
        if not run:
            return True
        return (table.firsts[i] == run[-1].last + 1
                and sum(r.count for r in run) + table.counts[i] <= max_readings
                and sum(r.size for r in run) + table.sizes[i] <= max_bytes)

    def _walk(self, lane: int, run: list[RecordRef], out: list[list[RecordRef]],
              max_runs: int, max_readings: int, max_bytes: int) -> list[RecordRef]:
        """The records never leased yet, from the cursor on: the drain's hot loop (one
        pass over the segments' arrays, no call per record but the ref's)."""
        segs, hold = self._segs[lane], self._hold[lane]
        limit = hold if hold is not None else 1 << 63
        cursor = self._cursor[lane]
        si = max(0, bisect.bisect_right(self._starts[lane], cursor) - 1)
        if si >= len(segs):
            return run
        ti = segs[si].table.at_or_after(cursor)
        inflight, kind = self._inflight, _LANE[lane]
        readings = sum(r.count for r in run)
        size = sum(r.size for r in run)
        nxt_seq = run[-1].last + 1 if run else -1
        while si < len(segs):
            seg = segs[si]
            t = seg.table
            state, firsts, counts, sizes = t.state, t.firsts, t.counts, t.sizes
            n = len(state)
            if ti < t.lo:
                ti = t.lo
            while ti < n:
                if state[ti] != QUEUED:
                    ti += 1
                    continue
                first = firsts[ti]
                if first >= limit:
                    return run
                count, rsize = counts[ti], sizes[ti]
                if run and (first != nxt_seq or readings + count > max_readings
                            or size + rsize > max_bytes):
                    out.append(run)
                    run, readings, size = [], 0, 0
                    if len(out) >= max_runs:
                        return run
                    continue
                state[ti] = LEASED
                ref = RecordRef(kind, first, count, t.oldest[ti], seg, t.offsets[ti], rsize,
                                t.keys[ti], ti)
                inflight[first] = ref
                run.append(ref)
                nxt_seq = first + count
                self._cursor[lane] = nxt_seq
                readings += count
                size += rsize
                ti += 1
            si, ti = si + 1, 0
        return run

    def release(self, firsts: Iterable[int] | None = None) -> None:
        """Return in-flight records to their lane, ahead of what was never leased (all of
        them with ``None``). Firsts not in flight are ignored."""
        inflight = self._inflight
        back = list(inflight) if firsts is None else [f for f in firsts if f in inflight]
        for first in back:
            ref = inflight.pop(first, None)
            if ref is None:
                continue
            ref.seg.table.state[ref.idx] = QUEUED
            heapq.heappush(self._released[int(ref.lane)], first)

    def leasable(self) -> bool:
        """Whether a lease would hand out anything now (a hold may keep records back)."""
        return any(self._next(lane, [-1, 0]) is not None for lane in self._segs)

    def in_flight(self, first: int) -> bool:
        return first in self._inflight

    def unleased(self) -> int:
        """Pending records not in flight (every in-flight record is pending)."""
        return self._count - len(self._inflight)

    # ------------------------------------------------------------------ reports

    def inflight_count(self) -> int:
        return len(self._inflight)

    def floor(self) -> int | None:
        """The lowest pending sequence number (everything below it is settled), counting
        the segments not scanned yet (a hold) as pending."""
        lows: list[int] = [h for h in self._hold.values() if h is not None]
        for segs in self._segs.values():
            for seg in segs:
                low = seg.first_pending()
                if low is not None:
                    lows.append(low)
                    break
        return min(lows) if lows else None

    def backlog(self, lane: int) -> tuple[int, int]:
        """(records, readings) pending in ``lane``."""
        return self._records[lane], self._readings[lane]

    def oldest(self) -> float | None:
        """The oldest reading time of the pending records (cached per segment)."""
        ages = [a for segs in self._segs.values() for s in segs
                if (a := s.min_oldest()) is not None]
        return min(ages) if ages else None
