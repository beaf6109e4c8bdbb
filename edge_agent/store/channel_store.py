"""One channel's durable store: append-only encrypted segment files per priority lane.

    <root>/<channel>/lane-0/<first-seq>.seg    alarm lane
    <root>/<channel>/lane-1/...                normal lane
    <root>/<channel>/lane-2/...                bulk lane
    <root>/<channel>/acked.log                 delivered ranges (journal)
    <root>/<channel>/evicted.log               ranges dropped by policy or lost, with reason
    <root>/<channel>/seq.hwm                   reserved sequence high-water mark (fsynced)
    <root>/<channel>/seq.last                  last number handed out (a hint, never fsynced)
    <root>/<channel>/quarantine/               files that failed to read (moved or linked,
                                               never copied: a full disk cannot stop it; bounded)
    <root>/<channel>/dead/                     records the broker refused (dead letters, bounded)
    <root>/<channel>/lock                      flock()ed while a ChannelStore has it open

A batch is *accepted* when its records are written and fsynced; only then are its
sequence numbers final and returned. Delivered (acknowledged) ranges go to the ack journal;
a segment file is deleted once every record in it is acknowledged or evicted, after the
journal saying so is synced. See docs/design/0001-store-and-uplink.md.

Every write is complete or fails (edge_agent/core/fsutil.py): a short write is cut back off
the segment and the batch is not accepted. A full disk is a state the store lives in: it
evicts by policy (oldest, lowest priority first; never alarms) until the batch fits,
spends the alarm reserve on alarms, and counts what it still cannot take as not accepted.
A journal entry the disk has no room for is reported in memory and, after a restart, as a
range lost (``corrupt``): never silent, never fatal.

Sequence numbers are never handed out twice, even when the newest accepted record is lost
(a power cut that takes an fsynced write with it, a truncated file): see
docs/design/0002-sequence-numbers-never-reused.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from edge_agent.core.clock import Clock, SystemClock
from edge_agent.core.errors import (
    ChannelMismatchError,
    DurabilityError,
    StoreClosedError,
    StoreError,
    StoreFullError,
)
from edge_agent.core.fsutil import Write, atomic_write, no_space, pwrite_all, write_all
from edge_agent.core.model import CLOCK_FLOOR, Channel, Priority, Reading
from edge_agent.core.ratelog import RateLimitedLog
from edge_agent.security.keyring import Keyring, StaticKeyring
from edge_agent.store import record as rec
from edge_agent.store.aside import AsideArea
from edge_agent.store.bootid import BootIdSource
from edge_agent.store.journal import Journal, fsync_dir
from edge_agent.store.lock import StoreLock
from edge_agent.store.ranges import RangeSet

log = logging.getLogger("edge_agent.store")

# reasons in evicted.log
EVICT_SIZE = 1
EVICT_RETENTION = 2
EVICT_CORRUPT = 3
EVICT_REJECTED = 4  # dead-lettered: the broker refused it
EVICT_SKIPPED = 5  # reserved numbers that may or may not have been handed out (power cut)
EVICT_SHREDDED = 6  # sealed with a key that was shredded on purpose (retention, decommission)
REASONS = {EVICT_SIZE: "size", EVICT_RETENTION: "retention", EVICT_CORRUPT: "corrupt",
           EVICT_REJECTED: "rejected", EVICT_SKIPPED: "skipped", EVICT_SHREDDED: "shredded"}
HWM_STEP = 100_000
RESERVE_BYTES = 1024 * 1024  # kept free for alarms when the disk fills
RESERVE_STEP_MIN = 16 * 1024  # released at least this much at a time
_U64 = struct.Struct("<Q")
_LAST = struct.Struct("<QI")  # seq.last: number, crc32 of the number's 8 bytes
# dead/ and quarantine/ count against max_bytes, each within its share of it
# (docs/design/0009-bounded-dead-letters.md)
DEAD_SHARE = 16  # dead letters: at most 1/16 of max_bytes ...
DEAD_MAX_ENTRIES = 10_000  # ... and at most this many
QUARANTINE_SHARE = 16
QUARANTINE_MAX_FILES = 100
LOG_INTERVAL = 60.0  # at most one log line per cause per minute for per-batch events


def current_boot_id() -> str | None:
    """This boot's id: a process crash keeps it (and the page cache); a power cut does not.
    The kernel's, or under the systemd sandbox the service's runtime marker (bootid.py)."""
    return BootIdSource.from_env()()


@dataclass(frozen=True)
class HighWater:
    """What ``seq.hwm`` says. ``clean``: ``value`` is exactly the last number handed out
    (written by ``close``). Otherwise ``value`` is a reservation made in boot ``boot``
    (``None``: unknown, e.g. a file from an older version): numbers up to it may be in use."""

    value: int
    clean: bool
    boot: str | None

    def render(self) -> str:
        return f"{self.value} clean\n" if self.clean else f"{self.value} reserved {self.boot}\n"

    @classmethod
    def parse(cls, text: str) -> HighWater:
        parts = text.split()
        if not parts:
            return cls(0, False, None)
        value = int(parts[0])  # ValueError for garbage
        if value < 0:
            raise ValueError("negative high-water mark")
        if len(parts) >= 2 and parts[1] == "clean":
            return cls(value, True, None)
        boot = parts[2] if len(parts) >= 3 and parts[1] == "reserved" else None
        return cls(value, False, boot if boot != "None" else None)

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Batch:
    """A stored record handed to the uplink: one message's worth of readings."""

    lane: Priority
    first: int
    last: int
    senml: bytes  # JSON array of RFC 8428 records

    @property
    def count(self) -> int:
        return self.last - self.first + 1


