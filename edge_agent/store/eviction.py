"""Evictions: what the store dropped without delivering it, why, and which records go first.

Every range of sequence numbers that will never be delivered is journaled in
``evicted.log`` with its reason (the tag byte of the entry is ``EvictReason``'s value), counted
per reason and remembered in a short list of recent ranges for the health message. Nothing
is ever dropped silently: a range the journal cannot take (a full disk) is still counted
and reported now, and after a restart its numbers are missing and reported as ``corrupt``.

The size policy (``size_victim``): the oldest segment of the lowest-priority lane, never
alarms. The retention policy (``retention_expired``): a segment whose pending records are
all older than the retention period and all taken with a set clock.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable

from edge_agent.core.model import Priority
from edge_agent.store.journal import Journal
from edge_agent.store.ranges import RangeSet
from edge_agent.store.segments import RecordRef, Segment

log = logging.getLogger("edge_agent.store")

RECENT = 50  # evicted ranges remembered for the health message


class EvictReason(enum.IntEnum):
    """Why a range was not delivered. The values are the tags on disk: never renumber."""

    SIZE = 1  # the size budget (oldest, lowest priority first)
    RETENTION = 2  # older than the channel's retention
    CORRUPT = 3  # unreadable, or missing from the store (lost)
    REJECTED = 4  # dead-lettered: the broker refused it
    SKIPPED = 5  # reserved numbers that may or may not have been handed out (power cut)
    SHREDDED = 6  # sealed with a key that was shredded on purpose (retention, decommission)

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_tag(cls, tag: int) -> EvictReason | None:
        try:
            return cls(tag)
        except ValueError:
            return None


OTHER = "other"  # the label of a tag this version does not know (a newer writer)


class EvictionLedger:
    """The evicted ranges of one store: journal, counts per reason, recent ranges.

    Not thread-safe: the owning store calls it under its lock."""

    def __init__(self, journal: Journal, channel: str) -> None:
        self._journal = journal
        self._channel = channel
        self.ranges = RangeSet()
        self.counts: dict[str, int] = {r.label: 0 for r in EvictReason}
        self.recent: list[tuple[int, int, str]] = []
        self.journal_failures = 0  # entries (or syncs) the disk had no room for
        for a, b, tag in journal.entries():
            self.ranges.add(a, b)
            reason = EvictReason.from_tag(tag)
            label = OTHER if reason is None else reason.label
            self.counts[label] = self.counts.get(label, 0) + b - a + 1

    def record(self, first: int, last: int, reason: EvictReason, sync: bool = True) -> bool:
        """Count and report a range as evicted, and journal it. Returns False when the
        journal could not take it (full disk, I/O error): it is still counted and reported
        now, and a restart finds the numbers missing and reports them (corrupt)."""
        self.ranges.add(first, last)
        self.counts[reason.label] = self.counts.get(reason.label, 0) + last - first + 1
        self.recent.append((first, last, reason.label))
        del self.recent[:-RECENT]
        return self.journal(first, last, reason, sync)

    def journal(self, first: int, last: int, reason: EvictReason, sync: bool) -> bool:
        """Only the journal entry (after an earlier ``record`` could not write it)."""
        try:
            self._journal.append(first, last, int(reason), sync=sync)
        except OSError as exc:
            self.journal_failures += 1
            log.error("store %s: cannot journal eviction of seq %d..%d (%s): %s; reported "
                      "now, and as lost after a restart", self._channel, first, last,
                      reason.label, exc)
            return False
        return True

    def sync(self) -> None:
        try:
            self._journal.sync()
        except OSError as exc:
            self.journal_failures += 1
            log.error("store %s: cannot sync the eviction journal: %s", self._channel, exc)

    def covers(self, first: int, last: int) -> bool:
        return self.ranges.covers(first, last)

    def close(self) -> None:
        self._journal.close()


def size_victim(lanes: dict[Priority, list[Segment]]) -> Segment | None:
    """The segment the size budget evicts next: the oldest of the lowest-priority lane
    that has one. Never an alarm segment."""
    for lane in (Priority.BULK, Priority.NORMAL):
        if lanes[lane]:
            return lanes[lane][0]
    return None


def retention_expired(seg: Segment, cutoff: float) -> bool:
    """Whether every pending record of ``seg`` is older than ``cutoff``. Records taken
    before the clock was set (``oldest`` before CLOCK_FLOOR: their age is unknown) are
    exempt until delivered, and so is a segment holding any of them
    (docs/design/0007-period-keys-damage-and-unsynced-retention.md)."""
    return seg.all_older(cutoff)


def spans(refs: Iterable[RecordRef]) -> list[tuple[int, int]]:
    """Contiguous sequence ranges covered by ``refs`` (sorted by first)."""
    out: list[list[int]] = []
    for r in sorted(refs, key=lambda r: r.first):
        if out and r.first == out[-1][1] + 1:
            out[-1][1] = r.last
        else:
            out.append([r.first, r.last])
    return [(a, b) for a, b in out]

