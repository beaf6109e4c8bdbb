"""A bounded directory of files kept aside: dead letters (``dead/``) and quarantined files
(``quarantine/``).

An entry is one or more files sharing a stem (a dead letter is ``<first>.rec`` and
``<first>.why``). The area holds at most ``max_bytes`` and ``max_entries``; when a new entry
would exceed either, the oldest entries are deleted first, and an entry larger than the
whole budget is not kept at all. Every deletion is counted (``dropped``, ``dropped_bytes``)
and, for entries that name a sequence range, remembered in a short list of recent ranges,
so the health message can say what is gone. See docs/design/0009-bounded-dead-letters.md.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RECENT = 50  # dropped seq ranges remembered for the health message


@dataclass
class _Entry:
    paths: list[Path]
    size: int
    seq: tuple[int, int] | None = None


@dataclass
class AsideStats:
    entries: int
    bytes: int
    dropped: int
    dropped_bytes: int
    dropped_ranges: list[tuple[int, int]] = field(default_factory=list)


class AsideArea:
    """Not thread-safe: the owning store calls it under its own lock."""

    def __init__(self, directory: Path, max_bytes: int, max_entries: int, *,
                 range_of: Callable[[list[Path]], tuple[int, int] | None] | None = None
                 ) -> None:
        """``range_of``: the sequence range of an entry found on disk (from its files)."""
        self.dir = directory
        self._range_of = range_of
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.bytes = 0
        self.dropped = 0
        self.dropped_bytes = 0
        self._recent: list[tuple[int, int]] = []
        self._scan()

    def _scan(self) -> None:
        """Index what an earlier run left, oldest first (by modification time, then name)."""
        try:
            paths = [p for p in self.dir.iterdir() if p.is_file()]
        except FileNotFoundError:
            return
        found: list[tuple[float, str, Path, int]] = []
        for p in paths:
            with contextlib.suppress(OSError):
                st = p.stat()
                found.append((st.st_mtime, p.name, p, st.st_size))
        found.sort()
        for _, _, p, size in found:
            stem = p.name.split(".", 1)[0]
            entry = self._entries.get(stem)
            if entry is None:
                entry = self._entries[stem] = _Entry([], 0)
            entry.paths.append(p)
            entry.size += size
            self.bytes += size
        if self._range_of is not None:
            for entry in self._entries.values():
                entry.seq = self._range_of(entry.paths)
        self.trim()

    def fits(self, size: int) -> bool:
        """Whether an entry of ``size`` bytes can be kept at all."""
        return size <= self.max_bytes and self.max_entries > 0

    def make_room(self, size: int) -> None:
        """Delete the oldest entries until one of ``size`` bytes fits in the budget."""
        while self._entries and (self.bytes + size > self.max_bytes
                                 or len(self._entries) + 1 > self.max_entries):
            self._drop_oldest()

    def added(self, stem: str, paths: list[Path], seq: tuple[int, int] | None = None) -> None:
        """Record an entry the caller has written (after ``make_room``)."""
        size = 0
        for p in paths:
            with contextlib.suppress(OSError):
                size += p.stat().st_size
        old = self._entries.pop(stem, None)
        if old is not None:
            self.bytes -= old.size
        self._entries[stem] = _Entry(list(paths), size, seq)
        self.bytes += size
        self.trim()

    def not_kept(self, size: int, seq: tuple[int, int] | None = None) -> None:
        """An entry that was not kept (larger than the budget, or it could not be written)."""
        self.dropped += 1
        self.dropped_bytes += size
        if seq is not None:
            self._remember(seq)

    def drop_oldest(self) -> bool:
        """Delete the oldest entry (to make room for something more valuable)."""
        if not self._entries:
            return False
        self._drop_oldest()
        return True

    def trim(self) -> None:
        while self._entries and (self.bytes > self.max_bytes
                                 or len(self._entries) > self.max_entries):
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, entry = self._entries.popitem(last=False)
        for p in entry.paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        self.bytes -= entry.size
        self.not_kept(entry.size, entry.seq)

    def _remember(self, seq: tuple[int, int]) -> None:
        recent = self._recent
        if recent and recent[-1][1] + 1 == seq[0]:
            recent[-1] = (recent[-1][0], seq[1])  # contiguous: one range
        else:
            recent.append(seq)
            del recent[:-RECENT]

    def stats(self) -> AsideStats:
        return AsideStats(len(self._entries), self.bytes, self.dropped, self.dropped_bytes,
                          list(self._recent))

