"""Segments written in place in front of a zero tail (docs/design/0014-preallocated-segments.md):
the scan stops at the zeros, a torn record in front of them is a torn tail, a failed commit
is cut back, a full disk only costs the tail, the size budget counts it, and a store in the
format before it (records appended, no tail) still opens and drains."""

from __future__ import annotations

import errno
import json
import os
import shutil
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core.errors import DurabilityError
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.store import record as rec
from edge_agent.store import segments
from edge_agent.store.channel_store import ChannelStore

KEY = bytes(range(32))
FIXTURE = Path(__file__).parent / "fixtures" / "store_appended"
STEP = segments.prealloc_step(4 * 1024**2, 256 * 1024**2)  # the defaults: 256 KiB


def readings(n: int, prio: Priority = Priority.NORMAL, start: int = 0) -> list[Reading]:
    """Reading ``start + i`` has the value ``1000 + (start + i) * 1.37`` (as the fixture)."""
    return [Reading("meter-main", Channel.OT, prio, "power", 1000.0 + (start + i) * 1.37,
                    1_700_000_000.0 + start + i, "W") for i in range(n)]


def open_store(root: Path, **kw: object) -> ChannelStore:
    kw.setdefault("reserve_bytes", 0)
    return ChannelStore(root, Channel.OT, KEY, **kw)  # type: ignore[arg-type]


def seg_files(root: Path, lane: int = 1) -> list[Path]:
    return sorted((root / "ot" / f"lane-{lane}").glob("*.seg"))


def data_end(path: Path) -> int:
    return segments.scan(path.read_bytes()).keep


def drain(s: ChannelStore) -> dict[int, float]:
    """Every pending reading, by sequence number -> value (acknowledged as it goes)."""
    out: dict[int, float] = {}
    while batches := s.lease(50):
        for b in batches:
            values = [float(r["v"]) for r in json.loads(b.senml)]
            assert len(values) == b.count
            out.update(zip(range(b.first, b.last + 1), values, strict=True))
            assert s.ack(b.first)
    return out


def sealed(first: int, count: int, size: int = 40) -> bytes:
    return rec.seal(AESGCM(KEY), "ot", 1, 1, first, count, 1.7e9, os.urandom(size))


# ---------------------------------------------------------------------- the scan


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=0, max_size=8), st.integers(0, 70_000))
def test_scan_stops_at_a_zero_tail(sizes: list[int], zeros: int) -> None:
    recs, first = [], 1
    for n in sizes:
        recs.append(sealed(first, 1, n))
        first += 1
    body = b"".join(recs)
    got = segments.scan(body + bytes(zeros))
    assert [h.first for _, h in got.records] == list(range(1, len(sizes) + 1))
    assert not got.damaged
    assert got.keep == got.end == len(body)


@pytest.mark.parametrize("cut", [1, 4, 20, 47, 48, 49, 60, 100])
def test_scan_torn_record_in_front_of_zeros_is_a_torn_tail(cut: int) -> None:
    """A record of which only the first ``cut`` bytes landed, zeros behind it (the tail):
    damage after the last valid record, as a torn tail of an appended file."""
    a, b = sealed(1, 1), sealed(2, 1, 200)
    got = segments.scan(a + b[:cut] + bytes(64 * 1024))
    assert [h.first for _, h in got.records] == [1]
    assert got.damaged and got.tail_only
    assert got.keep == len(a)
    assert got.end == len(a) + len(b[:cut].rstrip(b"\0"))


def test_scan_zeros_with_records_after_them_are_damage_not_the_end() -> None:
    """An all-zero header ends the data only when nothing but zeros follows it."""
    a, b = sealed(1, 1), sealed(2, 1)
    got = segments.scan(a + bytes(300) + b + bytes(1000))
    assert [h.first for _, h in got.records] == [1, 2]  # salvaged behind the hole
    assert got.damaged and not got.tail_only
    assert got.end == got.keep == len(a) + 300 + len(b)


