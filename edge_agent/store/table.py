"""The pending records of one segment, as parallel arrays: what the delivery index knows of
each record without a Python object per record.

A segment's records are appended in sequence order (the writer, or recovery after a scan),
so the arrays are sorted by first sequence number and a record is found by bisection. Each
record costs 31 bytes (first seq and oldest reading time 8 bytes each; count, offset and
size 4; key id 2; state 1), plus the arrays' growth slack; only the records a lease hands
out become ``RecordRef`` objects, and only for as long as they are in flight.

``state`` is per record: ``GONE`` (acknowledged, rejected or evicted: final), ``QUEUED``
(pending, not in flight) or ``LEASED`` (in flight). A gone record keeps its slot: a table is
dropped with its segment, never compacted.

A table the drain has not reached yet can be *frozen* (``freeze``: columns and states
compressed, about 5 bytes a record, with a summary of what the store asks of every
segment) and thawed exactly when it is needed (``thaw``; ``Segment.table``, design note
0019).

Pure bookkeeping, no I/O and no lock: the owning store calls it under its lock (recovery
builds a table outside the lock, before the segment is handed to the index).
"""

from __future__ import annotations

import bisect
import itertools
import operator
import struct
import zlib
from array import array
from dataclasses import dataclass
from typing import cast

from edge_agent.core.model import CLOCK_FLOOR

GONE, QUEUED, LEASED = 0, 1, 2
_FROZEN = struct.Struct("=QQQQB")  # rows, lo, live, readings, delta-coded
_COLUMNS = ("firsts", "counts", "offsets", "sizes", "oldest", "keys")
# kept as differences from the row before (times as their 64-bit patterns): they repeat,
# and zlib makes about a byte a record of them instead of eight
_DELTA = frozenset({"firsts", "offsets", "oldest"})


def _deltas(col: array[int] | array[float]) -> array[int]:
    """``col`` as int64 differences from the row before (the first row as it is)."""
    ints = array("q")
    if col.typecode == "d":
        ints.frombytes(col.tobytes())
    else:
        ints = array("q", cast("array[int]", col))
    out = array("q", ints[:1])
    out.extend(map(operator.sub, ints[1:], ints[:-1]))
    return out


def _undelta(raw: memoryview, typecode: str) -> array[int] | array[float]:
    """The column ``_deltas`` coded into ``raw``."""
    diffs = array("q")
    diffs.frombytes(raw)
    ints = array("q", itertools.accumulate(diffs))
    if typecode == "d":
        out = array("d")
        out.frombytes(ints.tobytes())
        return out
    return array(typecode, ints)


@dataclass(frozen=True, slots=True)
class Frozen:
    """A table kept compressed while nothing needs its rows (``RecordTable.freeze``):
    about 5 bytes a record instead of 31, with what the store asks of every segment
    (counts, the pending records' first number and oldest-reading bounds) at hand."""

    blob: bytes
    live: int
    readings: int
    first_pending: int | None
    min_oldest: float | None
    max_oldest: float | None
    clock_unset: bool  # a pending record taken before the clock was set

    def all_older(self, cutoff: float) -> bool:
        """``RecordTable.all_older`` of the frozen table."""
        return (self.live > 0 and not self.clock_unset and self.max_oldest is not None
                and self.max_oldest < cutoff)


