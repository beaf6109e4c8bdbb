"""One channel's durable store: the facade over the parts of ``edge_agent.store`` (the
on-disk layout, and what accepted means on a full disk, are in the package's docstring).

Its lock makes the parts one transaction, and it decides what happens when (recovery.py at
open and after, commit, delivery, eviction, close). Opening costs the same whatever the
store holds: the segments found are scanned afterwards by ``recover`` (the agent runs it on
a thread of its own), and until then each lane is delivered only up to its oldest segment
not scanned yet, so its order is kept (docs/design/0015-startup-and-compact-index.md).
``lease`` costs what it returns, whatever the backlog (delivery.py), and reads and decrypts
outside the store lock (runs.py): an alarm commit never waits behind a drain.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from edge_agent.core.clock import Clock, SystemClock
from edge_agent.core.errors import (
    ChannelMismatchError,
    DurabilityError,
    StoreClosedError,
    StoreError,
    StoreFullError,
)
from edge_agent.core.fsutil import Write, no_space
from edge_agent.core.model import CLOCK_FLOOR, Channel, Priority, Reading
from edge_agent.core.mounts import on_volatile_fs
from edge_agent.core.ratelog import RateLimitedLog
from edge_agent.security.keyring import Keyring, StaticKeyring
from edge_agent.store import identity, segments
from edge_agent.store import record as rec
from edge_agent.store.acks import AckLedger
from edge_agent.store.aside import (
    DEAD_MAX_ENTRIES,
    DEAD_SHARE,
    QUARANTINE_MAX_FILES,
    QUARANTINE_SHARE,
    AsideArea,
    DeadLetters,
    Quarantine,
    dead_letter_range,
)
from edge_agent.store.delivery import DeliveryIndex
from edge_agent.store.eviction import EvictionLedger, EvictReason, retention_expired, size_victim
from edge_agent.store.journal import Journal
from edge_agent.store.lock import StoreLock
from edge_agent.store.numbering import HWM_STEP, HighWater, Numbering, current_boot_id
from edge_agent.store.ranges import RangeSet
from edge_agent.store.recovery import Recovery, Scanned
from edge_agent.store.reserve import RESERVE_BYTES, AlarmReserve
from edge_agent.store.runs import RUN_BYTES, open_runs
from edge_agent.store.segments import LANES, RecordRef, SealedRecord, Segment, SegmentSet
from edge_agent.store.stats import Batch, StoreStats

__all__ = ["HWM_STEP", "LOG_INTERVAL", "RESERVE_BYTES", "Batch", "ChannelStore", "EvictReason",
           "HighWater", "StoreStats", "current_boot_id"]

log = logging.getLogger("edge_agent.store")

LOG_INTERVAL = 60.0  # at most one log line per cause per minute for per-batch events

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
                 write: Write = os.write,
                 datasync: Callable[[int], None] | None = None,
                 recover_later: bool = False, direct: bool | None = None,
                 hint_dir: Path | None = None) -> None:
        """``recover_later``: open without scanning the older segments; the caller then
        runs ``recover`` (on a thread of its own). Otherwise they are scanned here.
        ``direct``: commits written as whole sectors (``sectors.py``); None: unless the
        store is on a tmpfs, where it would save nothing, or a rig injected ``write``
        (which then sees every byte of the records). ``hint_dir``: where the sequence
        hint lives, the service's runtime directory (``numbering.py``); None: the store
        directory."""
        self.channel = channel
        self._on_event = on_event  # (category, outcome, detail): security event sink
        self.dir = root / channel.value
        self._keys: Keyring = StaticKeyring(key, key_id) if isinstance(key, bytes) else key
        self.max_bytes = max_bytes
        self.batch_max = batch_max
        self.retention = retention
        self._clock = clock or SystemClock()
        self._fsync = fsync
        # a commit of records: fdatasync (docs/design/0014), unless a rig injected fsync
        self._datasync = datasync or (os.fdatasync if fsync is os.fsync else fsync)
        self._write = write  # every write of records and journals (fault rigs inject here)
        # boot_id: this boot's id as given (rigs); otherwise asked from boot_source
        self._boot = boot_id if boot_id is not None else boot_source()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._closed = False
        self._index = DeliveryIndex()
        # leased runs of more than one record, by their first seq: acked, released or
        # rejected as one (one message)
        self._runs: dict[int, tuple[RecordRef, ...]] = {}
        self.unreadable_records = 0
        self._evidence: set[Path] = set()  # segments kept as evidence of a damaged record
        self.damaged_segments = 0
        self.accepted = 0
        self.not_accepted = 0
        self._ratelog = RateLimitedLog(log, self._clock, LOG_INTERVAL)
        # One writer per store: taken before anything is read, repaired or numbered, held
        # until close() (the kernel drops it when the process dies). StoreLockedError if
        # another ChannelStore, in this process or another, has the directory open.
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._dirlock = StoreLock(self.dir)
        try:
            self._open(segment_bytes, reserve_bytes, direct, hint_dir)
            if not recover_later:
                self.recover()
        except BaseException:
            self._dirlock.release()
            raise

    # ------------------------------------------------------------------ opening / recovery

    def _open(self, segment_bytes: int, reserve_bytes: int, direct: bool | None,
              hint_dir: Path | None) -> None:
        ch = self.channel.value
        if direct is None:
            direct = self._write is os.write and not on_volatile_fs(self.dir)
        self._segments = SegmentSet(self.dir, segment_bytes, self._fsync, self._write,
                                    self._datasync,
                                    segments.prealloc_step(segment_bytes, self.max_bytes),
                                    direct)
        self._segments.make_dirs()
        self._dead = DeadLetters(AsideArea(self.dir / "dead", self.max_bytes // DEAD_SHARE,
                                           DEAD_MAX_ENTRIES, range_of=dead_letter_range),
                                 ch, self._ratelog)
        self._quarantine = Quarantine(
            AsideArea(self.dir / "quarantine", self.max_bytes // QUARANTINE_SHARE,
                      QUARANTINE_MAX_FILES),
            ch, self._clock, self._ratelog, self._event, self._fsync, self._write)
        with contextlib.suppress(OSError):  # made while there is room: moving into it is free
            (self.dir / "quarantine").mkdir(exist_ok=True, mode=0o700)
        self._reserve = AlarmReserve(self.dir / "reserve.bin", reserve_bytes, ch)
        self._acks = AckLedger(Journal(self.dir / "acked.log", self._fsync, self._write), ch)
        self._evictions = EvictionLedger(Journal(self.dir / "evicted.log", self._fsync,
                                                 self._write), ch)
        numbering_exists = (self.dir / "seq.hwm").exists()
        self._numbers = Numbering(self.dir, self._boot, self._fsync, self._write, hint_dir)
        # made with the numbering, durable before any number is handed out (identity.py)
        self.store_id = identity.load_or_create(self.dir, numbering_exists, fsync=self._fsync,
                                                write=self._write)
        self._recovery = Recovery(self.channel, self._keys, self._segments,
                                  self._quarantine, self._evictions, lambda: self._acks.ranges,
                                  self._index, self._event)
        for seg in self._recovery.open(self._numbers, self._boot):
            self._delete_segment(seg)
        self.damaged_segments = self._recovery.out.damaged_segments
        self._reserve.ensure()

    def recover(self, stop: threading.Event | None = None,
                progress: Callable[[], None] | None = None) -> bool:
        """Scan the segments found at open, one at a time (alarm lane first, each lane
        oldest first): read and scanned outside the store lock, added under it, then
        ``progress()``. Returns True when all are, False when ``stop`` was set or the store
        closed first (the next start scans what is left). Raises StoreError when a segment
        file cannot be read (I/O error): the store keeps holding its lane, as a store that
        could not be opened would."""
        while True:
            with self._cond:
                if self._closed or (stop is not None and stop.is_set()):
                    return False
                seg = self._recovery.next_segment()
                if seg is None:
                    if not self._recovery.done:
                        self._recovery.finish()
                        self._cond.notify_all()
                    return True
                acked, evicted = self._recovery.snapshot(seg)
            scanned = self._scan_file(seg, acked, evicted)
            with self._cond:
                if self._closed:
                    return False
                self._install(scanned)
                self._cond.notify_all()
            del scanned  # before the next segment is read: one segment's scan at a time
            if progress is not None:
                progress()

    def _install(self, scanned: Scanned) -> None:
        """Add a scanned segment (under the lock); delete it when nothing in it is live."""
        seg = scanned.seg
        if self._recovery.install(scanned):
            self.damaged_segments = self._recovery.out.damaged_segments
            if seg.live == 0:
                self._delete_segment(seg)

    def _scan_now(self, seg: Segment) -> None:
        """Scan a segment not scanned yet under the lock (the size budget evicts it before
        the background scan reached it: its records must be known to be reported)."""
        acked, evicted = self._recovery.snapshot(seg)
        self._install(self._scan_file(seg, acked, evicted))

    def _scan_file(self, seg: Segment, acked: RangeSet, evicted: RangeSet) -> Scanned:
        """Read and scan one segment file not scanned yet."""
        try:
            return self._recovery.scan(seg, acked, evicted)
        except FileNotFoundError:
            # evicted meanwhile (install then finds it gone), or deleted behind the
            # store's back (installed as empty: its numbers are reported lost)
            return self._recovery.missing(seg)
        except OSError as exc:
            raise StoreError(f"store {self.channel.value}: cannot read segment "
                             f"{seg.path.name}: {exc}") from exc

    @property
    def indexed_segments(self) -> int:
        """Segments found at open that were read from their index file, not scanned."""
        with self._cond:
            return self._recovery.out.indexed_segments

    @property
    def recovering(self) -> int:
        """Segments found at open and not scanned yet (0 once ``recover`` is done)."""
        with self._cond:
            return self._recovery.remaining

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
        plaintexts = segments.plaintexts(readings, self.batch_max)
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

    def _write_locked(self, items: list[segments.Plaintext]
                      ) -> list[tuple[int, int]]:
        """Reserve, seal, make room, write. Every OSError on the way ends as StoreFullError
        (no space, even after evicting by policy) or DurabilityError: the caller's thread
        never dies of a full disk, and no number is handed out for a batch not written."""
        total = sum(len(c) for _, c, _ in items)
        first_seq = self._numbers.next_seq
        lane = min(lane for lane, _, _ in items)
        records: list[SealedRecord] | None = None
        attempts = 0
        while True:
            try:
                # the reservation (seq.hwm) and a new period key are small files written
                # here too: a full disk meets them as it meets the records
                self._numbers.reserve(first_seq + total - 1)
                if records is None:
                    records = segments.seal(self._keys, self.channel.value, items, first_seq)
                    self._make_room(self._segments.growth(records), lane)
                placed = self._segments.write(records, self._retire)
                break
            except OSError as exc:
                attempts += 1
                if not no_space(exc):
                    raise DurabilityError(
                        f"store {self.channel.value}: write/fsync failed: {exc}") from exc
                if attempts < 50 and (self._evict_one() or (
                        lane == Priority.ALARM and self._reserve.release_step())):
                    continue
                raise StoreFullError(f"store {self.channel.value}: disk full and nothing "
                                     f"left to evict ({exc})") from exc
        for ref in placed:
            self._index.add(ref)
        self._numbers.handed_out(total)
        return [(r.first, r.last) for r in placed]

    def _retire(self, seg: Segment) -> None:
        """A full segment was closed for appending: delete it if nothing in it is live."""
        if seg.live == 0:
            self._delete_segment(seg)

    # ------------------------------------------------------------------ eviction

    def _make_room(self, need: int, lane: Priority) -> None:
        """dead/ and quarantine/ count against the budget: the oldest dead letters (copies
        of readings already reported as rejected) go before any undelivered reading."""
        while (self._segments.bytes + self._dead.area.bytes + self._quarantine.area.bytes
               + need > self.max_bytes):
            if self._dead.area.drop_oldest():
                continue
            if not self._evict_one():
                if lane == Priority.ALARM:
                    return  # alarms are accepted over budget; they are never evicted
                raise StoreFullError(
                    f"store {self.channel.value}: the size budget ({self.max_bytes} bytes) "
                    "is taken by alarms; batch not accepted")

    def _evict_one(self) -> bool:
        """Evict the oldest segment of the lowest-priority lane. Never alarms."""
        seg = size_victim(self._segments.lanes)
        if seg is None:
            return False
        self._evict_segment(seg, EvictReason.SIZE)
        return True

    def _evict_segment(self, seg: Segment, reason: EvictReason) -> None:
        if not seg.scanned:
            self._scan_now(seg)
            if seg not in self._segments.lanes[seg.lane]:
                return  # nothing in it was pending: deleted by the scan
        ranges = self._index.evict_segment(seg)
        unsaved = []
        for a, b in ranges:
            if not self._evictions.record(a, b, reason, sync=False):
                unsaved.append((a, b))
        self._evictions.sync()
        if ranges:
            n = sum(b - a + 1 for a, b in ranges)
            log.warning("store %s: evicted %d readings (%s) from lane %d: seq %d..%d",
                        self.channel.value, n, reason.label, seg.lane, ranges[0][0],
                        ranges[-1][1])
            self._event("store", "evicted", f"{n} readings ({reason.label}) seq "
                        f"{ranges[0][0]}..{ranges[-1][1]}")
        seg.held = 0
        self._delete_segment(seg)
        # The disk had no room for these entries: the segment is gone now, so try again
        # (if this fails too, a restart reports the range as lost: corrupt, not silent).
        for a, b in unsaved:
            self._evictions.journal(a, b, reason, sync=False)
        self._evictions.sync()
        self._save_acks()

    def _delete_segment(self, seg: Segment) -> None:
        segments.close_fd(seg)
        self._acks.sync()  # the acks that make this file removable are durable first
        self._segments.remove(seg)
        self._index.forget_segment(seg)
        self._reserve.ensure()

    def enforce_retention(self) -> int:
        """Evict segments whose pending records are all older than ``retention``. Returns
        readings. Readings taken before the clock was set are exempt until delivered, and
        nothing is evicted while the clock itself is unset (eviction.retention_expired)."""
        if self.retention is None:
            return 0
        now = self._clock.time()
        if now < CLOCK_FLOOR:
            return 0
        cutoff = now - self.retention
        evicted = 0
        with self._cond:
            for seg in list(self._segments):
                if retention_expired(seg, cutoff):
                    evicted += seg.table.readings
                    self._evict_segment(seg, EvictReason.RETENTION)
        return evicted

    # ------------------------------------------------------------------ delivery

    def lease(self, max_records: int, lanes: Iterable[int] = LANES, *,
              max_readings: int = 1, max_bytes: int = RUN_BYTES) -> list[Batch]:
        """Up to ``max_records`` undelivered batches not already in flight, alarms first.

        With ``max_readings`` above 1, a batch is a run of records of one lane whose
        sequence numbers follow on (up to ``max_readings`` readings and ``max_bytes``
        stored bytes): one message, acknowledged, released or rejected as one. A record
        larger than the limits is a batch of its own.

        Costs what it returns (never the backlog). The records are read and decrypted
        outside the store lock; one that cannot be opened is reported and dropped (a run
        is split around it), so a lease may return fewer batches than are waiting."""
        with self._cond:
            if self._closed:
                raise StoreClosedError("store is closed")
            runs = self._index.lease_runs(max_records, lanes, max_readings, max_bytes)
        out, groups, failed = open_runs(runs, self._keys, self.channel.value)
        with self._cond:
            for group in groups:
                self._runs[group[0].first] = group
            for ref, data, why in failed:
                if self._index.pending(ref):  # not evicted meanwhile
                    self._unreadable(ref, data, why)
        return out

    def _run(self, first: int) -> tuple[RecordRef, ...]:
        """The records still pending of the batch that starts at ``first`` (under the lock)."""
        run = self._runs.pop(first, None)
        if run is None:
            ref = self._index.get(first)
            return () if ref is None else (ref,)
        return tuple(r for r in run if self._index.pending(r))

    def _unreadable(self, ref: RecordRef, data: bytes, exc: Exception) -> None:
        if isinstance(exc, rec.RecordUnreadable) and self._shredded(data):
            log.warning("store %s: record seq %d..%d sealed with a shredded key; reported as "
                        "lost (shredded)", self.channel.value, ref.first, ref.last)
            self._drop(ref, EvictReason.SHREDDED)
            self._event("store", "shredded", f"seq {ref.first}..{ref.last}")
            return
        log.error("store %s: record seq %d..%d unreadable (%s); reported as lost",
                  self.channel.value, ref.first, ref.last, exc)
        if isinstance(exc, rec.RecordCorrupt) and ref.seg.path not in self._evidence:
            # damaged on the card after it was indexed (an index file spares the scan
            # that would have found it): the segment is kept as evidence, as a scan does
            self._evidence.add(ref.seg.path)
            self._quarantine.link(ref.seg.path, f"record seq {ref.first}..{ref.last} "
                                  f"damaged ({exc})")
        self.unreadable_records += 1
        self._drop(ref, EvictReason.CORRUPT)
        self._event("store", "lost", f"seq {ref.first}..{ref.last} unreadable: {exc}")

    def _shredded(self, record: bytes) -> bool:
        return self._keys.lost(rec.parse_header(record).key_id) == EvictReason.SHREDDED.label

    def _event(self, category: str, outcome: str, detail: str) -> None:
        if self._on_event is not None:
            self._on_event(category, outcome, detail)

    def _drop(self, ref: RecordRef, reason: EvictReason) -> None:
        self._evictions.record(ref.first, ref.last, reason)
        self._forget(ref)

    def _forget(self, ref: RecordRef) -> None:
        self._index.discard(ref)
        if ref.seg.live == 0 and ref.seg.fd is None:
            self._delete_segment(ref.seg)

    def ack(self, first: int) -> bool:
        """The batch starting at ``first`` was delivered. Returns False if unknown."""
        with self._cond:
            run = self._run(first)
            if not run:
                return False
            self._save_acks()
            for ref in self._acks.record_run(run):
                # Delivered, but the journal has no room to say so (a full disk): not sent
                # again in this run; its segment stays until the entry is written.
                self._index.discard(ref)
                ref.seg.held += 1
            for ref in run:
                if self._index.pending(ref):
                    self._forget(ref)
            self._acks.maybe_compact(self._ack_floor())
            return True

    def _ack_floor(self) -> int:
        return self._index.floor() or self._numbers.next_seq

    def compact_acks(self) -> None:
        """Rewrite the ack journal now (``ack`` does it when the journal has grown)."""
        with self._cond:
            self._acks.compact(self._ack_floor())

    def _save_acks(self) -> None:
        """Journal acks the disk had no room for earlier; release their segments."""
        for ref in self._acks.save_unsaved():
            ref.seg.held = max(0, ref.seg.held - 1)
            if (ref.seg.live == 0 and ref.seg.fd is None
                    and ref.seg in self._segments.lanes[ref.lane]):
                self._delete_segment(ref.seg)

    def reject(self, first: int, why: str) -> bool:
        """The broker refused the batch: keep a copy in dead/, report it, stop retrying."""
        with self._cond:
            run = self._run(first)
            for ref in run:
                self._dead.keep(ref.first, ref.last, ref.size,
                                functools.partial(SegmentSet.read, ref), why)
                self._ratelog.log(logging.ERROR, "rejected", "store %s: broker refused seq "
                                  "%d..%d (%s); moved to dead letters", self.channel.value,
                                  ref.first, ref.last, why)
                self._drop(ref, EvictReason.REJECTED)
            return bool(run)

    def flush_log(self) -> None:
        """Write the counts of log lines held back by the rate limit (call periodically)."""
        self._ratelog.flush()

    def release(self, firsts: Iterable[int] | None = None) -> None:
        """Return in-flight batches to the queue (connection lost before PUBACK)."""
        with self._cond:
            if firsts is None:
                self._runs.clear()
                self._index.release(None)
            else:
                self._index.release([r.first for f in firsts for r in self._run(f)])
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        """Block until data may be available (append or release) or ``timeout`` passes."""
        with self._cond:
            if not self._closed and not self._index.leasable():
                self._cond.wait(timeout)

    # ------------------------------------------------------------------ reporting / closing

    @property
    def next_seq(self) -> int:
        return self._numbers.next_seq

    @property
    def quarantined(self) -> int:
        """Damage found, every kind (``StoreStats`` has the three counts apart)."""
        return self._quarantine.files_moved + self.damaged_segments + self.unreadable_records

    @property
    def journal_failures(self) -> int:
        return self._acks.failures + self._evictions.journal_failures

    def pending_ranges(self) -> RangeSet:
        """Sequence numbers accepted and not yet delivered or evicted (O(backlog))."""
        with self._cond:
            return RangeSet(self._index.spans())

    def acked_ranges(self) -> RangeSet:
        with self._cond:
            return RangeSet(self._acks.ranges)

    def evicted_ranges(self) -> RangeSet:
        """Every range reported as not deliverable (any reason)."""
        with self._cond:
            return RangeSet(self._evictions.ranges)

    def stats(self) -> StoreStats:
        """A snapshot. O(1) in the backlog: the index keeps its counts as it changes."""
        with self._cond:
            dead, quarantine = self._dead.area.stats(), self._quarantine.area.stats()
            backlog = {lane: self._index.backlog(lane) for lane in LANES}
            return StoreStats(
                channel=self.channel.value,
                next_seq=self.next_seq,
                backlog={lane.label: readings for lane, (_, readings) in backlog.items()},
                backlog_records=sum(records for records, _ in backlog.values()),
                bytes_on_disk=self._segments.bytes,
                inflight_records=self._index.inflight_count(),
                oldest_undelivered=self._index.oldest(),
                evicted=dict(self._evictions.counts),
                evicted_recent=list(self._evictions.recent),
                quarantined=self.quarantined,
                dead_letters=self._dead.count,
                accepted=self.accepted, not_accepted=self.not_accepted,
                dead_bytes=dead.bytes, dead_dropped=dead.dropped,
                dead_dropped_ranges=dead.dropped_ranges,
                quarantine_bytes=quarantine.bytes, quarantine_dropped=quarantine.dropped,
                files_moved_aside=self._quarantine.files_moved,
                damaged_segments=self.damaged_segments,
                unreadable_records=self.unreadable_records,
                journal_failures=self.journal_failures,
                recovering_segments=self._recovery.remaining,
            )

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._segments.close()
            self._acks.close()
            self._evictions.close()
            try:
                self._numbers.close()
            except OSError as exc:
                log.warning("store %s: cannot mark a clean close (%s)", self.channel.value,
                            exc)
            self._dirlock.release()  # last: everything above is written by its owner
            self._cond.notify_all()

    def abandon(self) -> None:
        """Stop using this instance without writing anything (rigs: the process "died").
        The directory lock stays held until the process ends, as after a crash."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

