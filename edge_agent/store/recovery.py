"""Opening a channel store: index what is on disk, repair what is damaged, report what is
lost, and decide where numbering resumes.

- every segment file is scanned (``segments.scan``); a damaged one is cut back to its last
  valid record and kept as evidence in ``quarantine/`` (a hard link); files that are not
  segments are moved there;
- records not covered by the ack or eviction journals become pending again;
- records sealed with a key the keyring knows is gone are reported (shredded or corrupt);
- numbers below the top that no file or journal accounts for are reported as lost
  (``corrupt``), and numbers reserved before an unclean stop as ``skipped``: never reused
  (docs/design/0002-sequence-numbers-never-reused.md).

Runs once, from the store's constructor, before anyone else can see the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.core.model import Channel, Priority
from edge_agent.security.keyring import Keyring
from edge_agent.store import segments
from edge_agent.store.aside import Quarantine
from edge_agent.store.delivery import DeliveryIndex
from edge_agent.store.eviction import EvictionLedger, EvictReason, spans
from edge_agent.store.numbering import HighWater, Numbering, plan
from edge_agent.store.ranges import RangeSet
from edge_agent.store.segments import LANES, RecordRef, Segment, SegmentSet

log = logging.getLogger("edge_agent.store")


@dataclass
class Recovered:
    damaged_segments: int = 0  # segments with unreadable bytes (cut, kept as evidence)


class Recovery:
    def __init__(self, channel: Channel, keys: Keyring, segset: SegmentSet,
                 quarantine: Quarantine, evictions: EvictionLedger, acked: RangeSet,
                 index: DeliveryIndex, event: Callable[[str, str, str], None]) -> None:
        self.channel = channel
        self._keys = keys
        self._segments = segset
        self._quarantine = quarantine
        self._evictions = evictions
        self._acked = acked
        self._index = index
        self._event = event
        self._out = Recovered()

    def run(self, numbers: Numbering, boot: str | None) -> Recovered:
        known = RangeSet()
        found: list[RecordRef] = []
        for lane in LANES:
            self._scan_lane(lane, known, found)
        found.sort(key=lambda r: r.first)
        for ref in found:
            if ref.first not in self._index:
                self._index.add(ref)
        self._drop_lost_keys(found)
        # Every number up to the hint was handed out (it is written after each commit).
        top = max(known.max(), self._acked.max(), self._evictions.ranges.max(),
                  numbers.read_hint())
        resume = plan(self._read_mark(numbers), top, boot)
        # Holes below the top are numbers whose records were lost (corruption, a deleted
        # or truncated file). Report them, never reuse them.
        for a, b in self._holes(known, resume.next_seq - 1 if resume.skipped is None
                                else resume.skipped[0] - 1):
            self._evictions.record(a, b, EvictReason.CORRUPT, sync=False)
            self._event("store", "lost", f"seq {a}..{b} missing from the store (corrupt)")
        if resume.skipped is not None:
            a, b = resume.skipped
            log.warning("store %s: not closed cleanly in an earlier boot (power cut?): "
                        "seq %d..%d were reserved and may have been used; skipped, not "
                        "reused", self.channel.value, a, b)
            self._evictions.record(a, b, EvictReason.SKIPPED, sync=False)
            self._event("store", "skipped", f"seq {a}..{b} reserved before an unclean stop; "
                        "never reused")
        self._evictions.sync()
        numbers.resume(resume)
        return self._out

    def _read_mark(self, numbers: Numbering) -> HighWater:
        try:
            return numbers.read_mark()
        except (ValueError, UnicodeDecodeError) as exc:
            log.error("store %s: %s is unreadable (%s); numbers restart above what the "
                      "segments and journals show", self.channel.value, numbers.hwm_path,
                      exc)
            self._event("store", "damaged", f"{numbers.hwm_path.name}: {exc}")
            return HighWater(0, False, None)

    def _holes(self, known: RangeSet, top: int) -> list[tuple[int, int]]:
        every = RangeSet(known)
        for a, b in self._acked:
            every.add(a, b)
        for a, b in self._evictions.ranges:
            every.add(a, b)
        return every.gaps(1, top) if top else []

    def _scan_lane(self, lane: Priority, known: RangeSet, found: list[RecordRef]) -> None:
        files, strays = segments.segment_files(self._segments.root, lane)
        for path in strays:
            self._quarantine.move(path, "not a segment file")
        for first, path in files:
            seg = Segment(lane, first, path, 0)
            data = path.read_bytes()
            scan = segments.scan(data)
            # a zero tail (a preallocated segment in use when the agent stopped) or damage
            # after the records: cutting needs no free space; damaged bytes go below
            if scan.keep < len(data):
                self._segments.cut(path, scan.keep)
            if scan.damaged:
                self._out.damaged_segments += 1
                self._quarantine.link(path, f"{scan.end - scan.keep} unreadable bytes cut"
                                      if scan.tail_only else "damaged records inside",
                                      tail=data[scan.keep:scan.end])
                # Whether accepted numbers went with the damage is decided in run() from
                # the high-water mark and the seq.last hint, not from where the damage is.
            for off, head in scan.records:
                if head.lane != lane:
                    continue
                known.add(head.first, head.last)
                if not (self._acked.covers(head.first, head.last)
                        or self._evictions.covers(head.first, head.last)):
                    found.append(RecordRef(lane, head.first, head.count, head.oldest, seg,
                                           off, head.size, head.key_id))
            seg.size = scan.keep
            self._segments.adopt(seg)

    def _drop_lost_keys(self, found: list[RecordRef]) -> None:
        """Report the pending records sealed with a key the keyring knows is gone
        (shredded, or its key file damaged): they can never be delivered. The eviction
        journal is synced by run() before any segment file is deleted."""
        by_key: dict[int, list[RecordRef]] = {}
        for r in found:
            if self._index.get(r.first) is r:
                by_key.setdefault(r.key_id, []).append(r)
        for kid in sorted(by_key):
            why = self._keys.lost(kid)
            if why is None:
                continue
            reason = (EvictReason.SHREDDED if why == EvictReason.SHREDDED.label
                      else EvictReason.CORRUPT)
            refs = by_key[kid]
            for r in refs:
                self._index.remove(r.first)
            ranges = spans(refs)
            for a, b in ranges:
                self._evictions.record(a, b, reason, sync=False)
            n = sum(r.count for r in refs)
            shown = ", ".join(f"{a}..{b}" for a, b in ranges[:5])
            more = f" (+{len(ranges) - 5} more ranges)" if len(ranges) > 5 else ""
            log.error("store %s: %d readings sealed with key id %d (%s) cannot be opened; "
                      "reported as %s: seq %s%s", self.channel.value, n, kid, why,
                      reason.label, shown, more)
            self._event("store", "lost" if reason == EvictReason.CORRUPT else "shredded",
                        f"{n} readings sealed with key id {kid} ({why}): seq {shown}{more}")
