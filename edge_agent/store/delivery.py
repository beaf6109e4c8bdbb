"""The delivery index of one channel store: which records are pending, in which order they
are leased, and which are in flight.

A record is *pending* from the moment it is accepted (or found at open) until it is
acknowledged, rejected or evicted. ``lease`` hands out pending records that are not in
flight, per lane in sequence order, and marks them in flight until they are acknowledged
or released. Its cost is proportional to what it returns plus the records already in
flight (a bounded window), never to the size of the backlog: each lane keeps its sequence
numbers not in flight in a deque (leased from the front, released back near the front),
and the counts that ``stats`` reports are kept as records come and go.

Pure bookkeeping, no I/O and no lock: the owning store calls it under its lock.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable

from edge_agent.store.segments import LANES, RecordRef, Segment

__all__ = ["LANES", "DeliveryIndex"]


class DeliveryIndex:
    def __init__(self) -> None:
        self._refs: dict[int, RecordRef] = {}  # every pending record, by first seq
        # per lane, the first seq of the records that are not in flight, ascending. An
        # entry whose record left (acknowledged or evicted without a lease) is skipped when
        # it reaches the front; ``_stale`` counts them so the deque never outgrows twice
        # the backlog.
        self._queue: dict[int, deque[int]] = {int(lane): deque() for lane in LANES}
        self._stale: dict[int, int] = dict.fromkeys(self._queue, 0)
        self._inflight: set[int] = set()
        self._records: dict[int, int] = dict.fromkeys(self._queue, 0)
        self._readings: dict[int, int] = dict.fromkeys(self._queue, 0)
        # (oldest reading time, first): the oldest undelivered reading, lazily cleaned
        self._ages: list[tuple[float, int]] = []

    # ------------------------------------------------------------------ membership

    def add(self, ref: RecordRef) -> None:
        """A record became pending. Records of a lane are added in sequence order."""
        lane = int(ref.lane)
        queue = self._queue[lane]
        if queue and queue[-1] > ref.first:
            raise ValueError(f"record {ref.first} added behind {queue[-1]} in lane {lane}")
        self._refs[ref.first] = ref
        queue.append(ref.first)
        ref.seg.pending[ref.first] = ref
        self._records[lane] += 1
        self._readings[lane] += ref.count
        ages = self._ages
        heapq.heappush(ages, (ref.oldest, ref.first))
        if len(ages) > 64 and len(ages) > 2 * len(self._refs):
            self._ages = [(r.oldest, r.first) for r in self._refs.values()]
            heapq.heapify(self._ages)

    def remove(self, first: int) -> RecordRef | None:
        """A record is no longer pending (delivered, rejected, evicted). Returns it."""
        ref = self._refs.pop(first, None)
        if ref is None:
            return None
        lane = int(ref.lane)
        ref.seg.pending.pop(first, None)
        self._records[lane] -= 1
        self._readings[lane] -= ref.count
        if first in self._inflight:
            self._inflight.discard(first)  # not in the queue: nothing left behind
            return ref
        queue = self._queue[lane]
        if queue and queue[0] == first:
            queue.popleft()
            return ref
        self._stale[lane] += 1  # skipped when it reaches the front
        if self._stale[lane] > 64 and self._stale[lane] > len(queue) // 2:
            refs = self._refs  # amortised: once per len/2 such removals
            self._queue[lane] = deque(f for f in queue if f in refs)
            self._stale[lane] = 0
        return ref

    def get(self, first: int) -> RecordRef | None:
        return self._refs.get(first)

    def __contains__(self, first: object) -> bool:
        return first in self._refs

    def __len__(self) -> int:
        return len(self._refs)

    def refs(self) -> list[RecordRef]:
        """Every pending record (recovery and offline reports: O(backlog))."""
        return list(self._refs.values())

    # ------------------------------------------------------------------ leasing

    def lease(self, max_records: int, lanes: Iterable[int]) -> list[RecordRef]:
        """Up to ``max_records`` pending records not in flight, lanes in priority order and
        each lane in sequence order; marks them in flight. O(records returned)."""
        out: list[RecordRef] = []
        refs, inflight = self._refs, self._inflight
        for lane in sorted({int(x) for x in lanes}):
            queue = self._queue[lane]
            while queue and len(out) < max_records:
                first = queue.popleft()
                ref = refs.get(first)
                if ref is None:
                    self._stale[lane] -= 1
                    continue
                inflight.add(first)
                out.append(ref)
        return out

    def lease_runs(self, max_runs: int, lanes: Iterable[int], max_readings: int,
                   max_bytes: int) -> list[list[RecordRef]]:
        """Like ``lease``, but each item is a *run*: records of one lane whose sequence
        numbers follow on without a gap, up to ``max_readings`` readings and ``max_bytes``
        bytes on disk (a run always holds at least one record). One run is one message,
        so a backlog of small records drains as fast as one of large records. O(records
        returned)."""
        out: list[list[RecordRef]] = []
        refs, inflight = self._refs, self._inflight
        for lane in sorted({int(x) for x in lanes}):
            queue = self._queue[lane]
            run: list[RecordRef] = []
            readings = size = 0
            while queue and len(out) < max_runs:
                ref = refs.get(queue[0])
                if ref is None:
                    queue.popleft()
                    self._stale[lane] -= 1
                    continue
                if run and (ref.first != run[-1].last + 1 or readings + ref.count > max_readings
                            or size + ref.size > max_bytes):
                    out.append(run)
                    run, readings, size = [], 0, 0
                    continue
                queue.popleft()
                inflight.add(ref.first)
                run.append(ref)
                readings += ref.count
                size += ref.size
            if run:
                out.append(run)
        return out

    def release(self, firsts: Iterable[int] | None = None) -> None:
        """Return in-flight records to the front of their lane's queue, in order (all of
        them with ``None``). Firsts not in flight are ignored."""
        inflight = self._inflight
        back = sorted(inflight if firsts is None else {f for f in firsts if f in inflight})
        for first in reversed(back):  # each lands at or near the front: O(window)
            inflight.discard(first)
            queue = self._queue[int(self._refs[first].lane)]
            i = 0
            for x in queue:
                if x > first:
                    break
                i += 1
            queue.insert(i, first)

    def in_flight(self, first: int) -> bool:
        return first in self._inflight

    def unleased(self) -> int:
        """Pending records not in flight (every in-flight record is pending)."""
        return len(self._refs) - len(self._inflight)

    # ------------------------------------------------------------------ reports

    def inflight_count(self) -> int:
        return len(self._inflight)

    def floor(self) -> int | None:
        """The lowest pending sequence number (everything below it is settled)."""
        lows = [min(self._inflight)] if self._inflight else []
        for lane, queue in self._queue.items():
            while queue and queue[0] not in self._refs:
                queue.popleft()
                self._stale[lane] -= 1
            if queue:
                lows.append(queue[0])
        return min(lows) if lows else None

    def backlog(self, lane: int) -> tuple[int, int]:
        """(records, readings) pending in ``lane``."""
        return self._records[lane], self._readings[lane]

    def oldest(self) -> float | None:
        ages, refs = self._ages, self._refs
        while ages and ages[0][1] not in refs:
            heapq.heappop(ages)
        return ages[0][0] if ages else None

    @staticmethod
    def of_segment(seg: Segment) -> list[RecordRef]:
        """The pending records of one segment, in sequence order."""
        return sorted(seg.pending.values(), key=lambda r: r.first)
