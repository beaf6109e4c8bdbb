"""Segment files of one channel store: where records live, how they are written, found again
and rolled back.

    <store>/lane-<n>/<first-seq, 20 digits>.seg

A segment is a file of records (``record.py``) of one lane, back to back from offset 0,
followed while it is being written by a *zero tail*: the newest segment of a lane is
*active* (an fd open for writing) and is zero-filled ahead of its records
(``prealloc_step`` at a time, up to ``segment_bytes``), so a commit overwrites blocks that
are already allocated and written: a write at the end of the data + ``fdatasync`` change no
metadata and cost no file-system journal commit (docs/design/0014-preallocated-segments.md).
Such a commit is written with ``O_DIRECT`` as the whole sectors that hold it where the file
system takes that, instead of the whole 4 KiB block the page cache would write
(``sectors.py``, docs/design/0018).
A record never starts with zeros (its magic), so the data ends where only zeros follow.
When the disk has no room for the zeros the segment is written without them (each commit
extends the file, as before 0014). The tail is cut off when the store closes and when a
segment is found on disk, so a segment at rest is its records and nothing else: the same
format as before 0014, which is read as it is.

Older segments are only read, cut back or deleted. A segment is deleted once none of its
records is pending (``Segment.live``).

``scan`` indexes a file's bytes (recovery); ``SegmentSet.write`` writes a batch of records
and syncs, rolling every touched segment back on any failure. Not thread-safe: the owning
store calls it under its lock (``read`` is the exception: it reads a record at a known
offset, behind the end of the data, where accepted bytes are never rewritten).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from edge_agent.core.errors import IncompleteWriteError
from edge_agent.core.fsutil import Write, fsync_dir, no_space, write_all
from edge_agent.core.model import Priority, Reading
from edge_agent.security.keyring import Keyring
from edge_agent.store import record as rec
from edge_agent.store import sectors, segindex
from edge_agent.store.table import LEASED, Frozen, RecordTable

log = logging.getLogger("edge_agent.store")

LANES = tuple(Priority)  # alarm, normal, bulk: the order alarms-first delivery follows
PREALLOC_STEP = 256 * 1024  # zero-filled ahead of the records at a time (at most)
_ZERO_CHUNK = 64 * 1024

Plaintext = tuple[Priority, list[Reading], bytes]  # one record's lane, readings, SenML JSON

_encoder = msgspec.json.Encoder()


@dataclass(eq=False, slots=True)
class Segment:
    lane: Priority
    first: int  # from the file name
    path: Path
    size: int  # end of the records: where the next one is written
    # the pending records in this file (delivery index; table.py): ``table`` below, kept
    # compressed (``cold``) while nothing needs them (``freeze``)
    rows: RecordTable | None = field(default_factory=RecordTable)
    cold: Frozen | None = None
    held: int = 0  # delivered records whose ack the journal could not take yet
    fd: int | None = None  # open for writing while this is the lane's active segment
    alloc: int = 0  # zero-filled up to here (active segments; the file's length)
    prealloc: bool = True  # False once the disk had no room for the zeros
    # False while a file found at open is not scanned yet (its records are unknown, its
    # ``size`` is the file's size from stat): it is kept whatever its table says
    scanned: bool = True
    index: int = 0  # bytes of its index file (segindex.py; written when it is closed)
    dfd: int | None = None  # the active segment's O_DIRECT descriptor (sectors.py)
    tail: bytes = b""  # its records' last bytes since a 4 KiB boundary (sectors.TAIL)

    @property
    def table(self) -> RecordTable:
        """The rows of the pending records (a frozen table is thawed, for good)."""
        rows = self.rows
        if rows is None:
            assert self.cold is not None
            rows = self.rows = RecordTable.thaw(self.cold)
            self.cold = None
        return rows

    @table.setter
    def table(self, rows: RecordTable) -> None:
        self.rows, self.cold = rows, None

    def freeze(self) -> bool:
        """Keep the rows compressed until something needs them: a segment of a backlog
        the drain has not reached costs about 5 bytes a record instead of 31. Only a
        segment closed for writing with nothing in flight (an in-flight record's ref
        points into the rows). False when it stays as it is."""
        rows = self.rows
        if rows is None or self.fd is not None or not rows.live or LEASED in rows.state:
            return False
        self.cold = rows.freeze()
        self.rows = None
        return True

    def view(self) -> RecordTable:
        """The rows, without keeping a frozen table thawed (reports)."""
        if self.rows is not None:
            return self.rows
        assert self.cold is not None
        return RecordTable.thaw(self.cold)

    def first_pending(self) -> int | None:
        if self.cold is not None:
            return self.cold.first_pending
        t = self.table
        return t.firsts[t.lo] if t.live else None

    def min_oldest(self) -> float | None:
        return self.cold.min_oldest if self.cold is not None else self.table.min_oldest()

    def all_older(self, cutoff: float) -> bool:
        return (self.cold.all_older(cutoff) if self.cold is not None
                else self.table.all_older(cutoff))

    @property
    def live(self) -> int:
        """Records that keep the file: pending, or delivered but not yet journaled (and
        every record of a file not scanned yet)."""
        rows, cold = self.rows, self.cold
        n = rows.live if rows is not None else cold.live if cold is not None else 0
        return n + self.held + (0 if self.scanned else 1)

    @property
    def disk(self) -> int:
        """Bytes the segment takes: its records, any zero tail and its index file
        (``max_bytes`` counts them)."""
        return max(self.size, self.alloc) + self.index


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
    key_id: int = 0  # the period key that sealed it


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
        records.append(SealedRecord(lane, seq, len(chunk), oldest, data, key_id))
        seq += len(chunk)
    return records


@dataclass
class ScanResult:
    """What ``scan`` found in a segment file."""

    records: list[tuple[int, rec.RecordHeader]] = field(default_factory=list)  # offset, head
    keep: int = 0  # bytes up to the end of the last valid record
    damaged: bool = False
    tail_only: bool = True  # the damage is only after the last valid record
    end: int = 0  # end of the data: only zeros from here on (a preallocated tail)


def zero_tail(data: bytes | memoryview) -> int:
    """Where the run of zero bytes that ends ``data`` begins (``len(data)``: none)."""
    view = memoryview(data)
    end = len(view)
    zero = bytes(_ZERO_CHUNK)
    while end > 0:
        start = max(0, end - _ZERO_CHUNK)
        if view[start:end] != zero[:end - start]:
            return start + len(bytes(view[start:end]).rstrip(b"\0"))
        end = start
    return 0


def scan(data: bytes) -> ScanResult:
    """Index the valid records of a segment file's bytes.

    The data ends where only zeros follow (``ScanResult.end``): a preallocated tail is not
    damage. An all-zero header with data after it is (as is any header that does not
    parse). A torn record (a header whose record the zeros, or the end of the file, cut
    short) fails its CRC and is damage after the last valid record (``tail_only``),
    exactly as a torn tail at the end of an appended file. Records after a damaged region
    are salvaged (resync on the magic + CRC), so a bit flip loses one record, not the rest
    of the file."""
    out = ScanResult()
    n = len(data)
    nonzero = zero_tail(data)
    records = out.records
    view = memoryview(data)
    unpack, crc32, crc_at = rec.unpack_header, zlib.crc32, rec.CRC.unpack_from  # per record
    head_size, trailer = rec.HEAD_SIZE, rec.TRAILER_SIZE
    off = keep = 0
    damaged = False
    while off < nonzero:  # past it only zeros: the end of the data
        head = unpack(data, off)
        end = off + head_size + head.clen + trailer if head is not None else n + 1
        if head is None or end > n \
                or crc32(view[off:end - trailer]) != crc_at(data, end - trailer)[0]:
            damaged = True  # resync on the next magic (its CRC decides)
            off = data.find(rec.MAGIC, off + 1)
            if off < 0:
                break
            continue
        if damaged:
            out.tail_only = False
        records.append((off, head))
        off = keep = end
    out.keep, out.damaged = keep, damaged
    out.end = max(out.keep, nonzero)
    return out


def lane_dir(root: Path, lane: Priority) -> Path:
    return root / f"lane-{int(lane)}"


def segment_files(root: Path, lane: Priority) -> tuple[list[tuple[int, Path]], list[Path]]:
    """(segment files by first sequence number, other files that do not belong there)."""
    segs: list[tuple[int, Path]] = []
    strays: list[Path] = []
    names = {p.name: p for p in lane_dir(root, lane).iterdir()}
    for p in names.values():
        if p.suffix == ".seg" and p.stem.isdigit():
            segs.append((int(p.stem), p))
        elif not (p.suffix == segindex.SUFFIX and p.stem.isdigit()
                  and p.stem + ".seg" in names):  # an index beside its segment belongs
            strays.append(p)
    segs.sort()
    return segs, strays


def close_fd(seg: Segment) -> None:
    """Stop writing to ``seg``: close its fd (it stays readable by path). Any zero tail
    stays, and stays counted, until the file is deleted (``SegmentSet`` cuts it when it
    closes a segment it keeps)."""
    for fd in (seg.fd, seg.dfd):
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
    seg.fd = seg.dfd = None
    seg.tail = b""


def prealloc_step(segment_bytes: int, max_bytes: int | None = None) -> int:
    """How much is zero-filled ahead at a time: PREALLOC_STEP, at most a quarter of a
    segment and 1/64 of the size budget (three lanes' tails stay a small share of it), in
    whole 4 KiB blocks."""
    step = min(PREALLOC_STEP, segment_bytes // 4)
    if max_bytes is not None:
        step = min(step, max_bytes // 64)
    return max(4096, step // 4096 * 4096)


class SegmentSet:
    """Every segment of one store, per lane, oldest first, and their bytes on disk.

    ``fsync`` makes a new file and its directory entry durable; ``datasync`` a commit
    (the records, and the file's size when a commit extends it: ``fdatasync`` writes the
    metadata needed to read the data back, and nothing else). ``direct``: commits into the
    zero tail are written as whole sectors (``sectors.py``) where the file system takes
    them (``direct_write``: their write, a rig's to inject failures)."""

    def __init__(self, root: Path, segment_bytes: int, fsync: Callable[[int], None],
                 write: Write, datasync: Callable[[int], None] | None = None,
                 step: int | None = None, direct: bool = False,
                 direct_write: sectors.DirectWrite = os.write) -> None:
        self.root = root
        self.segment_bytes = segment_bytes
        # zero-filled ahead at a time; 0: no zero tail (each commit extends the file)
        self.step = prealloc_step(segment_bytes) if step is None else step
        self._fsync = fsync
        self._datasync = datasync or fsync
        self._write = write
        self.sectors = sectors.SectorWriter(root, direct and self.step > 0, direct_write)
        self.lanes: dict[Priority, list[Segment]] = {lane: [] for lane in LANES}
        self.bytes = 0  # every segment's ``disk``: records and zero tails
        self.prealloc_failures = 0  # zero tails the disk had no room for

    def __iter__(self) -> Iterator[Segment]:
        for lane in LANES:
            yield from self.lanes[lane]

    def make_dirs(self) -> None:
        for lane in LANES:
            lane_dir(self.root, lane).mkdir(exist_ok=True, mode=0o700)

    def adopt(self, seg: Segment) -> None:
        """Add a segment found on disk (recovery), after its scan."""
        self.lanes[seg.lane].append(seg)
        self.bytes += seg.disk

    def cut(self, path: Path, keep: int) -> None:
        """Cut a file found on disk back to its last valid record: its zero tail, or damage
        after the records (needs no free space)."""
        with open(path, "r+b") as f:
            f.truncate(keep)
            f.flush()
            self._fsync(f.fileno())

    def remove(self, seg: Segment) -> None:
        """Delete a segment's file (the caller made what makes it removable durable);
        its index file first (an index without its segment would be a stray)."""
        close_fd(seg)
        segindex.remove(seg.path)
        with contextlib.suppress(FileNotFoundError):
            seg.path.unlink()
        with contextlib.suppress(ValueError):
            self.lanes[seg.lane].remove(seg)
        self.bytes -= seg.disk

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

    def growth(self, records: Sequence[SealedRecord]) -> int:
        """By how many bytes ``write(records)`` would grow ``bytes`` (records and the
        zero tail filled ahead of them): what the size budget must make room for."""
        need: dict[Priority, int] = {}
        for r in records:
            need[r.lane] = need.get(r.lane, 0) + len(r.data)
        total = 0
        for lane, n in need.items():
            seg = self._usable(lane)
            if seg is None:
                total += max(n, self._target(0, 0, n))
            else:
                total += max(seg.size + n, self._target(seg.size, seg.alloc, seg.size + n)) \
                    - seg.disk
        return total

    def write(self, records: list[SealedRecord],
              retire: Callable[[Segment], None]) -> list[RecordRef]:
        """Write at the end of each lane's data and sync; on any failure roll every touched
        segment back and re-raise.

        After a failed write or sync a segment is never written again (its page cache
        state is unknown): it is cut back to its last accepted length and a new segment is
        begun. ``retire(seg)``: a full segment was closed for writing (the store deletes it
        when nothing in it is live)."""
        need: dict[Priority, int] = {}
        for r in records:
            need[r.lane] = need.get(r.lane, 0) + len(r.data)
        touched: dict[Priority, tuple[Segment, int]] = {}
        parts: dict[Priority, list[bytes]] = {}
        placed: list[RecordRef] = []
        new_dirs = False
        try:
            for r in records:
                # One segment per lane per batch: a segment is rotated only between
                # batches, so every touched segment is still open for the sync below
                # (segment_bytes is a soft limit, exceeded by at most one batch).
                if r.lane in touched:
                    seg = touched[r.lane][0]
                else:
                    seg, created = self._active(r.lane, r.first, retire)
                    new_dirs |= created
                    touched[r.lane] = (seg, seg.size)
                    parts[r.lane] = []
                    self._fill_ahead(seg, seg.size + need[r.lane])
                parts[r.lane].append(r.data)
                placed.append(RecordRef(r.lane, r.first, r.count, r.oldest, seg, seg.size,
                                        len(r.data), r.key_id))
                self._resize(seg, seg.size + len(r.data), seg.alloc)
            for lane, (seg, size) in touched.items():
                self._put(seg, size, b"".join(parts[lane]))
            for seg, _ in touched.values():
                assert seg.fd is not None
                self._datasync(seg.fd)
            if new_dirs:
                for lane in touched:
                    fsync_dir(lane_dir(self.root, lane))
        except OSError:
            for seg, size in touched.values():
                self._roll_back(seg, size)
            raise
        return placed

    def _put(self, seg: Segment, offset: int, data: bytes) -> None:
        """Write a lane's records of one batch at ``offset``, the end of its data: as whole
        sectors where it can, the rest through the page cache; all of it or an error (a
        short write on a nearly full disk is an error: half a record must never be
        counted as written)."""
        assert seg.fd is not None
        done = 0
        if seg.dfd is not None:
            try:
                done = self.sectors.put(seg.dfd, offset, seg.tail, data, seg.alloc)
            except OSError as exc:
                raise IncompleteWriteError(
                    exc.errno or errno.EIO,
                    f"{seg.path}: direct write at {offset} failed: {exc.strerror}",
                    0) from exc
        if done < len(data):
            os.lseek(seg.fd, offset + done, os.SEEK_SET)
            write_all(seg.fd, data[done:] if done else data, write=self._write,
                      what=seg.path)
        seg.tail = sectors.tail_after(seg.tail, data, offset + len(data))

    def _resize(self, seg: Segment, size: int, alloc: int) -> None:
        before = seg.disk
        seg.size, seg.alloc = size, alloc
        self.bytes += seg.disk - before

    def _target(self, size: int, alloc: int, end: int) -> int:
        """How far to zero-fill a segment whose records will end at ``end``: in whole steps,
        never past ``segment_bytes`` (a batch that crosses it extends the file)."""
        if not self.step or end <= alloc:
            return alloc
        want = -(-end // self.step) * self.step
        return max(alloc, min(want, max(self.segment_bytes, alloc)))

    def _fill_ahead(self, seg: Segment, end: int) -> None:
        """Zero-fill ``seg`` so that records up to ``end`` overwrite written blocks, then
        sync the zeros (once per step: a size change, so a journal commit). No room for
        them (ENOSPC): give the blocks back and write this segment without a tail."""
        if not seg.prealloc:
            return
        target = self._target(seg.size, seg.alloc, end)
        if target <= seg.alloc:
            return
        assert seg.fd is not None
        start = max(seg.alloc, seg.size)
        try:
            os.lseek(seg.fd, start, os.SEEK_SET)
            zero = bytes(_ZERO_CHUNK)
            for off in range(start, target, _ZERO_CHUNK):
                write_all(seg.fd, zero[:min(_ZERO_CHUNK, target - off)], write=self._write,
                          what=seg.path)
            self._datasync(seg.fd)
        except OSError as exc:
            if not no_space(exc):
                raise
            seg.prealloc = False
            self.prealloc_failures += 1
            with contextlib.suppress(OSError):  # shrinking needs no space
                os.ftruncate(seg.fd, start)
            log.warning("store %s: no room to preallocate %s (%s); written without it",
                        self.root.name, seg.path.name, exc)
            return
        self._resize(seg, seg.size, target)

    def _roll_back(self, seg: Segment, size: int) -> None:
        self._resize(seg, size, 0)
        close_fd(seg)
        with contextlib.suppress(OSError):  # needs no space; gives the zero tail back too
            os.truncate(seg.path, size)
        if size == 0:
            with contextlib.suppress(OSError):
                seg.path.unlink()
            self.lanes[seg.lane].remove(seg)

    def _usable(self, lane: Priority) -> Segment | None:
        segs = self.lanes[lane]
        if segs and segs[-1].fd is not None and segs[-1].size < self.segment_bytes:
            return segs[-1]
        return None

    def _active(self, lane: Priority, first: int,
                retire: Callable[[Segment], None]) -> tuple[Segment, bool]:
        seg = self._usable(lane)
        if seg is not None:
            return seg, False
        segs = self.lanes[lane]
        if segs:
            self._close_tail(segs[-1])
            segs[-1].freeze()  # a backlog builds up (nothing in flight): compressed
            retire(segs[-1])
        path = lane_dir(self.root, lane) / f"{first:020d}.seg"
        seg = Segment(lane, first, path, 0)
        seg.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.lanes[lane].append(seg)
        seg.dfd = self.sectors.open(path)
        return seg, True

    def _close_tail(self, seg: Segment) -> None:
        """Stop writing to ``seg``, cut its zero tail off (not synced: a tail found after
        a power cut is cut at the next start) and write its index file (a start then
        reads the index instead of scanning the records)."""
        if seg.fd is None:
            return
        cut = seg.alloc <= seg.size
        if not cut:
            with contextlib.suppress(OSError):
                os.ftruncate(seg.fd, seg.size)
                cut = True
        close_fd(seg)
        self._resize(seg, seg.size, 0)
        if cut and seg.size:
            before = seg.disk
            seg.index = segindex.write(seg.path, seg.table, seg.size)
            self.bytes += seg.disk - before

    def close(self) -> None:
        for seg in self:
            self._close_tail(seg)
        self.sectors.close()
