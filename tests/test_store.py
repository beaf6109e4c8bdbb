from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core.clock import ManualClock
from edge_agent.core.errors import ChannelMismatchError, DurabilityError, KeyFileError
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.security.keys import create_key, load_key, load_or_create_key
from edge_agent.store import segments
from edge_agent.store.channel_store import ChannelStore
from edge_agent.store.ranges import RangeSet

KEY = bytes(range(32))


def readings(n: int, prio: Priority = Priority.NORMAL, ch: Channel = Channel.OT,
             start: int = 0, sensor: str = "meter-main") -> list[Reading]:
    return [Reading(sensor, ch, prio, "power", 1000.0 + start + i, 1_700_000_000.0 + i, "W")
            for i in range(n)]


def open_store(root: Path, **kw: object) -> ChannelStore:
    return ChannelStore(root, Channel.OT, KEY, **kw)  # type: ignore[arg-type]


def drain(store: ChannelStore) -> list[tuple[int, int, list[dict[str, object]]]]:
    out: list[tuple[int, int, list[dict[str, object]]]] = []
    while True:
        batches = store.lease(100)
        if not batches:
            return out
        for b in batches:
            out.append((b.first, b.last, json.loads(b.senml)))
            store.ack(b.first)


def _cut_newest_record(root: Path, lane: int = 1) -> None:
    """Drop the newest record of a lane exactly at a record boundary (a lost fsynced write)."""
    seg = sorted((root / "ot" / f"lane-{lane}").glob("*.seg"))[-1]
    data = seg.read_bytes()
    last = segments.scan(data).records[-1][0]
    seg.write_bytes(data[:last])


def _crash_image(src: Path, dest: Path) -> Path:
    """What a kill -9 leaves: the files as they are while the store is still open."""
    shutil.copytree(src, dest)
    return dest


def test_sequence_numbers_start_at_one_and_survive_restart(tmp_path: Path) -> None:
    s = open_store(tmp_path, batch_max=10)
    assert s.append(readings(25)) == [(1, 10), (11, 20), (21, 25)]
    got = drain(s)
    assert [(a, b) for a, b, _ in got] == [(1, 10), (11, 20), (21, 25)]
    assert got[0][2][0] == {"n": "meter-main/power", "u": "W", "v": 1000.0, "t": 1_700_000_000.0}
    s.close()
    s = open_store(tmp_path, batch_max=10)
    assert s.next_seq == 26  # delivered data is gone from disk, numbers are not reused
    assert s.append(readings(1)) == [(26, 26)]
    s.close()


def test_undelivered_batches_survive_restart_and_in_flight_is_resent(tmp_path: Path) -> None:
    s = open_store(tmp_path, batch_max=5)
    s.append(readings(20))
    leased = s.lease(2)
    s.ack(leased[1].first)  # out-of-order ack: the first stays pending
    s.close()
    s = open_store(tmp_path, batch_max=5)
    assert [(a, b) for a, b, _ in drain(s)] == [(1, 5), (11, 15), (16, 20)]


