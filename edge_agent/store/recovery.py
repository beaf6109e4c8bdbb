"""Opening a channel store: index what is on disk, repair what is damaged, report what is
lost, and decide where numbering resumes — in two steps, so that opening does not take
longer with a larger store (docs/design/0015-startup-and-compact-index.md).

``open`` (from the store's constructor, before anyone else can see the store):

- every segment file is adopted *unscanned*, with its size from stat (the size budget
  counts it at once); files that are not segments are moved to ``quarantine/``;
- of each lane, only the newest segment that holds a valid record is scanned: its last
  record is the lane's highest number, so numbering resumes exactly as after a full scan
  (``numbering.plan``), and numbers reserved before an unclean stop are reported as
  ``skipped``, never reused (docs/design/0002-sequence-numbers-never-reused.md);
- the index holds each lane at its oldest unscanned segment (delivery.py): nothing of a
  lane is leased above it, so a lane is delivered in order while it is being scanned.

Then, one segment at a time (alarm lane first, each lane oldest first), ``scan`` reads and
scans a segment outside the store lock and ``install`` adds it under the lock:

- a damaged segment is cut back to its last valid record and kept as evidence in
  ``quarantine/`` (a hard link);
- records not covered by the ack or eviction journals become pending again;
- records sealed with a key the keyring knows is gone are reported (shredded or corrupt).

``finish``, once every segment is scanned: numbers below the resume point that no file or
journal accounts for are reported as lost (``corrupt``). A crash before that repeats the
scan at the next start; nothing it did before is undone or counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.core.model import Channel
from edge_agent.security.keyring import Keyring
from edge_agent.store import segindex, segments
from edge_agent.store.aside import Quarantine
from edge_agent.store.delivery import DeliveryIndex
from edge_agent.store.eviction import EvictionLedger, EvictReason
from edge_agent.store.numbering import HighWater, Numbering, plan
from edge_agent.store.ranges import RangeSet
from edge_agent.store.segments import LANES, Segment, SegmentSet
from edge_agent.store.table import GONE, RecordTable

log = logging.getLogger("edge_agent.store")

_NO_END = 2**63 - 1


@dataclass
class Recovered:
    damaged_segments: int = 0  # segments with unreadable bytes (cut, kept as evidence)
    indexed_segments: int = 0  # segments read from their index file instead of scanned


@dataclass
class Scanned:
    """One segment's file read and scanned outside the store lock (``Recovery.scan``)."""

    seg: Segment
    length: int  # bytes read
    result: segments.ScanResult
    tail: bytes  # the bytes cut off (evidence), when damaged
    table: RecordTable  # the records neither acknowledged nor evicted
    known: list[tuple[int, int]] = field(default_factory=list)  # every record found
    indexed: bool = False  # read from the segment's index file, not scanned


