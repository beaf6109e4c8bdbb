"""The ack journal of one channel store (``acked.log``): which ranges were delivered.

A delivered record's segment may be deleted only after the journal saying so is synced.
An entry the disk has no room for (a full disk) is kept in memory (``unsaved``) and
written as soon as there is room; until then its segment stays, so a restart resends the
record (at least once) and never reports it lost. The journal is compacted when it grows:
everything below the oldest pending record is settled, so one range stands for it.

Not thread-safe: the owning store calls it under its lock.
"""

from __future__ import annotations

import logging

from edge_agent.store.journal import Journal
from edge_agent.store.ranges import RangeSet
from edge_agent.store.segments import RecordRef

log = logging.getLogger("edge_agent.store")

COMPACT_BYTES = 256 * 1024  # rewrite the journal when it grows past this


class AckLedger:
    def __init__(self, journal: Journal, channel: str) -> None:
        self._journal = journal
        self._channel = channel
        self.ranges = RangeSet((a, b) for a, b, _ in journal.entries())
        self.unsaved: list[RecordRef] = []  # delivered; the journal had no room yet
        self.failures = 0

    def record(self, ref: RecordRef) -> bool:
        """Journal a delivery. False when the disk had no room: kept in ``unsaved``."""
        self.ranges.add(ref.first, ref.last)
        try:
            self._journal.append(ref.first, ref.last)
        except OSError as exc:
            self.failures += 1
            log.warning("store %s: cannot journal the ack of seq %d..%d (%s); kept until "
                        "there is room", self._channel, ref.first, ref.last, exc)
            self.unsaved.append(ref)
            return False
        return True

    def record_run(self, run: tuple[RecordRef, ...]) -> list[RecordRef]:
        """Journal the delivery of records in sequence order (one entry per stretch
        without a gap). Returns the records the disk had no room for (kept in
        ``unsaved``); the others are journaled."""
        stretches: list[list[RecordRef]] = []
        for ref in run:
            if stretches and stretches[-1][-1].last + 1 == ref.first:
                stretches[-1].append(ref)
            else:
                stretches.append([ref])
        for i, part in enumerate(stretches):
            first, last = part[0].first, part[-1].last
            self.ranges.add(first, last)
            try:
                self._journal.append(first, last)
            except OSError as exc:
                self.failures += 1
                log.warning("store %s: cannot journal the ack of seq %d..%d (%s); kept until "
                            "there is room", self._channel, first, last, exc)
                rest = [ref for p in stretches[i:] for ref in p]
                for p in stretches[i + 1:]:
                    self.ranges.add(p[0].first, p[-1].last)
                self.unsaved.extend(rest)
                return rest
        return []

    def save_unsaved(self) -> list[RecordRef]:
        """Journal what the disk had no room for earlier; returns the refs now saved."""
        saved: list[RecordRef] = []
        while self.unsaved:
            ref = self.unsaved[0]
            try:
                self._journal.append(ref.first, ref.last)
            except OSError:
                break
            saved.append(self.unsaved.pop(0))
        return saved

    def maybe_compact(self, floor: int) -> None:
        """Compact once the journal has grown past COMPACT_BYTES."""
        if self._journal.size() > COMPACT_BYTES:
            self.compact(floor)

    def compact(self, floor: int) -> None:
        """``floor``: the lowest pending number (everything below it is settled)."""
        keep = [(1, floor - 1, 0)] if floor > 1 else []
        keep += [(a, b, 0) for a, b in self.ranges if b >= floor]
        try:
            self._journal.rewrite(keep)
        except OSError as exc:  # no room for the new file: the old one stays valid
            log.warning("store %s: cannot compact the ack journal: %s", self._channel, exc)
            return
        self.ranges = RangeSet((a, b) for a, b, _ in keep)

    def sync(self) -> None:
        self._journal.sync()

    def close(self) -> None:
        self._journal.close()