def test_zero_tail_finds_the_last_nonzero_byte_across_chunks() -> None:
    data = bytearray(200_000)
    assert segments.zero_tail(bytes(data)) == 0
    data[131_071] = 7  # the last byte of the second 64 KiB chunk from the start
    assert segments.zero_tail(bytes(data)) == 131_072
    assert segments.zero_tail(b"\x01\x00\x02") == 3


# ---------------------------------------------------------------------- writing


def test_active_segment_is_zero_filled_ahead_counted_and_cut_at_close(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    s.append(readings(50))
    s.append(readings(50, start=50))
    seg = seg_files(tmp_path)[0]
    end = data_end(seg)
    assert seg.stat().st_size == STEP > end  # records written in front of the zero tail
    assert seg.read_bytes()[end:] == bytes(STEP - end)
    assert s.stats().bytes_on_disk == STEP  # the budget counts the tail
    s.close()
    assert seg.stat().st_size == end  # at rest: the records and nothing else


def test_bytes_on_disk_is_what_the_files_take(tmp_path: Path) -> None:
    """Through rotation, the three lanes and eviction, the budget's figure is the size of
    the segment files, tails and index files included, and stays within ``max_bytes``."""
    s = open_store(tmp_path, segment_bytes=16 * 1024, max_bytes=128 * 1024, batch_max=100)
    n = 0
    for i in range(300):
        lane = (Priority.BULK, Priority.NORMAL, Priority.NORMAL, Priority.ALARM)[i % 4]
        s.append(readings(100 if lane != Priority.ALARM else 2, lane, start=n))
        n += 100
        files = sum(p.stat().st_size for p in (tmp_path / "ot").glob("lane-*/*.*"))
        assert s.stats().bytes_on_disk == files
        assert files <= 128 * 1024
    assert s.stats().evicted["size"] > 0  # the budget was reached, and made room by policy
    s.close()


def test_crash_with_a_zero_tail_reopens_clean(tmp_path: Path) -> None:
    """A kill -9 leaves the active segment with its zero tail: no damage, nothing lost,
    numbering exact, the tail cut; new records go to a new segment."""
    live = tmp_path / "live"
    s = open_store(live, batch_max=20)
    s.append(readings(50))
    img = tmp_path / "img"
    shutil.copytree(live, img)
    s.close()
    seg = seg_files(img)[0]
    assert seg.stat().st_size == STEP
    s2 = open_store(img, batch_max=20)
    try:
        st_ = s2.stats()
        assert st_.quarantined == 0 and sum(st_.evicted.values()) == 0
        assert seg.stat().st_size == data_end(seg) == st_.bytes_on_disk
        assert s2.next_seq == 51
        assert s2.append(readings(1, start=50)) == [(51, 51)]
        assert len(seg_files(img)) == 2
        got = drain(s2)
        assert got == {i + 1: 1000.0 + i * 1.37 for i in range(51)}
    finally:
        s2.close()
    assert not (img / "ot" / "quarantine").exists() or not list(
        (img / "ot" / "quarantine").iterdir())


def test_failed_commit_is_cut_back_and_gives_the_tail_back(tmp_path: Path) -> None:
    """A failed fdatasync: the batch is not accepted, the segment is cut back to its
    accepted records (the zero tail goes with it: the segment is never written again) and
    the next batch begins a new segment."""
    fail = {"on": False}

    def datasync(fd: int) -> None:
        if fail["on"] and os.readlink(f"/proc/self/fd/{fd}").endswith(".seg"):
            raise OSError(errno.EIO, "injected fdatasync failure")
        os.fdatasync(fd)

    s = open_store(tmp_path, datasync=datasync)
    assert s.append(readings(20)) == [(1, 20)]
    seg = seg_files(tmp_path)[0]
    accepted = data_end(seg)
    fail["on"] = True
    with pytest.raises(DurabilityError):
        s.append(readings(20, start=20))
    assert seg.stat().st_size == accepted  # cut back, tail and all
    assert s.stats().bytes_on_disk == accepted
    assert s.next_seq == 21
    fail["on"] = False
    assert s.append(readings(5, start=20)) == [(21, 25)]
    assert len(seg_files(tmp_path)) == 2
    s.close()
    s2 = open_store(tmp_path)
    try:
        assert s2.stats().quarantined == 0 and sum(s2.stats().evicted.values()) == 0
        assert drain(s2) == {i + 1: 1000.0 + i * 1.37 for i in range(25)}
    finally:
        s2.close()


def test_failed_write_in_the_middle_of_a_record_is_cut_back(tmp_path: Path) -> None:
    fail = {"on": False}

    def write(fd: int, data: bytes) -> int:
        if fail["on"] and data.startswith(rec.MAGIC):
            os.write(fd, data[:len(data) // 2])
            raise OSError(errno.EIO, "injected write failure")
        return os.write(fd, data)

    s = open_store(tmp_path, write=write)
    s.append(readings(20))
    seg = seg_files(tmp_path)[0]
    accepted = data_end(seg)
    fail["on"] = True
    with pytest.raises(DurabilityError):
        s.append(readings(20, start=20))
    assert seg.stat().st_size == accepted
    assert seg.read_bytes() == seg.read_bytes()[:accepted]
    s.close()
    s2 = open_store(tmp_path)
    try:
        assert s2.stats().quarantined == 0
        assert sorted(drain(s2)) == list(range(1, 21))
    finally:
        s2.close()


def test_no_room_for_the_zero_tail_writes_the_segment_without_it(tmp_path: Path) -> None:
    """ENOSPC while zero-filling (injected: the disk has room for the records, not for the
    tail): the batch is accepted, the segment grows with its records as before 0014."""
    refused: list[int] = []

    def write(fd: int, data: bytes) -> int:
        if len(data) >= 4096 and data.count(0) == len(data):
            refused.append(len(data))
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    s = open_store(tmp_path, write=write)
    assert s.append(readings(20)) == [(1, 20)]
    assert s.append(readings(20, start=20)) == [(21, 40)]
    assert refused  # the tail was tried, once per segment
    seg = seg_files(tmp_path)[0]
    assert seg.stat().st_size == data_end(seg) == s.stats().bytes_on_disk
    assert drain(s) == {i + 1: 1000.0 + i * 1.37 for i in range(40)}
    s.close()


def test_full_disk_at_a_new_segment_still_accepts_its_records(tmpfs: Path) -> None:
    """A real full disk: room for a few records, not for a 256 KiB tail. The store keeps
    taking readings (design note 0008: a full disk must not stop the service)."""
    s = open_store(tmpfs)
    filler = tmpfs / "filler"
    free = os.statvfs(tmpfs).f_bavail * os.statvfs(tmpfs).f_frsize
    with open(filler, "wb") as f:
        f.write(b"\xaa" * (free - 64 * 1024))  # 64 KiB left: a quarter of one tail
    assert s.append(readings(50)) == [(1, 50)]
    assert s.append(readings(50, start=50)) == [(51, 100)]
    seg = seg_files(tmpfs)[0]
    assert seg.stat().st_size == data_end(seg)  # written without the tail
    assert s.stats().not_accepted == 0
    s.close()
    filler.unlink()
    s2 = open_store(tmpfs)
    try:
        assert s2.stats().quarantined == 0
        assert drain(s2) == {i + 1: 1000.0 + i * 1.37 for i in range(100)}
    finally:
        s2.close()


# ---------------------------------------------------------------------- the format before 0014


def test_store_written_before_preallocation_opens_and_drains(tmp_path: Path) -> None:
    """tests/fixtures/store_appended: written by the store before 0014 (records appended,
    no zero tail). It opens with nothing to report, new records join it in the new
    format, and every reading comes out with its value."""
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    old = {p: p.stat().st_size for lane in range(3) for p in seg_files(tmp_path, lane)}
    s = open_store(tmp_path, boot_id="another-boot")
    try:
        st_ = s.stats()
        assert st_.quarantined == 0 and sum(st_.evicted.values()) == 0
        assert st_.backlog == {"alarm": 6, "normal": 300, "bulk": 60}
        assert st_.bytes_on_disk == sum(old.values())
        assert list(s.acked_ranges()) == [(1, 50), (53, 102)]
        assert s.next_seq == 467  # closed cleanly: nothing skipped
        assert s.append(readings(10, start=466)) == [(467, 476)]
        new = [p for p in seg_files(tmp_path) if p not in old]
        assert [p.stat().st_size for p in new] == [STEP]  # the new format beside the old
        assert {p: p.stat().st_size for p in old} == old  # never written again
        got = drain(s)
        pending = set(range(1, 477)) - set(range(1, 51)) - set(range(53, 103))
        assert got == {seq: 1000.0 + (seq - 1) * 1.37 for seq in sorted(pending)}
    finally:
        s.close()
    s2 = open_store(tmp_path)
    try:
        assert s2.stats().backlog_records == 0 and s2.next_seq == 477
    finally:
        s2.close()


def test_torn_tail_of_a_segment_in_the_old_format_is_cut_as_before(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    seg = seg_files(tmp_path)[-1]
    size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(sealed(467, 1, 300)[:150])  # half a record, appended, nothing after it
    s = open_store(tmp_path, boot_id="another-boot")
    try:
        assert s.stats().quarantined == 1
        assert seg.stat().st_size == size
        assert s.stats().backlog == {"alarm": 6, "normal": 300, "bulk": 60}
    finally:
        s.close()


# ---------------------------------------------------------------------- one record


class _Keys:
    def __init__(self, aead: AESGCM | None) -> None:
        self.aead = aead

    def get(self, key_id: int) -> AESGCM | None:
        return self.aead


def test_small_plaintexts_are_stored_as_they_are_larger_ones_compressed() -> None:
    small = json.dumps([{"n": "p", "v": 1.5}]).encode()
    large = json.dumps([{"n": "p", "v": 1.5 + i} for i in range(40)]).encode()
    assert len(small) < rec.COMPRESS_MIN <= len(large)
    for pt, zipped in ((small, False), (large, True)):
        data = rec.seal(AESGCM(KEY), "ot", 1, 1, 7, 1, 1.7e9, pt)
        head, out = rec.open_record(_Keys(AESGCM(KEY)), "ot", data)
        assert bool(head.flags & rec.FLAG_ZLIB) is zipped
        assert out == pt and head.first == 7
        assert (len(data) < len(pt)) is zipped  # the large one shrinks


@pytest.mark.parametrize("where", [rec.HEAD_SIZE + 3, -6])
def test_a_damaged_record_is_corrupt_a_tampered_or_foreign_one_unreadable(where: int) -> None:
    """Opening checks the tag, and the CRC only when the tag fails: a flipped byte is
    damage (the CRC says so), the same flip with the CRC made to match is tampering, and a
    record sealed with another key is unreadable."""
    data = bytearray(sealed(1, 3))
    data[where] ^= 0x40
    with pytest.raises(rec.RecordCorrupt):
        rec.open_record(_Keys(AESGCM(KEY)), "ot", bytes(data))
    body = bytes(data[:-rec.TRAILER_SIZE])
    forged = body + rec.CRC.pack(zlib.crc32(body))
    with pytest.raises(rec.RecordUnreadable, match="tampered"):
        rec.open_record(_Keys(AESGCM(KEY)), "ot", forged)
    with pytest.raises(rec.RecordUnreadable, match="tampered"):
        rec.open_record(_Keys(AESGCM(bytes(32))), "ot", sealed(1, 3))
    with pytest.raises(rec.RecordUnreadable, match="gone"):
        rec.open_record(_Keys(None), "ot", sealed(1, 3))
    data = bytearray(sealed(1, 3))
    data[5] ^= 0x01  # in the header (its flags), which the tag covers too
    with pytest.raises(rec.RecordCorrupt):
        rec.open_record(_Keys(None), "ot", bytes(data))