class RecordTable:
    __slots__ = ("_min_oldest", "counts", "firsts", "keys", "live", "lo", "offsets",
                 "oldest", "readings", "sizes", "state")

    def __init__(self) -> None:
        self.firsts = array("q")
        self.counts = array("I")
        # a segment is at most segment_bytes (1 GiB, config limit) plus one batch: 32 bits
        self.offsets = array("I")
        self.sizes = array("I")
        self.oldest = array("d")
        self.keys = array("H")
        self.state = bytearray()
        self.live = 0  # records not GONE
        self.readings = 0  # readings of the records not GONE
        self.lo = 0  # every record below this index is GONE
        self._min_oldest: float | None = None  # cache; None: to be computed

    def __len__(self) -> int:
        return len(self.firsts)

    @classmethod
    def of_columns(cls, firsts: array[int], counts: array[int], offsets: array[int],
                   sizes: array[int], oldest: array[float], keys: array[int]) -> RecordTable:
        """A table of these records (a segment's index file), every one pending."""
        t = cls()
        t.firsts, t.counts, t.offsets, t.sizes, t.oldest, t.keys = (
            firsts, counts, offsets, sizes, oldest, keys)
        t.state = bytearray([QUEUED]) * len(firsts)
        t.live = len(firsts)
        t.readings = sum(counts)
        return t

    def drop_within(self, first: int, last: int) -> None:
        """Every pending record wholly within [first, last] leaves (acknowledged or
        evicted before the table was built)."""
        firsts, counts, state = self.firsts, self.counts, self.state
        for i in range(bisect.bisect_left(firsts, first), bisect.bisect_right(firsts, last)):
            if state[i] != GONE and firsts[i] + counts[i] - 1 <= last:
                self.drop(i)

    def runs(self) -> list[tuple[int, int]]:
        """The contiguous sequence ranges of all its records (pending or not), ascending."""
        firsts, counts = self.firsts, self.counts
        n = len(firsts)
        if not n:
            return []
        out: list[tuple[int, int]] = []
        start = firsts[0]
        for i in range(n - 1):
            end = firsts[i] + counts[i]
            if firsts[i + 1] != end:
                out.append((start, end - 1))
                start = firsts[i + 1]
        out.append((start, firsts[-1] + counts[-1] - 1))
        return out

    def append(self, first: int, count: int, offset: int, size: int, oldest: float,
               key_id: int) -> int:
        """A pending record, after every record already in the table. Returns its index."""
        if self.firsts and self.firsts[-1] >= first:
            raise ValueError(f"record {first} appended behind {self.firsts[-1]}")
        self.firsts.append(first)
        self.counts.append(count)
        self.offsets.append(offset)
        self.sizes.append(size)
        self.oldest.append(oldest)
        self.keys.append(key_id)
        self.state.append(QUEUED)
        self.live += 1
        self.readings += count
        if self._min_oldest is not None and oldest < self._min_oldest:
            self._min_oldest = oldest
        return len(self.firsts) - 1

    def extend(self, rows: list[tuple[int, int, int, int, float, int]]) -> None:
        """Pending records (first, count, offset, size, oldest, key id), in sequence
        order after every record already in the table: ``append`` for many at once."""
        if not rows:
            return
        firsts = [r[0] for r in rows]
        if (self.firsts and self.firsts[-1] >= firsts[0]) \
                or any(a >= b for a, b in itertools.pairwise(firsts)):
            raise ValueError(f"records {firsts[0]}..{firsts[-1]} are not in order behind "
                             f"{self.firsts[-1] if self.firsts else 0}")
        counts = [r[1] for r in rows]
        oldest = [r[4] for r in rows]
        self.firsts.extend(firsts)
        self.counts.extend(counts)
        self.offsets.extend(r[2] for r in rows)
        self.sizes.extend(r[3] for r in rows)
        self.oldest.extend(oldest)
        self.keys.extend(r[5] for r in rows)
        self.state.extend(bytes([QUEUED]) * len(rows))
        self.live += len(rows)
        self.readings += sum(counts)
        if self._min_oldest is not None:
            self._min_oldest = min(self._min_oldest, min(oldest))

    def find(self, first: int) -> int:
        """The index of the record that starts at ``first`` (any state), or -1."""
        i = bisect.bisect_left(self.firsts, first)
        return i if i < len(self.firsts) and self.firsts[i] == first else -1

    def at_or_after(self, seq: int) -> int:
        """The index of the first record starting at or after ``seq`` (may be len)."""
        return bisect.bisect_left(self.firsts, seq)

    def last(self, i: int) -> int:
        return self.firsts[i] + self.counts[i] - 1

    def drop(self, i: int) -> None:
        """Record ``i`` is no longer pending (its state must not be GONE already)."""
        state = self.state
        state[i] = GONE
        self.live -= 1
        self.readings -= self.counts[i]
        if self._min_oldest is not None and self.oldest[i] <= self._min_oldest:
            self._min_oldest = None
        lo = self.lo
        if lo == i:  # records leave in order, mostly: advance past the gone ones
            n = len(state)
            while lo < n and state[lo] == GONE:
                lo += 1
            self.lo = lo

    def drop_all(self) -> list[tuple[int, int]]:
        """Every pending record leaves at once (the segment is evicted). Returns the
        contiguous sequence ranges they covered, ascending."""
        out = self.spans()
        state = self.state
        for i in range(self.lo, len(state)):
            state[i] = GONE
        self.live = self.readings = 0
        self.lo = len(state)
        self._min_oldest = None
        return out

    def spans(self) -> list[tuple[int, int]]:
        """The contiguous sequence ranges of the pending records, ascending."""
        out: list[tuple[int, int]] = []
        firsts, counts, state = self.firsts, self.counts, self.state
        for i in range(self.lo, len(state)):
            if state[i] == GONE:
                continue
            a, b = firsts[i], firsts[i] + counts[i] - 1
            if out and out[-1][1] + 1 == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
        return out

    def min_oldest(self) -> float | None:
        """The oldest reading time of the pending records (cached until one leaves)."""
        if self.live == 0:
            return None
        if self._min_oldest is None:
            state, oldest = self.state, self.oldest
            self._min_oldest = min(oldest[i] for i in range(self.lo, len(state))
                                   if state[i] != GONE)
        return self._min_oldest

    def freeze(self) -> Frozen:
        """The whole table compressed, rows and states (``thaw`` gives it back exactly),
        with its summary."""
        n = len(self.firsts)
        try:
            cols = b"".join(_deltas(getattr(self, name)).tobytes() if name in _DELTA
                            else getattr(self, name).tobytes() for name in _COLUMNS)
            delta = 1
        except OverflowError:  # a difference beyond 64 bits (mixed-sign reading times)
            cols = b"".join(getattr(self, name).tobytes() for name in _COLUMNS)
            delta = 0
        blob = _FROZEN.pack(n, self.lo, self.live, self.readings, delta) + zlib.compress(
            cols + bytes(self.state), 1)
        low: float | None = None
        high: float | None = None
        state, oldest = self.state, self.oldest
        if self.live and state.find(GONE, self.lo) < 0:  # every row from lo on is pending
            pending = oldest[self.lo:]
            low, high = min(pending), max(pending)
        else:
            for i in range(self.lo, n):  # one pass, no list of floats (a lasting heap)
                if state[i] != GONE:
                    t = oldest[i]
                    if low is None or t < low:
                        low = t
                    if high is None or t > high:
                        high = t
        return Frozen(blob, self.live, self.readings,
                      self.firsts[self.lo] if self.live else None, low, high,
                      low is not None and low < CLOCK_FLOOR)

    @classmethod
    def thaw(cls, frozen: Frozen) -> RecordTable:
        """The table ``freeze`` made ``frozen`` of."""
        n, lo, live, readings, delta = _FROZEN.unpack_from(frozen.blob, 0)
        raw = memoryview(zlib.decompress(memoryview(frozen.blob)[_FROZEN.size:]))
        t = cls()
        at = 0
        for name in _COLUMNS:
            col = getattr(t, name)
            if delta and name in _DELTA:
                end = at + 8 * n
                col.extend(_undelta(raw[at:end], col.typecode))
            else:
                end = at + col.itemsize * n
                col.frombytes(raw[at:end])
            at = end
        t.state = bytearray(raw[at:at + n])
        t.lo, t.live, t.readings = lo, live, readings
        return t

    def all_older(self, cutoff: float) -> bool:
        """Whether every pending record is older than ``cutoff`` and was taken with a set
        clock (retention; eviction.retention_expired)."""
        if self.live == 0:
            return False
        state, oldest = self.state, self.oldest
        return all(CLOCK_FLOOR <= oldest[i] < cutoff for i in range(self.lo, len(state))
                   if state[i] != GONE)
