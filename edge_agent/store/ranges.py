"""Sets of sequence numbers kept as merged, sorted, inclusive ranges."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator


class RangeSet:
    """A set of ints stored as disjoint sorted inclusive ranges [(a, b), ...]."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for a, b in ranges:
            self.add(a, b)

    def add(self, first: int, last: int) -> None:
        if last < first:
            return
        i = bisect.bisect_left(self._ends, first - 1)
        j = bisect.bisect_right(self._starts, last + 1)
        if i < j:
            first = min(first, self._starts[i])
            last = max(last, self._ends[j - 1])
        self._starts[i:j] = [first]
        self._ends[i:j] = [last]

    def __contains__(self, n: object) -> bool:
        if not isinstance(n, int):
            return False
        i = bisect.bisect_right(self._starts, n) - 1
        return i >= 0 and self._ends[i] >= n

    def covers(self, first: int, last: int) -> bool:
        i = bisect.bisect_right(self._starts, first) - 1
        return i >= 0 and self._ends[i] >= last

    def within(self, first: int, last: int) -> RangeSet:
        """A copy of the part of the set inside [first, last] (O(log n + ranges copied))."""
        out = RangeSet()
        i = max(0, bisect.bisect_right(self._starts, first) - 1)
        j = bisect.bisect_right(self._starts, last)
        for a, b in zip(self._starts[i:j], self._ends[i:j], strict=True):
            a, b = max(a, first), min(b, last)
            if a <= b:
                out._starts.append(a)
                out._ends.append(b)
        return out

    def count_in(self, first: int, last: int) -> int:
        """How many members lie within [first, last] (O(log n + ranges overlapped))."""
        if last < first:
            return 0
        i = max(0, bisect.bisect_right(self._starts, first) - 1)
        n = 0
        while i < len(self._starts) and self._starts[i] <= last:
            lo, hi = max(first, self._starts[i]), min(last, self._ends[i])
            if hi >= lo:
                n += hi - lo + 1
            i += 1
        return n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)

    def count(self) -> int:
        return sum(b - a + 1 for a, b in self)

    def max(self) -> int:
        return self._ends[-1] if self._ends else 0

    def gaps(self, first: int, last: int) -> list[tuple[int, int]]:
        """The ranges within [first, last] that are not in the set."""
        out: list[tuple[int, int]] = []
        cur = first
        for a, b in self:
            if b < cur:
                continue
            if a > last:
                break
            if a > cur:
                out.append((cur, a - 1))
            cur = max(cur, b + 1)
        if cur <= last:
            out.append((cur, last))
        return out