@dataclass
class _Segment:
    lane: int
    first: int  # from the file name
    path: Path
    size: int
    live: int = 0
    fd: int | None = None  # open for append while this is the lane's active segment


@dataclass
class _Ref:
    lane: int
    first: int
    count: int
    oldest: float
    seg: _Segment
    offset: int
    size: int

    @property
    def last(self) -> int:
        return self.first + self.count - 1


@dataclass
class StoreStats:
    channel: str
    next_seq: int
    backlog: dict[str, int]  # readings waiting, per lane label
    backlog_records: int
    bytes_on_disk: int
    inflight_records: int
    oldest_undelivered: float | None
    evicted: dict[str, int]  # readings, per reason
    evicted_recent: list[tuple[int, int, str]] = field(default_factory=list)
    quarantined: int = 0
    dead_letters: int = 0
    accepted: int = 0
    not_accepted: int = 0
    dead_bytes: int = 0  # kept in dead/
    dead_dropped: int = 0  # dead letters deleted (or never kept) to stay within the budget
    dead_dropped_ranges: list[tuple[int, int]] = field(default_factory=list)
    quarantine_bytes: int = 0
    quarantine_dropped: int = 0  # quarantined files deleted (or never kept), same reason


class ChannelStore:
    """Thread-safe. ``append`` from the writer, ``lease``/``ack`` from the uplink."""

    def __init__(self, root: Path, channel: Channel, key: bytes | Keyring, *,
                 max_bytes: int = 256 * 1024**2, segment_bytes: int = 4 * 1024**2,
                 batch_max: int = 500, retention: float | None = None,
                 clock: Clock | None = None, fsync: Callable[[int], None] = os.fsync,
                 key_id: int = 1, reserve_bytes: int = RESERVE_BYTES,
                 on_event: Callable[[str, str, str], None] | None = None,
                 boot_id: str | None = None,
                 boot_source: Callable[[], str | None] = current_boot_id,
                 write: Write = os.write) -> None:
        self.channel = channel
        self._on_event = on_event  # (category, outcome, detail): security event sink
        self.dir = root / channel.value
        self._keys: Keyring = StaticKeyring(key, key_id) if isinstance(key, bytes) else key
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.batch_max = batch_max
        self.retention = retention
        self._clock = clock or SystemClock()
        self._fsync = fsync
        self._write = write  # every write of records and journals (fault rigs inject here)
        self._reserve_bytes = reserve_bytes
        # boot_id: this boot's id as given (rigs); otherwise asked from boot_source
        self._boot = boot_id if boot_id is not None else boot_source()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._closed = False
        self._segments: dict[int, list[_Segment]] = {0: [], 1: [], 2: []}
        self._pending: dict[int, dict[int, _Ref]] = {0: {}, 1: {}, 2: {}}
        self._inflight: set[int] = set()
        self._evicted_recent: list[tuple[int, int, str]] = []
        self._unsaved_acks: list[_Ref] = []  # delivered; the ack journal had no room yet
        self.journal_failures = 0  # journal entries the disk had no room for (reported)
        self._evicted_counts: dict[str, int] = dict.fromkeys(REASONS.values(), 0)
        self.quarantined = 0
        self.dead_letters = 0
        self.accepted = 0
        self.not_accepted = 0
        self._bytes = 0
        self._ratelog = RateLimitedLog(log, self._clock, LOG_INTERVAL)
        # One writer per store: taken before anything is read, repaired or numbered, held
        # until close() (the kernel drops it when the process dies). StoreLockedError if
        # another ChannelStore, in this process or another, has the directory open.
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._dirlock = StoreLock(self.dir)
        try:
            self._open()
        except BaseException:
            self._dirlock.release()
            raise

    # ------------------------------------------------------------------ opening / recovery

    def _open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._dead = AsideArea(self.dir / "dead", self.max_bytes // DEAD_SHARE,
                               DEAD_MAX_ENTRIES, range_of=_dead_letter_range)
        self._quarantined = AsideArea(self.dir / "quarantine",
                                      self.max_bytes // QUARANTINE_SHARE, QUARANTINE_MAX_FILES)
        for lane in range(3):
            (self.dir / f"lane-{lane}").mkdir(exist_ok=True, mode=0o700)
        with contextlib.suppress(OSError):  # made while there is room: moving into it is free
            (self.dir / "quarantine").mkdir(exist_ok=True, mode=0o700)
        self._acks = Journal(self.dir / "acked.log", self._fsync, self._write)
        self._evj = Journal(self.dir / "evicted.log", self._fsync, self._write)
        acked = RangeSet((a, b) for a, b, _ in self._acks.entries())
        evicted = RangeSet()
        for a, b, tag in self._evj.entries():
            evicted.add(a, b)
            self._evicted_counts[REASONS.get(tag, "other")] = (
                self._evicted_counts.get(REASONS.get(tag, "other"), 0) + b - a + 1)
        self._acked = acked
        self._evicted = evicted
        known = RangeSet()
        by_key: dict[int, list[_Ref]] = {}  # pending records per key id
        for lane in range(3):
            self._scan_lane(lane, known, by_key)
        self._drop_lost_keys(by_key)
        hwm = self._read_hwm()
        self._last_fd = os.open(self.dir / "seq.last", os.O_RDWR | os.O_CREAT, 0o600)
        hint = self._read_last()
        # Every number up to ``hint`` was handed out (it is written after each commit).
        top = max(known.max(), acked.max(), evicted.max(), hint)
        # After close() the mark is exact; after a crash in this same boot the page cache
        # survived, so ``hint`` is exact too. Otherwise (a power cut, an unknown boot) the
        # newest accepted records may be gone without a trace: only the reservation bounds
        # what was handed out.
        exact = hwm.clean or (hwm.boot is not None and hwm.boot == self._boot)
        if hwm.clean:
            top = max(top, hwm.value)
        # Holes below the top are numbers whose records were lost (corruption, a deleted
        # or truncated file). Report them, never reuse them.
        for a, b in self._holes(known, top):
            self._record_eviction(a, b, EVICT_CORRUPT, sync=False)
            self._event("store", "lost", f"seq {a}..{b} missing from the store (corrupt)")
        if not exact and hwm.value > top:
            log.warning("store %s: not closed cleanly in an earlier boot (power cut?): "
                        "seq %d..%d were reserved and may have been used; skipped, not "
                        "reused", self.channel.value, top + 1, hwm.value)
            self._record_eviction(top + 1, hwm.value, EVICT_SKIPPED, sync=False)
            self._event("store", "skipped", f"seq {top + 1}..{hwm.value} reserved before an "
                        "unclean stop; never reused")
            top = hwm.value
        self._sync_evictions()
        self.next_seq = top + 1
        # a clean mark is not a reservation: the first commit reserves again
        self._hwm = top if hwm.clean else max(hwm.value, top)
        self._delete_finished()
        self._ensure_reserve()

    def _holes(self, known: RangeSet, top: int) -> list[tuple[int, int]]:
        every = RangeSet(known)
        for a, b in self._acked:
            every.add(a, b)
        for a, b in self._evicted:
            every.add(a, b)
        return every.gaps(1, top) if top else []

    def _scan_lane(self, lane: int, known: RangeSet, by_key: dict[int, list[_Ref]]) -> None:
        ldir = self.dir / f"lane-{lane}"
        segs: list[tuple[int, Path]] = []
        for p in ldir.iterdir():
            if p.suffix == ".seg" and p.stem.isdigit():
                segs.append((int(p.stem), p))
            else:
                self._quarantine(p, "not a segment file")
        segs.sort()
        for first, path in segs:
            seg = _Segment(lane, first, path, 0)
            data = path.read_bytes()
            keep, damaged, tail_only = self._scan_segment(seg, data, known, by_key)
            if keep < len(data):  # cutting needs no free space; the cut bytes go below
                with open(path, "r+b") as f:
                    f.truncate(keep)
                    f.flush()
                    self._fsync(f.fileno())
            if damaged:
                self.quarantined += 1
                self._quarantine(path, f"{len(data) - keep} unreadable bytes cut"
                                 if tail_only else "damaged records inside", copy=True,
                                 tail=data[keep:])
                # Whether accepted numbers went with the damage is decided in _open from
                # the high-water mark and the seq.last hint, not from where the damage is.
            seg.size = keep
            self._bytes += keep
            self._segments[lane].append(seg)

    def _scan_segment(self, seg: _Segment, data: bytes, known: RangeSet,
                      by_key: dict[int, list[_Ref]]) -> tuple[int, bool, bool]:
        """Index valid records. Returns (bytes to keep, damaged, damage only at the tail).

        Records after a damaged region are salvaged (resync on the magic + CRC), so a bit
        flip loses one record, not the rest of the file.
        """
        off = 0
        keep = 0
        damaged = False
        tail_only = True
        n = len(data)
        while off < n:
            try:
                head = rec.parse_header(data[off:off + rec.HEAD_SIZE])
                end = off + head.size
                if end > n:
                    raise rec.RecordCorrupt("truncated")
                rec.check_crc(memoryview(data)[off:end])
            except rec.RecordCorrupt:
                damaged = True
                nxt = data.find(rec.MAGIC, off + 1)
                if nxt < 0:
                    break
                off = nxt
                continue
            if damaged:
                tail_only = False
            if head.lane == seg.lane:
                known.add(head.first, head.last)
                if not (self._acked.covers(head.first, head.last)
                        or self._evicted.covers(head.first, head.last)):
                    ref = _Ref(seg.lane, head.first, head.count, head.oldest, seg, off,
                               head.size)
                    self._pending[seg.lane][head.first] = ref
                    by_key.setdefault(head.key_id, []).append(ref)
                    seg.live += 1
            off = end
            keep = end
        return keep, damaged, tail_only

    def _drop_lost_keys(self, by_key: dict[int, list[_Ref]]) -> None:
        """Report, at open, the pending records sealed with a key the keyring knows is gone
        (shredded, or its key file damaged): they can never be delivered. The eviction
        journal is synced by the caller before any segment file is deleted."""
        for kid in sorted(by_key):
            why = self._keys.lost(kid)
            if why is None:
                continue
            reason = EVICT_SHREDDED if why == REASONS[EVICT_SHREDDED] else EVICT_CORRUPT
            refs = sorted(by_key[kid], key=lambda r: r.first)
            spans: list[list[int]] = []
            for r in refs:
                if spans and r.first == spans[-1][1] + 1:
                    spans[-1][1] = r.last
                else:
                    spans.append([r.first, r.last])
                del self._pending[r.lane][r.first]
                r.seg.live -= 1
            for a, b in spans:
                self._record_eviction(a, b, reason, sync=False)
            n = sum(r.count for r in refs)
            shown = ", ".join(f"{a}..{b}" for a, b in spans[:5])
            more = f" (+{len(spans) - 5} more ranges)" if len(spans) > 5 else ""
            log.error("store %s: %d readings sealed with key id %d (%s) cannot be opened; "
                      "reported as %s: seq %s%s", self.channel.value, n, kid, why,
                      REASONS[reason], shown, more)
            self._event("store", "lost" if reason == EVICT_CORRUPT else "shredded",
                        f"{n} readings sealed with key id {kid} ({why}): seq {shown}{more}")

    def _quarantine(self, path: Path, why: str, copy: bool = False, tail: bytes = b"") -> None:
        """Move ``path`` aside, or with ``copy`` (a segment whose readable records stay in
        use) keep it under a second name: a hard link, so keeping the evidence needs no free
        space and a full disk never stops a start. ``tail``: bytes already cut off the end,
        kept beside it when there is room. Failing to keep evidence is logged, never fatal:
        the damage is reported either way."""
        qdir = self.dir / "quarantine"
        stamp = int(self._clock.time())
        dest = qdir / f"{stamp}-{path.parent.name}-{path.name}"
        area = self._quarantined
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        if not copy:
            self.quarantined += 1
        if not area.fits(size):  # larger than the whole quarantine budget: reported, not kept
            area.not_kept(size)
            if not copy:
                with contextlib.suppress(OSError):
                    path.unlink()
            self._ratelog.log(logging.ERROR, "quarantine", "store %s: %s is unreadable (%s) "
                              "and larger than the quarantine budget (%d bytes); not kept",
                              self.channel.value, path, why, area.max_bytes)
            self._event("store", "quarantined", f"{path.name}: {why} (not kept: too large)")
            return
        area.make_room(size)
        try:
            qdir.mkdir(exist_ok=True, mode=0o700)
            if copy:
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
                              "the same", self.channel.value, path, exc)
            area.added(dest.name.split(".", 1)[0], kept)
        except OSError as exc:
            log.error("store %s: cannot keep %s in quarantine (%s); reported all the same",
                      self.channel.value, path, exc)
        self._ratelog.log(logging.ERROR, "quarantine", "store %s: quarantined %s (%s) -> %s",
                          self.channel.value, path, why, dest)
        self._event("store", "quarantined", f"{path.name}: {why}")

    def _read_hwm(self) -> HighWater:
        path = self.dir / "seq.hwm"
        try:
            return HighWater.parse(path.read_text())
        except FileNotFoundError:
            return HighWater(0, False, None)
        except (ValueError, UnicodeDecodeError) as exc:
            log.error("store %s: %s is unreadable (%s); numbers restart above what the "
                      "segments and journals show", self.channel.value, path, exc)
            self._event("store", "damaged", f"{path.name}: {exc}")
            return HighWater(0, False, None)

    def _write_hwm(self, mark: HighWater) -> None:
        """Replace seq.hwm atomically and durably (tmp, fsync, rename, fsync dir)."""
        atomic_write(self.dir / "seq.hwm", mark.render().encode(), 0o600, fsync=self._fsync,
                     write=self._write)

    def _reserve_seqs(self, upto: int) -> None:
        """Make ``upto`` durable as reserved *before* any number up to it is handed out."""
        if upto <= self._hwm:
            return
        new = upto + HWM_STEP
        self._write_hwm(HighWater(new, False, self._boot))
        self._hwm = new

    def _read_last(self) -> int:
        try:
            data = os.pread(self._last_fd, _LAST.size, 0)
        except OSError:
            return 0
        if len(data) < _LAST.size:
            return 0
        value, crc = _LAST.unpack(data)
        return value if zlib.crc32(_U64.pack(value)) == crc else 0

    def _note_last(self, last: int) -> None:
        """The hint: one small pwrite per commit, no fsync (exact while the page cache
        lives, i.e. across a process crash; a lower bound after a power cut)."""
        with contextlib.suppress(OSError):  # a torn hint fails its CRC: the mark decides
            pwrite_all(self._last_fd, _LAST.pack(last, zlib.crc32(_U64.pack(last))), 0)

    def _ensure_reserve(self) -> None:
        if self._reserve_bytes <= 0:
            return
        path = self.dir / "reserve.bin"
        try:
            if path.exists() and path.stat().st_size >= self._reserve_bytes:
                return
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self._reserve_bytes)
            finally:
                os.close(fd)
        except OSError:
            pass  # no room yet; tried again after space is freed

    def _release_reserve(self) -> bool:
        """Give alarms room: shrink the reserve by a sixteenth (a disk that something
        else keeps filling takes what is freed at once; a step at a time, alarms keep
        the rest). False when nothing is left of it."""
        path = self.dir / "reserve.bin"
        try:
            size = path.stat().st_size
            left = max(0, size - max(RESERVE_STEP_MIN, self._reserve_bytes // 16))
            if left:
                os.truncate(path, left)
            else:
                path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("store %s: cannot release the alarm reserve: %s", self.channel.value,
                      exc)
            return False
        log.warning("store %s: disk full, alarm reserve down to %d bytes", self.channel.value,
                    left)
        return True

    # ------------------------------------------------------------------ writing

    def append(self, readings: list[Reading], *, final: bool = True) -> list[tuple[int, int]]:
        """Accept readings: write, fsync, and return the assigned sequence ranges.

        Raises ChannelMismatchError (nothing written), StoreFullError or DurabilityError
        (the batch was not accepted; nothing of it will be delivered). A failed batch is
        counted in ``not_accepted`` unless ``final`` is False: a caller that will retry
        it counts it itself (``note_not_accepted``) once it gives up, so that a reading
        is counted once however many attempts it took.
        """
        if not readings:
            return []
        for r in readings:
            if r.channel is not self.channel:
                raise ChannelMismatchError(
                    f"reading from {r.sensor!r} is bound to channel {r.channel.value!r}, "
                    f"not {self.channel.value!r}")
        by_lane: dict[int, list[Reading]] = {}
        for r in readings:
            by_lane.setdefault(int(r.priority), []).append(r)
        plaintexts: list[tuple[int, list[Reading], bytes]] = []
        for lane in sorted(by_lane):
            rs = by_lane[lane]
            for i in range(0, len(rs), self.batch_max):
                chunk = rs[i:i + self.batch_max]
                plaintexts.append((lane, chunk, _encoder.encode([r.senml() for r in chunk])))
        with self._cond:
            if self._closed:
                raise StoreClosedError("store is closed")
            try:
                ranges = self._write_locked(plaintexts)
            except StoreError:  # StoreFullError, DurabilityError; nothing of it is accepted
                if final:
                    self.not_accepted += len(readings)
                raise
            self.accepted += len(readings)
            self._cond.notify_all()
            return ranges

    def note_not_accepted(self, count: int) -> None:
        """Count readings a caller finally gave up on (after ``append(..., final=False)``)."""
        with self._cond:
            self.not_accepted += count

    def _write_locked(self, items: list[tuple[int, list[Reading], bytes]]) -> list[tuple[int, int]]:
        """Reserve, seal, make room, write. Every OSError on the way ends as StoreFullError
        (no space, even after evicting by policy) or DurabilityError: the caller's thread
        never dies of a full disk, and no number is handed out for a batch not written."""
        total = sum(len(c) for _, c, _ in items)
        first_seq = self.next_seq
        lane = min(lane for lane, _, _ in items)
        records: list[tuple[int, int, int, float, bytes]] | None = None
        attempts = 0
        while True:
            try:
                # the reservation (seq.hwm) and a new period key are small files written
                # here too: a full disk meets them as it meets the records
                self._reserve_seqs(first_seq + total - 1)
                if records is None:
                    records = self._seal_records(items, first_seq)
                    self._make_room(sum(len(r[4]) for r in records), lane)
                placed = self._write_records(records)
                break
            except OSError as exc:
                attempts += 1
                if not no_space(exc):
                    raise DurabilityError(
                        f"store {self.channel.value}: write/fsync failed: {exc}") from exc
                if attempts < 50 and (self._evict_one() or (
                        lane == Priority.ALARM and self._release_reserve())):
                    continue
                raise StoreFullError(f"store {self.channel.value}: disk full and nothing "
                                     f"left to evict ({exc})") from exc
        for ref in placed:
            self._pending[ref.lane][ref.first] = ref
            ref.seg.live += 1
        self.next_seq = first_seq + total
        self._note_last(self.next_seq - 1)
        return [(r.first, r.last) for r in placed]

    def _seal_records(self, items: list[tuple[int, list[Reading], bytes]],
                      first_seq: int) -> list[tuple[int, int, int, float, bytes]]:
        records: list[tuple[int, int, int, float, bytes]] = []
        seq = first_seq
        for lane, chunk, pt in items:
            oldest = min(r.time for r in chunk)
            key_id, aead = self._keys.current(oldest)
            data = rec.seal(aead, self.channel.value, lane, key_id, seq,
                            len(chunk), oldest, pt)
            records.append((lane, seq, len(chunk), oldest, data))
            seq += len(chunk)
        return records

    def _write_records(self, records: list[tuple[int, int, int, float, bytes]]) -> list[_Ref]:
        """Write and fsync; on any failure roll every touched segment back and re-raise.

        After a failed fsync a segment is never written again (its page cache state is
        unknown): it is cut back to its last accepted length and a new segment is begun.
        """
        touched: dict[int, tuple[_Segment, int]] = {}
        placed: list[_Ref] = []
        new_dirs = False
        try:
            for lane, first, count, oldest, data in records:
                # One segment per lane per batch: a segment is rotated only between
                # batches, so every touched segment is still open for the fsync below
                # (segment_bytes is a soft limit, exceeded by at most one batch).
                if lane in touched:
                    seg = touched[lane][0]
                else:
                    seg, created = self._active(lane, first)
                    new_dirs |= created
                    touched[lane] = (seg, seg.size)
                assert seg.fd is not None
                # all of it or an error (a short write on a nearly full disk is an error:
                # half a record must never be counted as written)
                write_all(seg.fd, data, write=self._write, what=seg.path)
                placed.append(_Ref(lane, first, count, oldest, seg, seg.size, len(data)))
                seg.size += len(data)
                self._bytes += len(data)
            for seg, _ in touched.values():
                assert seg.fd is not None
                self._fsync(seg.fd)
            if new_dirs:
                for lane in touched:
                    fsync_dir(self.dir / f"lane-{lane}")
        except OSError:
            for seg, size in touched.values():
                self._bytes -= seg.size - size
                seg.size = size
                self._seal(seg)
                with contextlib.suppress(OSError):
                    os.truncate(seg.path, size)
                if size == 0:
                    with contextlib.suppress(OSError):
                        seg.path.unlink()
                    self._segments[seg.lane].remove(seg)
            raise
        return placed

    def _active(self, lane: int, first: int) -> tuple[_Segment, bool]:
        segs = self._segments[lane]
        if segs and segs[-1].fd is not None and segs[-1].size < self.segment_bytes:
            return segs[-1], False
        if segs:
            self._seal(segs[-1])
            if segs[-1].live == 0:
                self._delete_segment(segs[-1])
        path = self.dir / f"lane-{lane}" / f"{first:020d}.seg"
        seg = _Segment(lane, first, path, 0)
        seg.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segments[lane].append(seg)
        return seg, True

    def _seal(self, seg: _Segment) -> None:
        if seg.fd is not None:
            with contextlib.suppress(OSError):
                os.close(seg.fd)
            seg.fd = None

    # ------------------------------------------------------------------ eviction

    def _make_room(self, need: int, lane: int) -> None:
        """dead/ and quarantine/ count against the budget: the oldest dead letters (copies
        of readings already reported as rejected) go before any undelivered reading."""
        while self._bytes + self._dead.bytes + self._quarantined.bytes + need > self.max_bytes:
            if self._dead.drop_oldest():
                continue
            if not self._evict_one():
                if lane == Priority.ALARM:
                    return  # alarms are accepted over budget; they are never evicted
                raise StoreFullError(
                    f"store {self.channel.value}: the size budget ({self.max_bytes} bytes) "
                    "is taken by alarms; batch not accepted")

    def _evict_one(self) -> bool:
        """Evict the oldest segment of the lowest-priority lane. Never alarms."""
        for lane in (Priority.BULK, Priority.NORMAL):
            segs = self._segments[lane]
            if segs:
                self._evict_segment(segs[0], EVICT_SIZE)
                return True
        return False

    def _evict_segment(self, seg: _Segment, reason: int) -> None:
        refs = sorted((r for r in self._pending[seg.lane].values() if r.seg is seg),
                      key=lambda r: r.first)
        unsaved = []
        for r in refs:
            if not self._record_eviction(r.first, r.last, reason, sync=False):
                unsaved.append(r)
            del self._pending[seg.lane][r.first]
            self._inflight.discard(r.first)
        self._sync_evictions()
        if refs:
            log.warning("store %s: evicted %d readings (%s) from lane %d: seq %d..%d",
                        self.channel.value, sum(r.count for r in refs), REASONS[reason],
                        seg.lane, refs[0].first, refs[-1].last)
            self._event("store", "evicted", f"{sum(r.count for r in refs)} readings "
                        f"({REASONS[reason]}) seq {refs[0].first}..{refs[-1].last}")
        seg.live = 0
        self._delete_segment(seg)
        # The disk had no room for these entries: the segment is gone now, so try again
        # (if this fails too, a restart reports the range as lost: corrupt, not silent).
        for r in unsaved:
            self._journal_eviction(r.first, r.last, reason, sync=False)
        self._sync_evictions()
        self._save_acks()

    def _record_eviction(self, first: int, last: int, reason: int, sync: bool = True) -> bool:
        """Count and report a range as evicted, and journal it. Returns False when the
        journal could not take it (full disk, I/O error): it is still counted and reported
        now, and a restart finds the numbers missing and reports them (corrupt)."""
        self._evicted.add(first, last)
        label = REASONS[reason]
        self._evicted_counts[label] = self._evicted_counts.get(label, 0) + last - first + 1
        self._evicted_recent.append((first, last, label))
        del self._evicted_recent[:-50]
        return self._journal_eviction(first, last, reason, sync)

    def _journal_eviction(self, first: int, last: int, reason: int, sync: bool) -> bool:
        try:
            self._evj.append(first, last, reason, sync=sync)
        except OSError as exc:
            self.journal_failures += 1
            log.error("store %s: cannot journal eviction of seq %d..%d (%s): %s; reported "
                      "now, and as lost after a restart", self.channel.value, first, last,
                      REASONS[reason], exc)
            return False
        return True

    def _sync_evictions(self) -> None:
        try:
            self._evj.sync()
        except OSError as exc:
            self.journal_failures += 1
            log.error("store %s: cannot sync the eviction journal: %s", self.channel.value,
                      exc)

    def _delete_segment(self, seg: _Segment) -> None:
        self._seal(seg)
        self._acks.sync()  # the acks that make this file removable are durable first
        with contextlib.suppress(FileNotFoundError):
            seg.path.unlink()
        with contextlib.suppress(ValueError):
            self._segments[seg.lane].remove(seg)
        self._bytes -= seg.size
        self._ensure_reserve()

    def _delete_finished(self) -> None:
        for lane in range(3):
            for seg in list(self._segments[lane]):
                if seg.live == 0:
                    self._delete_segment(seg)

    def enforce_retention(self) -> int:
        """Evict segments whose newest batch is older than ``retention``. Returns readings.

        Readings taken before the clock was set (``oldest`` before CLOCK_FLOOR: their age
        is unknown) are exempt until delivered, and so is a segment holding any of them;
        nothing is evicted while the clock itself is unset. Only the size budget bounds
        them (docs/design/0007-period-keys-damage-and-unsynced-retention.md)."""
        if self.retention is None:
            return 0
        now = self._clock.time()
        if now < CLOCK_FLOOR:
            return 0
        cutoff = now - self.retention
        evicted = 0
        with self._cond:
            for lane in range(3):
                for seg in list(self._segments[lane]):
                    refs = [r for r in self._pending[lane].values() if r.seg is seg]
                    if refs and all(r.oldest >= CLOCK_FLOOR for r in refs) \
                            and max(r.oldest for r in refs) < cutoff:
                        evicted += sum(r.count for r in refs)
                        self._evict_segment(seg, EVICT_RETENTION)
        return evicted

    # ------------------------------------------------------------------ reading / delivery

    def lease(self, max_records: int, lanes: Iterable[int] = (0, 1, 2)) -> list[Batch]:
        """Up to ``max_records`` undelivered batches not already in flight, alarms first."""
        out: list[Batch] = []
        with self._cond:
            if self._closed:
                raise StoreClosedError("store is closed")
            for lane in sorted(lanes):
                for first, ref in list(self._pending[lane].items()):
                    if len(out) >= max_records:
                        return out
                    if first in self._inflight:
                        continue
                    batch = self._read(ref)
                    if batch is not None:
                        self._inflight.add(first)
                        out.append(batch)
        return out

    def _read(self, ref: _Ref) -> Batch | None:
        try:
            with open(ref.seg.path, "rb") as f:
                f.seek(ref.offset)
                data = f.read(ref.size)
            head, pt = rec.open_record(self._keys, self.channel.value, data)
            if head.first != ref.first or head.lane != ref.lane:
                raise rec.RecordCorrupt("record moved")
        except (OSError, rec.RecordCorrupt, rec.RecordUnreadable) as exc:
            if isinstance(exc, rec.RecordUnreadable) and self._shredded(data):
                log.warning("store %s: record seq %d..%d sealed with a shredded key; "
                            "reported as lost (shredded)", self.channel.value, ref.first,
                            ref.last)
                self._drop(ref, EVICT_SHREDDED)
                self._event("store", "shredded", f"seq {ref.first}..{ref.last}")
                return None
            log.error("store %s: record seq %d..%d unreadable (%s); reported as lost",
                      self.channel.value, ref.first, ref.last, exc)
            self.quarantined += 1
            self._drop(ref, EVICT_CORRUPT)
            self._event("store", "lost", f"seq {ref.first}..{ref.last} unreadable: {exc}")
            return None
        return Batch(Priority(ref.lane), ref.first, ref.last, pt)

    def _shredded(self, record: bytes) -> bool:
        return self._keys.lost(rec.parse_header(record).key_id) == REASONS[EVICT_SHREDDED]

    def _event(self, category: str, outcome: str, detail: str) -> None:
        if self._on_event is not None:
            self._on_event(category, outcome, detail)

    def _drop(self, ref: _Ref, reason: int) -> None:
        self._record_eviction(ref.first, ref.last, reason)
        self._forget(ref)

    def _forget(self, ref: _Ref) -> None:
        self._pending[ref.lane].pop(ref.first, None)
        self._inflight.discard(ref.first)
        ref.seg.live -= 1
        if ref.seg.live == 0 and ref.seg.fd is None:
            self._delete_segment(ref.seg)

    def _find(self, first: int) -> _Ref | None:
        for lane in range(3):
            ref = self._pending[lane].get(first)
            if ref is not None:
                return ref
        return None

    def ack(self, first: int) -> bool:
        """The batch starting at ``first`` was delivered. Returns False if unknown."""
        with self._cond:
            ref = self._find(first)
            if ref is None:
                return False
            self._save_acks()
            self._acked.add(ref.first, ref.last)
            try:
                self._acks.append(ref.first, ref.last)
            except OSError as exc:
                # Delivered, but the journal has no room to say so (a full disk): not sent
                # again in this run; its segment stays until the entry is written, so a
                # restart before that resends it (at least once), never reports it lost.
                self.journal_failures += 1
                log.warning("store %s: cannot journal the ack of seq %d..%d (%s); kept "
                            "until there is room", self.channel.value, ref.first, ref.last,
                            exc)
                self._pending[ref.lane].pop(ref.first, None)
                self._inflight.discard(ref.first)
                self._unsaved_acks.append(ref)
                return True
            self._forget(ref)
            if self._acks.size() > 256 * 1024:
                self._compact_acks()
            return True

    def _save_acks(self) -> None:
        """Journal acks the disk had no room for earlier; release their segments."""
        while self._unsaved_acks:
            ref = self._unsaved_acks[0]
            try:
                self._acks.append(ref.first, ref.last)
            except OSError:
                return
            self._unsaved_acks.pop(0)
            ref.seg.live -= 1
            if (ref.seg.live == 0 and ref.seg.fd is None
                    and ref.seg in self._segments[ref.lane]):
                self._delete_segment(ref.seg)

    def reject(self, first: int, why: str) -> bool:
        """The broker refused the batch: keep a copy in dead/, report it, stop retrying."""
        with self._cond:
            ref = self._find(first)
            if ref is None:
                return False
            self._keep_dead_letter(ref, why)
            self.dead_letters += 1
            self._ratelog.log(logging.ERROR, "rejected", "store %s: broker refused seq %d..%d "
                              "(%s); moved to dead letters", self.channel.value, ref.first,
                              ref.last, why)
            self._drop(ref, EVICT_REJECTED)
            return True

    def _keep_dead_letter(self, ref: _Ref, why: str) -> None:
        """A copy in dead/, within the dead letters' share of the budget (oldest go first)."""
        area, seq = self._dead, (ref.first, ref.last)
        note = (why + "\n").encode()
        size = ref.size + len(note)
        if not area.fits(size):
            area.not_kept(size, seq)
            return
        area.make_room(size)
        ddir = self.dir / "dead"
        paths = [ddir / f"{ref.first:020d}.rec", ddir / f"{ref.first:020d}.why"]
        try:
            ddir.mkdir(exist_ok=True, mode=0o700)
            with open(ref.seg.path, "rb") as f:
                f.seek(ref.offset)
                data = f.read(ref.size)
            atomic_write(paths[0], data, 0o600)
            atomic_write(paths[1], note, 0o600)
        except OSError as exc:
            for p in paths:
                with contextlib.suppress(OSError):
                    p.unlink()
            area.not_kept(size, seq)
            self._ratelog.log(logging.ERROR, "dead-letter", "store %s: cannot keep dead "
                              "letter %d: %s", self.channel.value, ref.first, exc)
            return
        area.added(f"{ref.first:020d}", paths, seq)

    def flush_log(self) -> None:
        """Write the counts of log lines held back by the rate limit (call periodically)."""
        self._ratelog.flush()

    def release(self, firsts: Iterable[int] | None = None) -> None:
        """Return in-flight batches to the queue (connection lost before PUBACK)."""
        with self._cond:
            if firsts is None:
                self._inflight.clear()
            else:
                self._inflight.difference_update(firsts)
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        """Block until data may be available (append or release) or ``timeout`` passes."""
        with self._cond:
            if not self._closed and not self._has_unleased():
                self._cond.wait(timeout)

    def _has_unleased(self) -> bool:
        return any(f not in self._inflight for lane in range(3) for f in self._pending[lane])

    def _compact_acks(self) -> None:
        """Rewrite the ack journal: everything below the oldest pending batch is settled
        (delivered, evicted or reported lost), so one range stands for it."""
        floor = min((f for lane in range(3) for f in self._pending[lane]), default=self.next_seq)
        keep = [(1, floor - 1, 0)] if floor > 1 else []
        keep += [(a, b, 0) for a, b in self._acked if b >= floor]
        try:
            self._acks.rewrite(keep)
        except OSError as exc:  # no room for the new file: the old one stays valid
            log.warning("store %s: cannot compact the ack journal: %s", self.channel.value,
                        exc)

    # ------------------------------------------------------------------ reporting / closing

    def stats(self) -> StoreStats:
        with self._cond:
            dead, quarantine = self._dead.stats(), self._quarantined.stats()
            oldest = min((r.oldest for lane in range(3) for r in self._pending[lane].values()),
                         default=None)
            return StoreStats(
                channel=self.channel.value,
                next_seq=self.next_seq,
                backlog={Priority(lane).label: sum(r.count for r in self._pending[lane].values())
                         for lane in range(3)},
                backlog_records=sum(len(self._pending[lane]) for lane in range(3)),
                bytes_on_disk=self._bytes,
                inflight_records=len(self._inflight),
                oldest_undelivered=oldest,
                evicted=dict(self._evicted_counts),
                evicted_recent=list(self._evicted_recent),
                quarantined=self.quarantined,
                dead_letters=self.dead_letters,
                accepted=self.accepted,
                not_accepted=self.not_accepted,
                dead_bytes=dead.bytes,
                dead_dropped=dead.dropped,
                dead_dropped_ranges=dead.dropped_ranges,
                quarantine_bytes=quarantine.bytes,
                quarantine_dropped=quarantine.dropped,
            )

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            for lane in range(3):
                for seg in self._segments[lane]:
                    self._seal(seg)
            self._acks.close()
            self._evj.close()
            # Exactly the last number handed out: the next start needs to skip nothing.
            # If this cannot be written (full disk) the reservation stays, which is safe.
            try:
                self._write_hwm(HighWater(self.next_seq - 1, True, None))
            except OSError as exc:
                log.warning("store %s: cannot mark a clean close (%s)", self.channel.value,
                            exc)
            with contextlib.suppress(OSError):
                os.close(self._last_fd)
            self._dirlock.release()  # last: everything above is written by its owner
            self._cond.notify_all()


def _dead_letter_range(paths: list[Path]) -> tuple[int, int] | None:
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