class Recovery:
    def __init__(self, channel: Channel, keys: Keyring, segset: SegmentSet,
                 quarantine: Quarantine, evictions: EvictionLedger,
                 acked: Callable[[], RangeSet], index: DeliveryIndex,
                 event: Callable[[str, str, str], None]) -> None:
        self.channel = channel
        self._keys = keys
        self._segments = segset
        self._quarantine = quarantine
        self._evictions = evictions
        self._acked = acked  # the ack ledger's ranges (the object is replaced on compaction)
        self._index = index
        self._event = event
        self.out = Recovered()
        self._known = RangeSet()
        self._todo: list[Segment] = []  # not scanned yet, in scan order
        self._hole_top = 0
        # per key id gone: (reason, why, ranges) journaled as evicted, reported by finish
        self._lost: dict[int, tuple[EvictReason, str, RangeSet]] = {}
        self.done = False

    # ------------------------------------------------------------------ before READY

    def open(self, numbers: Numbering, boot: str | None) -> list[Segment]:
        """Adopt every segment unscanned, scan the newest of each lane, resume numbering.
        Returns the segments that turned out empty (the store deletes them)."""
        empty: list[Segment] = []
        for lane in LANES:
            files, strays = segments.segment_files(self._segments.root, lane)
            for path in strays:
                self._quarantine.move(path, "not a segment file")
            found: list[Segment] = []
            for first, path in files:
                seg = Segment(lane, first, path, path.stat().st_size, scanned=False,
                              index=segindex.size(path))
                self._segments.adopt(seg)
                found.append(seg)
            self._todo.extend(found)
            for seg in reversed(found):  # the newest that holds a record: the lane's top
                scanned = self.scan(seg, RangeSet(self._acked()),
                                    RangeSet(self._evictions.ranges))
                self.install(scanned)
                if seg.live == 0:
                    empty.append(seg)
                if scanned.known:
                    break
        # Every number up to the hint was handed out (it is written after each commit).
        top = max(self._known.max(), self._acked().max(), self._evictions.ranges.max(),
                  numbers.read_hint())
        resume = plan(self._read_mark(numbers), top, boot)
        self._hole_top = (resume.next_seq - 1 if resume.skipped is None
                          else resume.skipped[0] - 1)
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
        self._hold()
        return empty

    def _read_mark(self, numbers: Numbering) -> HighWater:
        try:
            return numbers.read_mark()
        except (ValueError, UnicodeDecodeError) as exc:
            log.error("store %s: %s is unreadable (%s); numbers restart above what the "
                      "segments and journals show", self.channel.value, numbers.hwm_path,
                      exc)
            self._event("store", "damaged", f"{numbers.hwm_path.name}: {exc}")
            return HighWater(0, False, None)

    # ------------------------------------------------------------------ after READY

    @property
    def remaining(self) -> int:
        """Segments not scanned yet."""
        return sum(1 for s in self._todo if not s.scanned)

    def next_segment(self) -> Segment | None:
        """The next segment to scan (under the store lock), or None when all are."""
        while self._todo and (self._todo[0].scanned
                              or self._todo[0] not in self._segments.lanes[self._todo[0].lane]):
            self._todo.pop(0)
        return self._todo[0] if self._todo else None

    def snapshot(self, seg: Segment) -> tuple[RangeSet, RangeSet]:
        """(acked, evicted) within ``seg``'s numbers (under the store lock). Valid until
        ``install``: the records of an unscanned segment are never leased, so nothing
        acknowledges or evicts them meanwhile except the eviction of the whole segment,
        which ``install`` notices."""
        nxt = self._next_first(seg)
        return (self._acked().within(seg.first, nxt - 1),
                self._evictions.ranges.within(seg.first, nxt - 1))

    def _next_first(self, seg: Segment) -> int:
        lane = self._segments.lanes[seg.lane]
        later = [s.first for s in lane if s.first > seg.first]
        return min(later) if later else _NO_END

    @staticmethod
    def scan(seg: Segment, acked: RangeSet, evicted: RangeSet) -> Scanned:
        """Read and scan one segment file (no lock: nothing else writes an unscanned file),
        or read its index file when it has an intact one (segindex.py). Raises OSError
        when the file cannot be read."""
        length = seg.path.stat().st_size
        cols = segindex.read(seg.path, length)
        if cols is not None:
            table = RecordTable.of_columns(cols.firsts, cols.counts, cols.offsets, cols.sizes,
                                           cols.oldest, cols.keys)
            found = table.runs()
            for a, b in [*acked, *evicted]:
                table.drop_within(a, b)
            whole = segments.ScanResult(keep=length, end=length)
            return Scanned(seg, length, whole, b"", table, found, indexed=True)
        segindex.remove(seg.path)  # torn, or written for another length: of no use
        data = seg.path.read_bytes()
        result = segments.scan(data)
        table = RecordTable()
        known: list[tuple[int, int]] = []  # merged as they come: records are in order
        rows: list[tuple[int, int, int, int, float, int]] = []
        lane = int(seg.lane)
        gone = RangeSet([*acked, *evicted])  # a record wholly in it is not pending
        last_first = 0
        for off, head in result.records:
            if head.lane != lane:
                continue
            first = head.first
            last = first + head.count - 1
            if known and known[-1][1] + 1 == first:
                known[-1] = (known[-1][0], last)
            else:
                known.append((first, last))
            if first <= last_first:
                continue  # salvaged twice (cannot happen with intact CRCs): keep the first
            last_first = first
            if not (gone and gone.covers(first, last)):
                rows.append((first, head.count, off, head.size, head.oldest, head.key_id))
        table.extend(rows)
        tail = data[result.keep:result.end] if result.damaged else b""
        result.records = []  # a header object per record: the table holds what is needed
        return Scanned(seg, len(data), result, tail, table, known)

    @staticmethod
    def missing(seg: Segment) -> Scanned:
        """What to install for a segment file that is gone (deleted behind the store's
        back): no records; its numbers are reported as lost by ``finish``."""
        return Scanned(seg, 0, segments.ScanResult(), b"", RecordTable())

    def install(self, s: Scanned) -> bool:
        """Add a scanned segment to the store (under the store lock). False when it was
        installed or deleted meanwhile (an eviction scans its victim itself)."""
        seg, result = s.seg, s.result
        if seg.scanned or seg not in self._segments.lanes[seg.lane]:
            return False
        # a zero tail (a segment written in place when the agent stopped) or damage after
        # the records: cutting needs no free space; damaged bytes go below
        if result.keep < s.length:
            self._segments.cut(seg.path, result.keep)
        if s.indexed:
            self.out.indexed_segments += 1
        if result.damaged:
            self.out.damaged_segments += 1
            self._quarantine.link(seg.path, f"{result.end - result.keep} unreadable bytes cut"
                                  if result.tail_only else "damaged records inside",
                                  tail=s.tail)
            # Whether accepted numbers went with the damage is decided from the
            # high-water mark and the seq.last hint (open), and by finish (holes).
        for a, b in s.known:
            self._known.add(a, b)
        self._segments.bytes += result.keep - seg.size
        seg.size = result.keep
        seg.table = s.table
        seg.scanned = True
        self._drop_lost_keys(seg)
        self._index.attach(seg)
        seg.freeze()  # thawed when the drain gets there
        self._hold()
        return True

    def _hold(self) -> None:
        """Hold each lane at its oldest segment not scanned yet."""
        for lane in LANES:
            low = next((s.first for s in self._segments.lanes[lane] if not s.scanned), None)
            self._index.hold(lane, low)

    def finish(self) -> None:
        """Every segment is scanned: report the numbers nothing accounts for (under the
        store lock)."""
        # Holes below the resume point are numbers whose records were lost (corruption, a
        # deleted or truncated file). Report them, never reuse them.
        for a, b in self._holes():
            self._evictions.record(a, b, EvictReason.CORRUPT, sync=False)
            self._event("store", "lost", f"seq {a}..{b} missing from the store (corrupt)")
        self._evictions.sync()
        self._report_lost_keys()
        self._known = RangeSet()
        self.done = True

    def _holes(self) -> list[tuple[int, int]]:
        top = self._hole_top
        every = RangeSet(self._known)
        for a, b in self._acked():
            every.add(a, b)
        for a, b in self._evictions.ranges:
            every.add(a, b)
        return every.gaps(1, top) if top else []

    def _drop_lost_keys(self, seg: Segment) -> None:
        """Drop the pending records sealed with a key the keyring knows is gone (shredded,
        or its key file damaged): they can never be delivered. Journaled as evicted now
        (synced before the segment can be deleted), reported once per key by finish."""
        table = seg.table
        if not table.live:
            return
        for kid in sorted(set(table.keys)):
            why = self._keys.lost(kid)
            if why is None:
                continue
            reason = (EvictReason.SHREDDED if why == EvictReason.SHREDDED.label
                      else EvictReason.CORRUPT)
            gone = RangeSet()
            for i in range(table.lo, len(table)):
                if table.keys[i] == kid and table.state[i] != GONE:
                    gone.add(table.firsts[i], table.last(i))
                    table.drop(i)
            for a, b in gone:
                self._evictions.record(a, b, reason, sync=False)
            kept = self._lost.setdefault(kid, (reason, why, RangeSet()))[2]
            for a, b in gone:
                kept.add(a, b)
        self._evictions.sync()

    def _report_lost_keys(self) -> None:
        for kid in sorted(self._lost):
            reason, why, gone = self._lost[kid]
            ranges = list(gone)
            n = gone.count()
            shown = ", ".join(f"{a}..{b}" for a, b in ranges[:5])
            more = f" (+{len(ranges) - 5} more ranges)" if len(ranges) > 5 else ""
            log.error("store %s: %d readings sealed with key id %d (%s) cannot be opened; "
                      "reported as %s: seq %s%s", self.channel.value, n, kid, why,
                      reason.label, shown, more)
            self._event("store", "lost" if reason == EvictReason.CORRUPT else "shredded",
                        f"{n} readings sealed with key id {kid} ({why}): seq {shown}{more}")
        self._lost.clear()
