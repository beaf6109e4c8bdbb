"""A bounded directory of files kept aside: dead letters (``dead/``) and quarantined files
(``quarantine/``).

An entry is one or more files sharing a stem (a dead letter is ``<first>.rec`` and
``<first>.why``). The area holds at most ``max_bytes`` and ``max_entries``; when a new entry
would exceed either, the oldest entries are deleted first, and an entry larger than the
whole budget is not kept at all. Every deletion is counted (``dropped``, ``dropped_bytes``)
and, for entries that name a sequence range, remembered in a short list of recent ranges,
so the health message can say what is gone. See docs/design/0009-bounded-dead-letters.md.

``Quarantine`` and ``DeadLetters`` are the store's two uses of it: files it cannot read
(moved aside, or linked when their readable records stay in use) and copies of records
the broker refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.core.clock import Clock
from edge_agent.core.fsutil import Write, atomic_write
from edge_agent.core.ratelog import RateLimitedLog
from edge_agent.store import record as rec

# dead/ and quarantine/ count against the store's max_bytes, each within its share of it
# (docs/design/0009-bounded-dead-letters.md)
DEAD_SHARE = 16  # dead letters: at most 1/16 of max_bytes ...
DEAD_MAX_ENTRIES = 10_000  # ... and at most this many
QUARANTINE_SHARE = 16
QUARANTINE_MAX_FILES = 100

log = logging.getLogger("edge_agent.store")

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



class Quarantine:
    """``quarantine/``: files the store cannot use, kept as evidence within their budget.

    Not thread-safe: the owning store calls it under its lock."""

    def __init__(self, area: AsideArea, channel: str, clock: Clock, ratelog: RateLimitedLog,
                 event: Callable[[str, str, str], None], fsync: Callable[[int], None],
                 write: Write) -> None:
        self.area = area
        self._channel = channel
        self._clock = clock
        self._ratelog = ratelog
        self._event = event
        self._fsync = fsync
        self._write = write
        self.files_moved = 0  # files that did not belong, moved aside (or deleted: too big)

    def move(self, path: Path, why: str) -> None:
        """Move ``path`` (a file the store cannot use) aside."""
        self.files_moved += 1
        self._keep(path, why, link=False)

    def link(self, path: Path, why: str, tail: bytes = b"") -> None:
        """Keep a second name for ``path`` (a segment whose readable records stay in use):
        a hard link, so keeping the evidence needs no free space and a full disk never
        stops a start. ``tail``: bytes already cut off its end, kept beside it when there
        is room."""
        self._keep(path, why, link=True, tail=tail)

    def _keep(self, path: Path, why: str, link: bool, tail: bytes = b"") -> None:
        """Failing to keep evidence is logged, never fatal: the damage is reported either
        way."""
        qdir = self.area.dir
        dest = qdir / f"{int(self._clock.time())}-{path.parent.name}-{path.name}"
        area = self.area
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        if not area.fits(size):  # larger than the whole quarantine budget: reported, not kept
            area.not_kept(size)
            if not link:
                with contextlib.suppress(OSError):
                    path.unlink()
            self._ratelog.log(logging.ERROR, "quarantine", "store %s: %s is unreadable (%s) "
                              "and larger than the quarantine budget (%d bytes); not kept",
                              self._channel, path, why, area.max_bytes)
            self._event("store", "quarantined", f"{path.name}: {why} (not kept: too large)")
            return
        area.make_room(size)
        try:
            qdir.mkdir(exist_ok=True, mode=0o700)
            if link:
                os.link(path, dest)  # the file is only ever cut back, never written again
            else:
                os.replace(path, dest)
            kept = [dest]
            if tail:
                tail_path = dest.with_name(dest.name + ".tail")
                try:
                    atomic_write(tail_path, tail, 0o600, fsync=self._fsync, write=self._write)
                    kept.append(tail_path)
                except OSError as exc:
                    log.error("store %s: cannot keep the cut tail of %s (%s); reported all "
                              "the same", self._channel, path, exc)
            area.added(dest.name.split(".", 1)[0], kept)
        except OSError as exc:
            log.error("store %s: cannot keep %s in quarantine (%s); reported all the same",
                      self._channel, path, exc)
        self._ratelog.log(logging.ERROR, "quarantine", "store %s: quarantined %s (%s) -> %s",
                          self._channel, path, why, dest)
        self._event("store", "quarantined", f"{path.name}: {why}")


class DeadLetters:
    """``dead/``: a copy of each record the broker refused (``<first>.rec`` and
    ``<first>.why``), within the dead letters' share of the budget, oldest deleted first.

    Not thread-safe: the owning store calls it under its lock."""

    def __init__(self, area: AsideArea, channel: str, ratelog: RateLimitedLog) -> None:
        self.area = area
        self._channel = channel
        self._ratelog = ratelog
        self.count = 0  # records dead-lettered (kept or not)

    def keep(self, first: int, last: int, size: int, record: Callable[[], bytes],
             why: str) -> None:
        """``size``: the record's length; ``record()`` reads it (only when it fits)."""
        self.count += 1
        area, seq = self.area, (first, last)
        note = (why + "\n").encode()
        size += len(note)
        if not area.fits(size):
            area.not_kept(size, seq)
            return
        area.make_room(size)
        paths = [area.dir / f"{first:020d}.rec", area.dir / f"{first:020d}.why"]
        try:
            area.dir.mkdir(exist_ok=True, mode=0o700)
            atomic_write(paths[0], record(), 0o600)
            atomic_write(paths[1], note, 0o600)
        except OSError as exc:
            for p in paths:
                with contextlib.suppress(OSError):
                    p.unlink()
            area.not_kept(size, seq)
            self._ratelog.log(logging.ERROR, "dead-letter", "store %s: cannot keep dead "
                              "letter %d: %s", self._channel, first, exc)
            return
        area.added(f"{first:020d}", paths, seq)


def dead_letter_range(paths: list[Path]) -> tuple[int, int] | None:
    """The sequence range of a dead letter left by an earlier run (from its record)."""
    for p in paths:
        if p.suffix == ".rec":
            try:
                with open(p, "rb") as f:
                    head = rec.parse_header(f.read(rec.HEAD_SIZE))
            except (OSError, rec.RecordCorrupt):
                return None
            return head.first, head.last
    return None
