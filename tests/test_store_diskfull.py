"""A full disk, for real: the store on a small tmpfs mount (root only; skipped otherwise),
plus an injected ``os.write`` that returns short counts.

What must hold: a write is complete or the batch is not accepted (no number handed out
for half a record); a full disk never kills the writer, never stops a start, never makes
the uplink's lease crash; alarms are still accepted (eviction by policy makes room); key
files are never left empty.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from pathlib import Path

import pytest

from edge_agent.core.clock import ManualClock
from edge_agent.core.errors import IncompleteWriteError, StoreFullError
from edge_agent.core.fsutil import atomic_write, write_all
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.daemon.ingest import IngestQueue
from edge_agent.daemon.runtime import ChannelWriter
from edge_agent.security.keys import create_key, load_key, load_or_create_key
from edge_agent.security.periodkeys import PeriodKeyring
from edge_agent.store import record as rec
from edge_agent.store.channel_store import ChannelStore

KEY = bytes(range(32))
PAGE = os.sysconf("SC_PAGE_SIZE")


def readings(n: int, prio: Priority = Priority.NORMAL, start: int = 0) -> list[Reading]:
    # varied values so records do not compress to nothing and differ in size
    return [Reading("meter-main", Channel.OT, prio, "power", 1000.0 + (start + i) * 1.37,
                    1_700_000_000.0 + start + i, "W") for i in range(n)]


def fill(mnt: Path, leave: int = 0) -> Path:
    """Fill the file system, leaving ``leave`` bytes (whole pages) free."""
    filler = mnt / "filler"
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    with open(filler, "wb") as f:
        try:
            f.write(b"\xaa" * max(0, free - leave))
            f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    st = os.statvfs(mnt)
    assert st.f_bavail * st.f_frsize <= leave
    return filler


def drain_all(s: ChannelStore) -> set[int]:
    seen: set[int] = set()
    while True:
        batches = s.lease(50)
        if not batches:
            return seen
        for b in batches:
            seen.update(range(b.first, b.last + 1))
            s.ack(b.first)


# ---------------------------------------------------------------------- write_all / atomic


def test_write_all_loops_over_short_writes(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    calls: list[int] = []

    def short(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return os.write(fd, data[:3])

    try:
        write_all(fd, b"0123456789", write=short)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"0123456789"
    assert calls == [10, 7, 4, 1]


def test_write_all_raises_with_what_was_written(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    answers = iter([4])

    def fills(fd: int, data: bytes) -> int:
        n = next(answers, None)
        if n is None:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data[:n])

    try:
        with pytest.raises(IncompleteWriteError) as exc:
            write_all(fd, b"0123456789", write=fills)
    finally:
        os.close(fd)
    assert exc.value.errno == errno.ENOSPC and exc.value.written == 4
    assert isinstance(exc.value, OSError)


def test_write_all_no_progress_is_enospc(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(IncompleteWriteError) as exc:
            write_all(fd, b"abc", write=lambda fd, data: 0)
    finally:
        os.close(fd)
    assert exc.value.errno == errno.ENOSPC and exc.value.written == 0


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state"
    atomic_write(path, b"old contents\n")

    def fails(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(path, b"new contents\n", write=fails)
    assert path.read_bytes() == b"old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state"]  # no temporary left behind
    assert (path.stat().st_mode & 0o777) == 0o600


def test_atomic_write_exclusive_never_replaces(tmp_path: Path) -> None:
    path = tmp_path / "k"
    atomic_write(path, b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write(path, b"second", exclusive=True)
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


# ---------------------------------------------------------------------- short writes


def test_injected_short_write_then_enospc_hands_out_no_seqs(tmp_path: Path) -> None:
    """The disk fills in the middle of a record: the batch is not accepted, the segment is
    cut back to where it was, and the numbers go to the next batch that is written."""
    state = {"fail": False}

    def write(fd: int, data: bytes) -> int:
        if state["fail"] and os.readlink(f"/proc/self/fd/{fd}").endswith(".seg"):
            if len(data) > 100:
                return os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    s = ChannelStore(tmp_path, Channel.OT, KEY, reserve_bytes=0, write=write)
    assert s.append(readings(1)) == [(1, 1)]
    seg = next((tmp_path / "ot" / "lane-1").glob("*.seg"))
    size = seg.stat().st_size
    state["fail"] = True
    with pytest.raises(StoreFullError):
        s.append(readings(500, Priority.BULK, start=1))
    with pytest.raises(StoreFullError):
        s.append(readings(500, start=1))
    assert s.next_seq == 2
    assert s.stats().not_accepted == 1000
    # cut back to where it was, or evicted by policy to make room (and reported so)
    assert not seg.exists() or seg.stat().st_size == size
    assert seg.exists() or (1, 1, "size") in s.stats().evicted_recent
    state["fail"] = False
    assert s.append(readings(500, start=1)) == [(2, 501)]
    got = drain_all(s)
    assert s.stats().evicted["corrupt"] == 0 and s.quarantined == 0
    s.close()
    assert got >= set(range(2, 502))
    s2 = ChannelStore(tmp_path, Channel.OT, KEY, reserve_bytes=0)
    try:
        assert s2.stats().quarantined == 0 and s2.stats().evicted["corrupt"] == 0
        assert s2.next_seq == 502
    finally:
        s2.close()


def test_injected_short_write_that_completes_is_accepted_whole(tmp_path: Path) -> None:
    def write(fd: int, data: bytes) -> int:
        return os.write(fd, data[: max(1, len(data) // 3)])

    s = ChannelStore(tmp_path, Channel.OT, KEY, reserve_bytes=0, write=write)
    assert s.append(readings(500)) == [(1, 500)]
    assert drain_all(s) == set(range(1, 501))
    s.close()


def test_real_short_write_on_a_full_tmpfs_is_never_accepted(tmpfs: Path) -> None:
    """One page left free and a batch of two pages: the kernel writes one page and says so
    in the return value. Every number ``append`` returns must be readable whole."""
    s = ChannelStore(tmpfs, Channel.OT, KEY, reserve_bytes=0)
    first = s.append(readings(10))
    fill(tmpfs, leave=PAGE)
    accepted: list[tuple[int, int]] = list(first)
    with contextlib.suppress(StoreFullError):
        accepted += s.append(readings(500, start=10))
    got = drain_all(s)
    st = s.stats()
    assert st.evicted["corrupt"] == 0 and st.quarantined == 0, st
    evicted = {n for a, b, _ in st.evicted_recent for n in range(a, b + 1)}
    for a, b in accepted:
        assert set(range(a, b + 1)) <= got | evicted
    s.close()


# ---------------------------------------------------------------------- ENOSPC in the writer


def test_enospc_on_seq_reservation_does_not_kill_the_writer(tmpfs: Path) -> None:
    """After a clean close the next commit must reserve numbers (seq.hwm): with the disk
    full that write fails. The writer evicts normal data by policy and commits the alarm."""
    s = ChannelStore(tmpfs, Channel.OT, KEY, reserve_bytes=0, segment_bytes=16 * 1024)
    n = 0
    while len(list((tmpfs / "ot" / "lane-1").glob("*.seg"))) < 4:
        s.append(readings(200, start=n))
        n += 200
    s.close()
    s = ChannelStore(tmpfs, Channel.OT, KEY, reserve_bytes=0, segment_bytes=16 * 1024)
    fill(tmpfs)
    queue = IngestQueue(10_000)
    writer = ChannelWriter(Channel.OT, queue, s, 1.0, lambda: None, ManualClock())
    before = s.stats().accepted
    writer.thread.start()
    try:
        queue.put(readings(3, Priority.ALARM, start=n))
        done = threading.Event()
        for _ in range(200):
            st = s.stats()
            if st.accepted > before or st.not_accepted:
                done.set()
                break
            done.wait(0.05)
        assert writer.error is None and writer.thread.is_alive()
        st = s.stats()
        assert st.accepted == before + 3 and st.not_accepted == 0
        assert st.backlog["alarm"] == 3
        assert st.evicted["size"] > 0  # room was made by policy, and said so
        assert all(why == "size" for _, _, why in st.evicted_recent)
    finally:
        writer.stop.set()
        queue.close()
        writer.thread.join(5)
        s.close()


def test_alarms_keep_being_accepted_on_a_full_disk(tmpfs: Path) -> None:
    events: list[str] = []
    # no alarm reserve: eviction alone must make room, even when the eviction journal
    # itself has no room for its entry (it is written once the segment is gone)
    s = ChannelStore(tmpfs, Channel.OT, KEY, reserve_bytes=0, segment_bytes=16 * 1024,
                     on_event=lambda cat, what, detail: events.append(f"{what} {detail}"))
    n = 0
    for lane in (Priority.BULK, Priority.NORMAL):
        for _ in range(6):
            s.append(readings(200, lane, start=n))
            n += 200
    filler = fill(tmpfs)
    alarms = 0
    normal_refused = 0
    for _i in range(60):  # the disk stays full: every batch must make its own room
        s.append(readings(2, Priority.ALARM, start=n))
        alarms += 2
        n += 2
        try:
            s.append(readings(200, start=n))
        except StoreFullError:
            normal_refused += 200
        n += 200
    st = s.stats()
    assert st.backlog["alarm"] == alarms
    assert st.not_accepted == normal_refused
    # by policy and reported: bulk first (seq 1..1200), then normal, oldest first
    assert st.evicted["size"] > 0
    evictions = [e for e in events if e.startswith("evicted")]
    assert evictions[0] == "evicted 1200 readings (size) seq 1..1200"
    firsts = [int(e.split("seq ")[1].split("..")[0]) for e in evictions]
    assert firsts == sorted(firsts)
    filler.unlink()
    s.close()
    s2 = ChannelStore(tmpfs, Channel.OT, KEY, reserve_bytes=0)
    try:
        assert s2.stats().backlog["alarm"] == alarms
        assert s2.stats().evicted["corrupt"] == 0
    finally:
        s2.close()


def test_lease_survives_a_full_disk_when_a_record_is_unreadable(tmpfs: Path) -> None:
    """The uplink's lease drops an unreadable record and journals it; with no room for the
    journal entry it must report the loss, not raise into the uplink."""
    s = ChannelStore(tmpfs, Channel.OT, KEY, reserve_bytes=0)
    s.append(readings(50))
    s.append(readings(50, start=50))
    seg = next((tmpfs / "ot" / "lane-1").glob("*.seg"))
    fill(tmpfs)
    with open(seg, "r+b") as f:  # a bit flip in the first record's ciphertext, in place
        f.seek(rec.HEAD_SIZE + 5)
        b = f.read(1)
        f.seek(rec.HEAD_SIZE + 5)
        f.write(bytes([b[0] ^ 0x40]))
    got = drain_all(s)
    assert got == set(range(51, 101))
    st = s.stats()
    assert st.evicted["corrupt"] == 50 and (1, 50, "corrupt") in st.evicted_recent
    s.close()


# ---------------------------------------------------------------------- start-up


def test_start_with_torn_tail_on_a_full_disk_quarantines_and_runs(tmpfs: Path) -> None:
    s = ChannelStore(tmpfs, Channel.OT, KEY, reserve_bytes=0, segment_bytes=16 * 1024)
    n = 0
    while len(list((tmpfs / "ot" / "lane-1").glob("*.seg"))) < 3:
        s.append(readings(200, start=n))
        n += 200
    s.close()
    newest = sorted((tmpfs / "ot" / "lane-1").glob("*.seg"))[-1]
    size = newest.stat().st_size
    with open(newest, "ab") as f:
        f.write(rec.MAGIC + os.urandom(300))  # a torn write: half a record
    fill(tmpfs)
    s = ChannelStore(tmpfs, Channel.OT, KEY, reserve_bytes=0, segment_bytes=16 * 1024)
    try:
        assert s.stats().quarantined == 1
        assert newest.stat().st_size == size  # cut back to its last whole record
        kept = [p for p in (tmpfs / "ot" / "quarantine").iterdir()
                if p.name.endswith(newest.name)]
        assert kept and kept[0].stat().st_ino == newest.stat().st_ino  # linked, not copied
        assert s.stats().backlog["normal"] == n
        assert s.append(readings(1, Priority.ALARM, start=n)) == [(n + 1, n + 1)]
    finally:
        s.close()


# ---------------------------------------------------------------------- key files


def test_key_file_is_not_left_empty_by_a_full_disk(tmpfs: Path) -> None:
    path = tmpfs / "keys" / "ot.key"
    path.parent.mkdir(mode=0o700)
    filler = fill(tmpfs)
    with pytest.raises(OSError) as exc:
        create_key(path)
    assert exc.value.errno == errno.ENOSPC
    assert not path.exists()
    assert list(path.parent.iterdir()) == []
    filler.unlink()
    key, created = load_or_create_key(path)
    assert created and load_key(path) == key


def test_empty_key_file_from_an_interrupted_create_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "it.key"
    path.parent.mkdir(mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)  # what an older create left
    os.close(fd)
    key, created = load_or_create_key(path)
    assert created and len(key) == 32 and load_key(path) == key


def test_period_key_is_not_left_empty_by_a_full_disk(tmpfs: Path) -> None:
    ring = PeriodKeyring(tmpfs / "keys" / "ot", "ot", KEY, 86400.0,
                         clock=ManualClock(wall=1_700_000_000.0))
    filler = fill(tmpfs)
    with pytest.raises(OSError):
        ring.current(1_700_000_000.0)
    # no key file at all, and no file left empty (channel.check, written whole, may stay)
    left = list(ring.dir.iterdir())
    assert [p.name for p in left if p.suffix == ".key"] == []
    assert [p.name for p in left if p.stat().st_size == 0] == []
    filler.unlink()
    kid, _ = ring.current(1_700_000_000.0)
    assert [k.kid for k in ring.list_keys()] == [kid]


def test_a_full_disk_at_start_is_not_a_permanent_exit() -> None:
    """Exit 2 stops systemd restarting the unit (RestartPreventExitStatus=2): only for what
    a restart cannot fix, never for a full or failing disk."""
    from edge_agent.cli.run import transient as _transient
    from edge_agent.core.errors import KeyFileError

    assert _transient(OSError(errno.ENOSPC, "No space left on device"))
    assert _transient(IncompleteWriteError(errno.ENOSPC, "short write"))
    assert _transient(StoreFullError("full"))
    assert not _transient(KeyFileError("ot.key: key file not found"))
    assert not _transient(FileNotFoundError(errno.ENOENT, "no such file"))