def test_alarms_leave_first_then_normal_then_bulk(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    s.append(readings(3, Priority.BULK))
    s.append(readings(3, Priority.NORMAL))
    s.append(readings(1, Priority.ALARM))
    lanes = [b.lane for b in s.lease(10)]
    assert lanes == [Priority.ALARM, Priority.NORMAL, Priority.BULK]


def test_reading_bound_to_other_channel_is_refused(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    with pytest.raises(ChannelMismatchError):
        s.append(readings(2) + readings(1, ch=Channel.IT))
    assert s.next_seq == 1 and s.lease(10) == []


def test_no_plaintext_values_or_ids_on_disk(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    secret_sensor = "resident-kim-spo2"
    s.append([Reading(secret_sensor, Channel.OT, Priority.NORMAL, "spo2", 97.25, 1.7e9, "%")
              for _ in range(50)])
    s.append([Reading(secret_sensor, Channel.OT, Priority.ALARM, "fall", True, 1.7e9)])
    s.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for needle in (b"resident-kim", b"97.25", b"spo2", b"fall", b"senml", b'"v"'):
        assert needle not in blob


def test_tampered_record_is_reported_not_delivered(tmp_path: Path) -> None:
    s = open_store(tmp_path, batch_max=5)
    s.append(readings(10))
    s.close()
    seg = next((tmp_path / "ot" / "lane-1").glob("*.seg"))
    data = bytearray(seg.read_bytes())
    data[60] ^= 0xFF  # inside the first record's ciphertext
    seg.write_bytes(bytes(data))
    s = open_store(tmp_path, batch_max=5)
    got = drain(s)
    assert [(a, b) for a, b, _ in got] == [(6, 10)]  # the second record is salvaged
    st_ = s.stats()
    assert st_.quarantined >= 1
    assert (1, 5, "corrupt") in st_.evicted_recent
    assert list((tmp_path / "ot" / "quarantine").iterdir())


@pytest.mark.parametrize("cut", [1, 7, 48, 60, 150])
def test_unfinished_write_at_the_tail_is_cut_and_earlier_records_kept(tmp_path: Path,
                                                                      cut: int) -> None:
    live = tmp_path / "live"
    s = open_store(live, batch_max=5)
    s.append(readings(5))
    s.append(readings(5))
    img = _crash_image(live, tmp_path / "img")  # killed while writing the third batch:
    s.append(readings(5, start=10))
    seg = next((live / "ot" / "lane-1").glob("*.seg"))
    whole = seg.read_bytes()
    s.close()
    torn = img / "ot" / "lane-1" / seg.name
    done, end = segments.scan(torn.read_bytes()).keep, segments.scan(whole).keep
    assert torn.stat().st_size > end  # written in place, in front of a zero tail
    stop = end - cut
    while not whole[stop:end].strip(b"\0"):  # bytes that are zeros anyway tear nothing
        stop -= 1  # (the record's CRC may end in zero bytes: 1 run in 256 for cut=1)
    with open(torn, "r+b") as f:  # ... part of its record reached the file, zeros after it
        f.seek(done)
        f.write(whole[done:stop])
    s = open_store(img, batch_max=5)
    assert torn.stat().st_size == done  # cut back to the last whole record, zeros and all
    assert [(a, b) for a, b, _ in drain(s)] == [(1, 5), (6, 10)]
    assert s.stats().quarantined == 1
    kept = [p for p in (img / "ot" / "quarantine").iterdir() if p.name.endswith(".tail")]
    assert [p.read_bytes() for p in kept] == [whole[done:stop].rstrip(b"\0")]
    assert sum(s.stats().evicted.values()) == 0  # it was never accepted: nothing to report
    assert s.append(readings(1)) == [(11, 11)]  # and its numbers were never handed out


@pytest.mark.parametrize("cut", [1, 7, 48, 60, 150])
def test_accepted_tail_record_cut_is_reported_and_its_numbers_not_reused(tmp_path: Path,
                                                                         cut: int) -> None:
    s = open_store(tmp_path, batch_max=5)
    s.append(readings(5))
    s.append(readings(5))
    s.close()
    seg = next((tmp_path / "ot" / "lane-1").glob("*.seg"))
    data = seg.read_bytes()
    seg.write_bytes(data[:len(data) - cut])
    s = open_store(tmp_path, batch_max=5)
    got = [(a, b) for a, b, _ in drain(s)]
    assert got == [(1, 5)]
    assert s.stats().quarantined == 1
    assert (6, 10, "corrupt") in s.stats().evicted_recent
    assert s.append(readings(1)) == [(11, 11)]


def test_garbage_file_is_quarantined(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    s.append(readings(3))
    s.close()
    (tmp_path / "ot" / "lane-1" / "00000000000000000099.seg").write_bytes(os.urandom(5000))
    (tmp_path / "ot" / "lane-2" / "notes.txt").write_text("x")
    s = open_store(tmp_path)
    assert [(a, b) for a, b, _ in drain(s)] == [(1, 3)]
    assert s.stats().quarantined >= 2


def test_size_budget_evicts_oldest_lowest_priority_never_alarms(tmp_path: Path) -> None:
    seg = 64 * 1024
    s = open_store(tmp_path, max_bytes=4 * seg, segment_bytes=seg, batch_max=200,
                   reserve_bytes=0)
    s.append(readings(5, Priority.ALARM))
    for i in range(300):
        s.append(readings(200, Priority.NORMAL, start=i * 1000))
        s.append(readings(200, Priority.BULK, start=i * 1000))
    st_ = s.stats()
    assert st_.bytes_on_disk <= 4 * seg
    assert st_.backlog["alarm"] == 5
    assert st_.evicted["size"] > 0
    evicted = RangeSet((a, b) for a, b, _ in st_.evicted_recent)
    assert 1 not in evicted  # the alarms
    # bulk goes first: the oldest normal data outlives older bulk data
    bulk_left = [b for b in s.lease(10_000) if b.lane == Priority.BULK]
    normal_left = [b for b in s.lease(10_000) if b.lane == Priority.NORMAL]
    assert st_.backlog["normal"] > st_.backlog["bulk"] or not bulk_left or normal_left
    # every number is accounted for: pending + evicted, no silent loss
    pending = RangeSet()
    s.release()
    for bt in s.lease(100_000):
        pending.add(bt.first, bt.last)
    all_ev = RangeSet()
    for f in tmp_path.glob("ot/evicted.log"):
        assert f.stat().st_size > 0
    s.close()
    s2 = open_store(tmp_path, max_bytes=4 * seg, segment_bytes=seg, batch_max=200,
                    reserve_bytes=0)
    assert s2.stats().evicted["size"] == st_.evicted["size"]
    for a, b in pending:
        all_ev.add(a, b)
    for a, b in s2.evicted_ranges():
        all_ev.add(a, b)
    assert all_ev.gaps(1, s2.next_seq - 1) == []


def test_retention_evicts_old_data(tmp_path: Path) -> None:
    clock = ManualClock(wall=1_700_000_000.0 + 100)
    s = open_store(tmp_path, retention=3600.0, clock=clock, segment_bytes=64 * 1024)
    s.append(readings(10))
    assert s.enforce_retention() == 0
    clock.advance(7200)
    assert s.enforce_retention() == 10
    assert s.lease(10) == []
    assert s.stats().evicted["retention"] == 10


def test_fsync_failure_is_not_acknowledged_and_segment_is_abandoned(tmp_path: Path) -> None:
    fail = {"on": False}

    def fsync(fd: int) -> None:
        if fail["on"]:
            raise OSError(errno.EIO, "I/O error")
        os.fsync(fd)

    s = open_store(tmp_path, fsync=fsync)
    s.append(readings(5))
    fail["on"] = True
    with pytest.raises(DurabilityError):
        s.append(readings(5, start=100))
    assert s.stats().not_accepted == 5
    fail["on"] = False
    assert s.append(readings(2, start=200)) == [(6, 7)]  # new segment, same numbers free
    s.close()
    s = open_store(tmp_path)
    got = drain(s)
    assert [(a, b) for a, b, _ in got] == [(1, 5), (6, 7)]
    assert got[1][2][0]["v"] == 1200.0  # the refused batch never appears
    assert len(list((tmp_path / "ot" / "lane-1").glob("*.seg"))) <= 2


def test_rejected_batch_goes_to_dead_letters(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    s.append(readings(3))
    (b,) = s.lease(1)
    assert s.reject(b.first, "PUBACK 0x87 Not authorized")
    assert s.lease(1) == []
    assert s.stats().dead_letters == 1
    assert (tmp_path / "ot" / "dead" / f"{1:020d}.why").read_text().startswith("PUBACK 0x87")


def test_ack_journal_compaction_keeps_high_water_mark(tmp_path: Path) -> None:
    s = open_store(tmp_path, batch_max=1)
    for _ in range(30):
        s.append(readings(1))
        (b,) = s.lease(1)
        s.ack(b.first)
    s.compact_acks()
    s.close()
    s = open_store(tmp_path)
    assert s.next_seq == 31
    assert s.stats().evicted["corrupt"] == 0


def test_key_files(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ot.key"
    key = create_key(path)
    assert load_key(path) == key
    assert (path.stat().st_mode & 0o777) == 0o600
    with pytest.raises(KeyFileError, match="already exists"):
        create_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match=r"chmod 600 .*ot\.key"):
        load_key(path)
    os.chmod(path, 0o600)
    path.write_bytes(b"short")
    with pytest.raises(KeyFileError, match="expected 32 raw bytes"):
        load_key(path)
    k2, created = load_or_create_key(tmp_path / "k2")
    assert created and len(k2) == 32


def test_wrong_key_cannot_read(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    s.append(readings(3))
    s.close()
    other = ChannelStore(tmp_path, Channel.OT, bytes(32))
    assert other.lease(10) == []
    assert other.stats().evicted["corrupt"] == 3


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.sampled_from(list(Priority))), min_size=1,
                max_size=12),
       st.lists(st.booleans(), max_size=30))
def test_property_every_accepted_number_is_delivered_or_pending(
        tmp_path_factory: pytest.TempPathFactory, batches: list[tuple[int, Priority]],
        acks: list[bool]) -> None:
    root = tmp_path_factory.mktemp("prop")
    s = open_store(root, batch_max=7)
    accepted = RangeSet()
    for n, prio in batches:
        for a, b in s.append(readings(n, prio)):
            accepted.add(a, b)
    delivered = RangeSet()
    leased = s.lease(len(acks))
    for bt, ok in zip(leased, acks, strict=False):
        if ok:
            s.ack(bt.first)
            delivered.add(bt.first, bt.last)
    s.close()
    s = open_store(root, batch_max=7)
    for a, b, _ in drain(s):
        assert not delivered.covers(a, b)
        delivered.add(a, b)
    assert list(delivered) == list(accepted)
    assert list(accepted) == [(1, sum(n for n, _ in batches))]


def test_rangeset_gaps() -> None:
    r = RangeSet([(5, 7), (1, 2), (3, 3), (10, 10), (4, 4)])
    assert list(r) == [(1, 7), (10, 10)]
    assert r.gaps(1, 12) == [(8, 9), (11, 12)]
    assert list(RangeSet([(1, 2), (5, 7), (3, 3)])) == [(1, 3), (5, 7)]
    assert r.covers(2, 6) and not r.covers(6, 8)


_unused: Callable[..., object] = open_store


def test_readings_from_an_unset_clock_are_marked(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    s.append([Reading("m", Channel.OT, Priority.NORMAL, "p", 1.0, 42.0, "W"),
              Reading("m", Channel.OT, Priority.NORMAL, "p", 2.0, 1_750_000_000.0, "W")])
    (b,) = s.lease(1)
    early, synced = json.loads(b.senml)
    assert early["clock_"] == "unsynced" and early["t"] == 42.0
    assert "clock_" not in synced


# ---------------------------------------------------------------- sequence numbers are never reused


def test_newest_record_cut_at_a_boundary_is_reported_lost_and_never_reused(
        tmp_path: Path) -> None:
    s = open_store(tmp_path, batch_max=5)
    s.append(readings(5))
    s.append(readings(5))
    s.close()
    _cut_newest_record(tmp_path)
    s = open_store(tmp_path, batch_max=5)
    assert [(a, b) for a, b, _ in drain(s)] == [(1, 5)]
    assert (6, 10, "corrupt") in s.stats().evicted_recent  # named, not silently gone
    assert s.append(readings(1)) == [(11, 11)]  # 6..10 were accepted once: never again
    s.close()


def test_process_crash_then_lost_record_is_named_exactly(tmp_path: Path) -> None:
    """Same boot (page cache intact): the unsynced last-assigned hint is exact, no skip."""
    s = open_store(tmp_path / "live", batch_max=5)
    s.append(readings(5))
    s.append(readings(5))
    img = _crash_image(tmp_path / "live", tmp_path / "img")
    s.close()
    _cut_newest_record(img)
    s2 = open_store(img, batch_max=5)
    assert (6, 10, "corrupt") in s2.stats().evicted_recent
    assert s2.stats().evicted["skipped"] == 0
    assert s2.append(readings(1)) == [(11, 11)]
    s2.close()


def test_power_cut_skips_the_reserved_range_instead_of_reusing_it(tmp_path: Path) -> None:
    """After a power cut nothing unsynced is trusted: numbers restart above the fsynced
    reservation, and the numbers in between are reported as skipped."""
    s = open_store(tmp_path / "live", batch_max=5)
    s.append(readings(5))
    s.append(readings(5))
    img = _crash_image(tmp_path / "live", tmp_path / "img")
    s.close()
    _cut_newest_record(img)
    (img / "ot" / "seq.last").write_bytes(b"")  # the unsynced hint did not survive
    s2 = open_store(img, batch_max=5, boot_id="after-the-power-cut")
    st_ = s2.stats()
    skipped = [(a, b) for a, b, why in st_.evicted_recent if why == "skipped"]
    assert len(skipped) == 1 and skipped[0][0] == 6 and skipped[0][1] >= 10
    (first, _), = s2.append(readings(1))
    assert first == skipped[0][1] + 1 > 10
    s2.close()
    s3 = open_store(img, batch_max=5)  # clean restart: no new gap
    assert s3.next_seq == first + 1
    assert s3.stats().evicted["skipped"] == st_.evicted["skipped"]
    s3.close()


def test_crash_in_the_same_boot_leaves_no_gap(tmp_path: Path) -> None:
    s = open_store(tmp_path / "live", batch_max=5)
    s.append(readings(7))
    img = _crash_image(tmp_path / "live", tmp_path / "img")
    s.close()
    s2 = open_store(img, batch_max=5)
    assert s2.next_seq == 8
    assert sum(s2.stats().evicted.values()) == 0
    s2.close()


def test_old_style_hwm_after_unclean_stop_is_taken_as_reserved(tmp_path: Path) -> None:
    s = open_store(tmp_path / "live", batch_max=5)
    s.append(readings(5))
    img = _crash_image(tmp_path / "live", tmp_path / "img")
    s.close()
    (img / "ot" / "seq.hwm").write_text("500\n")  # written by an older version
    (img / "ot" / "seq.last").unlink(missing_ok=True)
    s2 = open_store(img, batch_max=5)
    assert (6, 500, "skipped") in s2.stats().evicted_recent
    assert s2.append(readings(1)) == [(501, 501)]
    s2.close()


# ---------------------------------------------------------------- journals survive a torn entry


def test_journal_torn_entry_then_appends_and_reopen(tmp_path: Path) -> None:
    from edge_agent.store.journal import Journal

    path = tmp_path / "evicted.log"
    j = Journal(path)
    j.append(1, 5, 1)
    j.append(6, 9, 2, sync=True)
    with open(path, "ab") as f:  # what a write cut short by ENOSPC leaves behind
        f.write(b"\x0a\x00\x00\x00\x00\x00\x00\x00\x0c\x00")
    j.append(10, 12, 3)
    j.append(13, 13, 4, sync=True)
    j.close()
    j = Journal(path)
    assert list(j.entries()) == [(1, 5, 1), (6, 9, 2), (10, 12, 3), (13, 13, 4)]
    j.append(14, 20, 1)
    j.close()
    assert list(Journal(path).entries())[-1] == (14, 20, 1)
    assert path.stat().st_size == 5 * 21  # the torn bytes were cleaned away


def test_journal_short_write_is_rolled_back(tmp_path: Path) -> None:
    from edge_agent.store.journal import Journal

    calls = {"n": 0}

    def write(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 2:  # the disk fills in the middle of the second entry
            return os.write(fd, data[:9])
        if calls["n"] in (3, 4):  # the rest of it (write_all goes on), then the next entry
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    path = tmp_path / "acked.log"
    j = Journal(path, write=write)
    j.append(1, 1)
    with pytest.raises(OSError) as exc:
        j.append(2, 2)
    assert exc.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        j.append(2, 2)
    j.append(2, 3)  # space again
    j.close()
    assert list(Journal(path).entries()) == [(1, 1, 0), (2, 3, 0)]


def test_evictions_after_a_torn_evicted_log_keep_their_reason(tmp_path: Path) -> None:
    seg = 64 * 1024
    kw: dict[str, object] = {"max_bytes": 3 * seg, "segment_bytes": seg, "batch_max": 200,
                             "reserve_bytes": 0}
    s = open_store(tmp_path, **kw)
    n = 0
    while s.stats().evicted["size"] == 0:
        s.append(readings(200, Priority.BULK, start=n))
        n += 200
    with open(tmp_path / "ot" / "evicted.log", "ab") as f:
        f.write(b"\x01\x02\x03")  # torn entry while the store is running
    before = s.stats().evicted["size"]
    while s.stats().evicted["size"] < 2 * before:
        s.append(readings(200, Priority.BULK, start=n))
        n += 200
    size = s.stats().evicted["size"]
    s.close()
    s = open_store(tmp_path, **kw)
    assert s.stats().evicted["size"] == size
    assert s.stats().evicted["corrupt"] == 0
    s.close()
