"""Segment files of one channel store: where records live, how they are written, found again
and rolled back.

    <store>/lane-<n>/<first-seq, 20 digits>.seg

A segment is an append-only file of records (``record.py``) of one lane. The newest segment
of a lane is *active* (an fd open for appending); older ones are only read, cut back or
deleted. A segment is deleted once none of its records is pending (``Segment.live``).

``scan`` indexes a file found on disk (recovery); ``SegmentSet.write`` appends a batch of
records and fsyncs, rolling every touched segment back on any failure. Not thread-safe:
the owning store calls it under its lock (``read`` is the exception: it reads a record at
a known offset of a file that is only ever appended to or cut back behind it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from edge_agent.core.fsutil import Write, fsync_dir, write_all
from edge_agent.core.model import Priority, Reading
from edge_agent.security.keyring import Keyring
from edge_agent.store import record as rec
from edge_agent.store.table import RecordTable

LANES = tuple(Priority)  # alarm, normal, bulk: the order alarms-first delivery follows

Plaintext = tuple[Priority, list[Reading], bytes]  # one record's lane, readings, SenML JSON

_encoder = msgspec.json.Encoder()


@dataclass(eq=False, slots=True)
class Segment:
    lane: Priority
    first: int  # from the file name
    path: Path
    size: int
    # the pending records in this file (delivery index; table.py)
    table: RecordTable = field(default_factory=RecordTable)
    held: int = 0  # delivered records whose ack the journal could not take yet
    fd: int | None = None  # open for append while this is the lane's active segment
    # False while a file found at open is not scanned yet (its records are unknown, its
    # ``size`` is the file's size from stat): it is kept whatever its table says
    scanned: bool = True

    @property
    def live(self) -> int:
        """Records that keep the file: pending, or delivered but not yet journaled (and
        every record of a file not scanned yet)."""
        return self.table.live + self.held + (0 if self.scanned else 1)


@dataclass(eq=False, slots=True)
class RecordRef:
    """Where one pending record is, and what a lease, an ack or a report needs to know
    about it. Made for the records handed out (a bounded window), not kept per pending
    record: the index keeps those in the segment's ``table``."""

    lane: Priority
    first: int
    count: int
    oldest: float  # wall time of the record's oldest reading (retention)
    seg: Segment
    offset: int
    size: int
    key_id: int = 0
    idx: int = -1  # its row in ``seg.table`` (set by the index)

    @property
    def last(self) -> int:
        return self.first + self.count - 1


@dataclass(frozen=True)
class SealedRecord:
    """A record ready to be written: its bytes and what the index keeps of it."""

    lane: Priority
    first: int
    count: int
    oldest: float
    data: bytes


def plaintexts(readings: list[Reading], batch_max: int) -> list[Plaintext]:
    """Readings grouped into records: per lane (alarms first), at most ``batch_max`` each."""
    by_lane: dict[Priority, list[Reading]] = {}
    for r in readings:
        by_lane.setdefault(Priority(r.priority), []).append(r)
    out: list[Plaintext] = []
    for lane in sorted(by_lane):
        rs = by_lane[lane]
        for i in range(0, len(rs), batch_max):
            chunk = rs[i:i + batch_max]
            out.append((lane, chunk, _encoder.encode([r.senml() for r in chunk])))
    return out


def seal(keys: Keyring, channel: str, items: list[Plaintext],
         first_seq: int) -> list[SealedRecord]:
    """Number and seal records, from ``first_seq`` on, each with its period's key."""
    records: list[SealedRecord] = []
    seq = first_seq
    for lane, chunk, pt in items:
        oldest = min(r.time for r in chunk)
        key_id, aead = keys.current(oldest)
        data = rec.seal(aead, channel, int(lane), key_id, seq, len(chunk), oldest, pt)
        records.append(SealedRecord(lane, seq, len(chunk), oldest, data))
        seq += len(chunk)
    return records


@dataclass
class ScanResult:
    """What ``scan`` found in a segment file."""

    records: list[tuple[int, rec.RecordHeader]] = field(default_factory=list)  # offset, head
    keep: int = 0  # bytes up to the end of the last valid record
    damaged: bool = False
    tail_only: bool = True  # the damage is only after the last valid record


def scan(data: bytes) -> ScanResult:
    """Index the valid records of a segment file's bytes.

    Records after a damaged region are salvaged (resync on the magic + CRC), so a bit flip
    loses one record, not the rest of the file."""
    out = ScanResult()
    off, n = 0, len(data)
    view = memoryview(data)
    while off < n:
        try:
            head = rec.parse_header(data[off:off + rec.HEAD_SIZE])
            end = off + head.size
            if end > n:
                raise rec.RecordCorrupt("truncated")
            rec.check_crc(view[off:end])
        except rec.RecordCorrupt:
            out.damaged = True
            nxt = data.find(rec.MAGIC, off + 1)
            if nxt < 0:
                break
            off = nxt
            continue
        if out.damaged:
            out.tail_only = False
        out.records.append((off, head))
        off = end
        out.keep = end
    return out


def lane_dir(root: Path, lane: Priority) -> Path:
    return root / f"lane-{int(lane)}"


def segment_files(root: Path, lane: Priority) -> tuple[list[tuple[int, Path]], list[Path]]:
    """(segment files by first sequence number, other files that do not belong there)."""
    segs: list[tuple[int, Path]] = []
    strays: list[Path] = []
    for p in lane_dir(root, lane).iterdir():
        if p.suffix == ".seg" and p.stem.isdigit():
            segs.append((int(p.stem), p))
        else:
            strays.append(p)
    segs.sort()
    return segs, strays


def close_fd(seg: Segment) -> None:
    """Stop appending to ``seg``: close its fd (it stays readable by path)."""
    if seg.fd is not None:
        with contextlib.suppress(OSError):
            os.close(seg.fd)
        seg.fd = None


class SegmentSet:
    """Every segment of one store, per lane, oldest first, and their bytes on disk."""

    def __init__(self, root: Path, segment_bytes: int, fsync: Callable[[int], None],
                 write: Write) -> None:
        self.root = root
        self.segment_bytes = segment_bytes
        self._fsync = fsync
        self._write = write
        self.lanes: dict[Priority, list[Segment]] = {lane: [] for lane in LANES}
        self.bytes = 0

    def __iter__(self) -> Iterator[Segment]:
        for lane in LANES:
            yield from self.lanes[lane]

    def make_dirs(self) -> None:
        for lane in LANES:
            lane_dir(self.root, lane).mkdir(exist_ok=True, mode=0o700)

    def adopt(self, seg: Segment) -> None:
        """Add a segment found on disk (recovery), after its scan."""
        self.lanes[seg.lane].append(seg)
        self.bytes += seg.size

    def cut(self, path: Path, keep: int) -> None:
        """Cut a file found on disk back to its last valid record (needs no free space)."""
        with open(path, "r+b") as f:
            f.truncate(keep)
            f.flush()
            self._fsync(f.fileno())

    def remove(self, seg: Segment) -> None:
        """Delete a segment's file (the caller made what makes it removable durable)."""
        close_fd(seg)
        with contextlib.suppress(FileNotFoundError):
            seg.path.unlink()
        with contextlib.suppress(ValueError):
            self.lanes[seg.lane].remove(seg)
        self.bytes -= seg.size

    @staticmethod
    def read(ref: RecordRef) -> bytes:
        """A record's bytes (no lock needed: accepted bytes are never rewritten)."""
        fd = os.open(ref.seg.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, ref.size, ref.offset)
        finally:
            os.close(fd)

    @staticmethod
    def read_many(refs: Sequence[RecordRef]) -> list[bytes | OSError]:
        """The bytes of several records, in order: records that lie back to back in one
        file are read with one ``pread``. A read that fails gives its error in place of
        the bytes of every record it covered."""
        out: list[bytes | OSError] = []
        i, n = 0, len(refs)
        while i < n:
            seg, start = refs[i].seg, refs[i].offset
            end, j = start + refs[i].size, i + 1
            while j < n and refs[j].seg is seg and refs[j].offset == end:
                end += refs[j].size
                j += 1
            try:
                fd = os.open(seg.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    blob = os.pread(fd, end - start, start)
                finally:
                    os.close(fd)
            except OSError as exc:
                out.extend([exc] * (j - i))
            else:
                for ref in refs[i:j]:
                    at = ref.offset - start
                    out.append(blob[at:at + ref.size])
            i = j
        return out

    def write(self, records: list[SealedRecord],
              retire: Callable[[Segment], None]) -> list[RecordRef]:
        """Write and fsync; on any failure roll every touched segment back and re-raise.

        After a failed fsync a segment is never written again (its page cache state is
        unknown): it is cut back to its last accepted length and a new segment is begun.
        ``retire(seg)``: a full segment was closed for appending (the store deletes it
        when nothing in it is live)."""
        touched: dict[Priority, tuple[Segment, int]] = {}
        placed: list[RecordRef] = []
        new_dirs = False
        try:
            for r in records:
                # One segment per lane per batch: a segment is rotated only between
                # batches, so every touched segment is still open for the fsync below
                # (segment_bytes is a soft limit, exceeded by at most one batch).
                if r.lane in touched:
                    seg = touched[r.lane][0]
                else:
                    seg, created = self._active(r.lane, r.first, retire)
                    new_dirs |= created
                    touched[r.lane] = (seg, seg.size)
                assert seg.fd is not None
                # all of it or an error (a short write on a nearly full disk is an error:
                # half a record must never be counted as written)
                write_all(seg.fd, r.data, write=self._write, what=seg.path)
                placed.append(RecordRef(r.lane, r.first, r.count, r.oldest, seg, seg.size,
                                        len(r.data)))
                seg.size += len(r.data)
                self.bytes += len(r.data)
            for seg, _ in touched.values():
                assert seg.fd is not None
                self._fsync(seg.fd)
            if new_dirs:
                for lane in touched:
                    fsync_dir(lane_dir(self.root, lane))
        except OSError:
            for seg, size in touched.values():
                self._roll_back(seg, size)
            raise
        return placed

    def _roll_back(self, seg: Segment, size: int) -> None:
        self.bytes -= seg.size - size
        seg.size = size
        close_fd(seg)
        with contextlib.suppress(OSError):
            os.truncate(seg.path, size)
        if size == 0:
            with contextlib.suppress(OSError):
                seg.path.unlink()
            self.lanes[seg.lane].remove(seg)

    def _active(self, lane: Priority, first: int,
                retire: Callable[[Segment], None]) -> tuple[Segment, bool]:
        segs = self.lanes[lane]
        if segs and segs[-1].fd is not None and segs[-1].size < self.segment_bytes:
            return segs[-1], False
        if segs:
            close_fd(segs[-1])
            retire(segs[-1])
        path = lane_dir(self.root, lane) / f"{first:020d}.seg"
        seg = Segment(lane, first, path, 0)
        seg.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.lanes[lane].append(seg)
        return seg, True

    def close(self) -> None:
        for seg in self:
            close_fd(seg)
