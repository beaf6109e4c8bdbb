"""Opening a store without scanning it (``recover_later``) and scanning it afterwards
(``ChannelStore.recover``): numbering exact at once, alarms committed and delivered at
once, each lane delivered in order while older segments are still being scanned, acks,
evictions and crashes in the middle of the scan (docs/design/0015-startup-and-compact-index.md).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.store import record as rec
from edge_agent.store import segindex
from edge_agent.store.channel_store import ChannelStore

KEY = bytes(range(32))
SEGMENT = 4096  # a few dozen one-reading records per segment


def readings(n: int, prio: Priority = Priority.NORMAL, start: int = 0) -> list[Reading]:
    return [Reading("meter", Channel.OT, prio, "power", float(start + i),
                    1_700_000_000.0 + start + i, "W") for i in range(n)]


def open_store(root: Path, later: bool = True, **kw: object) -> ChannelStore:
    return ChannelStore(root, Channel.OT, KEY, segment_bytes=SEGMENT, batch_max=1,  # type: ignore[arg-type]
                        reserve_bytes=0, recover_later=later, **kw)


def fill(root: Path, normal: int, alarms: int = 0) -> None:
    s = open_store(root, later=False)
    try:
        for i in range(0, normal, 50):
            s.append(readings(min(50, normal - i), start=i))
        for i in range(alarms):
            s.append(readings(1, Priority.ALARM, start=10_000 + i))
    finally:
        s.close()


def segment_count(root: Path, lane: int) -> int:
    return len(list((root / "ot" / f"lane-{lane}").glob("*.seg")))


def scan_one(s: ChannelStore) -> bool:
    """Scan exactly one more segment; True when the scan is complete."""
    stop = threading.Event()
    return s.recover(stop, progress=stop.set)


def lease_all(s: ChannelStore, ack: bool = True) -> list[int]:
    out: list[int] = []
    while batches := s.lease(16):
        for b in batches:
            out.extend(range(b.first, b.last + 1))
            if ack:
                assert s.ack(b.first)
    return out


def test_open_scans_only_the_newest_segment_and_numbering_is_exact(tmp_path: Path) -> None:
    fill(tmp_path, 400)
    segs = segment_count(tmp_path, 1)
    assert segs > 4
    s = open_store(tmp_path)
    try:
        st = s.stats()
        assert st.recovering_segments == segs - 1  # the newest was scanned at open
        assert s.next_seq == 401
        assert s.lease(16) == []  # the lane is held behind its unscanned segments
        assert s.append(readings(1, start=400)) == [(401, 401)]
        assert s.lease(16) == []  # new readings wait behind the old ones too
        assert s.recover() is True
        assert s.stats().recovering_segments == 0
        assert lease_all(s) == list(range(1, 402))  # in order, nothing missing
        assert s.stats().evicted["corrupt"] == 0
    finally:
        s.close()


def test_alarm_committed_and_delivered_while_the_backlog_is_unscanned(tmp_path: Path) -> None:
    fill(tmp_path, 300)
    s = open_store(tmp_path)
    try:
        assert s.stats().recovering_segments > 0
        assert s.append(readings(1, Priority.ALARM, start=999)) == [(301, 301)]
        (b,) = s.lease(16)  # the alarm lane has no old segment: out at once
        assert (b.lane, b.first) == (Priority.ALARM, 301)
        assert s.ack(301)
        assert s.recover()
        assert lease_all(s) == list(range(1, 301))
    finally:
        s.close()


def test_old_alarms_are_scanned_first_and_keep_their_order(tmp_path: Path) -> None:
    fill(tmp_path, 200, alarms=120)  # alarms fill several segments of the alarm lane
    assert segment_count(tmp_path, 0) > 2
    s = open_store(tmp_path)
    try:
        assert s.append(readings(1, Priority.ALARM, start=5000)) == [(321, 321)]
        seen: list[int] = []
        done = False
        while not done:
            done = scan_one(s)
            for b in s.lease(1000, lanes=[0]):
                seen.append(b.first)
                assert s.ack(b.first)
            # the alarm lane is never delivered past a segment not scanned yet
            assert seen == sorted(seen)
        assert seen == list(range(201, 322))
        assert lease_all(s) == list(range(1, 201))
    finally:
        s.close()


def test_acks_during_the_scan_and_a_crash_before_it_ends(tmp_path: Path) -> None:
    fill(tmp_path, 400)
    s = open_store(tmp_path)
    try:
        assert not scan_one(s)  # the oldest segment only
        first = lease_all(s)
        assert first and first == list(range(1, len(first) + 1))
        assert s.append(readings(5, start=400))[-1] == (405, 405)
        image = tmp_path / "image"
        shutil.copytree(tmp_path / "ot", image / "ot")  # what a kill -9 leaves now
    finally:
        s.abandon()
    again = open_store(image, later=False)
    try:
        st = again.stats()
        assert st.recovering_segments == 0
        assert st.evicted["corrupt"] == 0 and st.evicted["skipped"] == 0
        assert again.next_seq == 406
        # nothing acknowledged comes back; everything else does, in order
        assert lease_all(again) == list(range(len(first) + 1, 406))
    finally:
        again.close()


def test_size_budget_evicts_an_unscanned_segment_and_reports_its_records(
        tmp_path: Path) -> None:
    fill(tmp_path, 400)
    on_disk = sum(p.stat().st_size for p in (tmp_path / "ot").glob("lane-1/*.*"))
    s = open_store(tmp_path, max_bytes=on_disk + 200)
    try:
        assert s.stats().bytes_on_disk == on_disk  # unscanned files counted by size
        s.append(readings(20, start=400))  # over budget: the oldest (unscanned) goes
        st = s.stats()
        assert st.evicted["size"] > 0
        evicted = s.evicted_ranges()
        assert 1 in evicted
        assert s.recover()
        delivered = lease_all(s)
        assert delivered == sorted(delivered)
        every = set(delivered) | {n for a, b in evicted for n in range(a, b + 1)}
        assert every == set(range(1, 421))  # each number delivered or reported
        assert s.stats().evicted["corrupt"] == 0
    finally:
        s.close()


def test_damage_found_by_the_background_scan_is_cut_and_reported(tmp_path: Path) -> None:
    fill(tmp_path, 400)
    victim = sorted((tmp_path / "ot" / "lane-1").glob("*.seg"))[1]
    segindex.remove(victim)  # no index (a power cut came before it was written): scanned
    data = bytearray(victim.read_bytes())
    size = rec.parse_header(bytes(data[:rec.HEAD_SIZE])).size
    data[size + 60] ^= 0xFF  # the second record of the second segment
    victim.write_bytes(bytes(data))
    s = open_store(tmp_path)
    try:
        assert s.stats().damaged_segments == 0  # not scanned yet
        assert s.recover()
        st = s.stats()
        assert st.damaged_segments == 1
        lost = [n for a, b, why in st.evicted_recent if why == "corrupt"
                for n in range(a, b + 1)]
        assert len(lost) == 1
        assert lease_all(s) == [n for n in range(1, 401) if n not in lost]
    finally:
        s.close()


def test_recover_stops_when_closed_and_the_next_start_scans_the_rest(
        tmp_path: Path) -> None:
    fill(tmp_path, 400)
    s = open_store(tmp_path)
    scan_one(s)
    s.close()
    assert s.recover() is False  # closed: nothing more is scanned
    again = open_store(tmp_path, later=False)
    try:
        assert lease_all(again) == list(range(1, 401))
        assert again.stats().evicted["corrupt"] == 0
    finally:
        again.close()


def test_an_alarm_commit_does_not_wait_for_a_segment_being_scanned(tmp_path: Path) -> None:
    """The scan reads and parses a segment outside the store lock."""
    fill(tmp_path, 400)
    s = open_store(tmp_path)
    reading, go_on = threading.Event(), threading.Event()
    real_scan = s._recovery.scan

    def slow_scan(*args: object) -> object:
        reading.set()
        assert go_on.wait(10)
        return real_scan(*args)  # type: ignore[arg-type]

    s._recovery.scan = slow_scan  # type: ignore[assignment,method-assign]
    t = threading.Thread(target=s.recover)
    try:
        t.start()
        assert reading.wait(10)
        assert s.append(readings(1, Priority.ALARM, start=7)) == [(401, 401)]
        assert [b.first for b in s.lease(4)] == [401]
        assert t.is_alive()  # still scanning: the commit and the lease did not wait
    finally:
        go_on.set()
        t.join(10)
        s.close()


def test_a_segment_deleted_before_its_scan_is_reported_lost(tmp_path: Path) -> None:
    fill(tmp_path, 400)
    s = open_store(tmp_path)
    try:
        victim = sorted((tmp_path / "ot" / "lane-1").glob("*.seg"))[1]
        gone_from = int(victim.stem)
        victim.unlink()  # behind the store's back, after open
        assert s.recover()  # does not spin on the missing file
        st = s.stats()
        lost = {n for a, b, why in st.evicted_recent if why == "corrupt"
                for n in range(a, b + 1)}
        assert lost and min(lost) == gone_from
        assert lease_all(s) == [n for n in range(1, 401) if n not in lost]
    finally:
        s.close()


# ------------------------------------------------------------------ segment index files


def lane_files(root: Path, suffix: str) -> list[Path]:
    return sorted((root / "ot" / "lane-1").glob(f"*{suffix}"))


def test_closed_segments_are_read_from_their_index_files(tmp_path: Path) -> None:
    """Each segment gets an index file when it is closed; a start reads those instead of
    scanning, and delivers exactly what a scan would."""
    fill(tmp_path, 400)
    segs = lane_files(tmp_path, ".seg")
    assert len(segs) > 3
    assert [p.with_suffix(".idx") for p in segs] == lane_files(tmp_path, ".idx")
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "ot", copy / "ot")
    for p in lane_files(copy, ".idx"):
        p.unlink()
    got: dict[str, list[int]] = {}
    for name, root in (("indexed", tmp_path), ("scanned", copy)):
        s = open_store(root)
        try:
            first = lease_all(s, ack=False)  # the newest segment, read before READY=1
            assert s.recover()
            got[name] = first + lease_all(s, ack=False)
            assert s.indexed_segments == (len(segs) if name == "indexed" else 0)
            assert s.stats().evicted["corrupt"] == 0 and s.stats().quarantined == 0
        finally:
            s.close()
    assert sorted(got["indexed"]) == sorted(got["scanned"]) == list(range(1, 401))
    # an index beside its segment is no stray
    assert not list((tmp_path / "ot").glob("quarantine/*"))


def test_acknowledged_records_stay_acknowledged_when_read_from_an_index(tmp_path: Path) -> None:
    fill(tmp_path, 400)
    s = open_store(tmp_path)
    try:
        assert s.recover()
        done = set()
        while len(done) < 150:
            for b in s.lease(8):
                done.update(range(b.first, b.last + 1))
                assert s.ack(b.first)
    finally:
        s.close()
    s = open_store(tmp_path)
    try:
        assert s.recover()
        assert s.indexed_segments > 0
        assert sorted(lease_all(s)) == [n for n in range(1, 401) if n not in done]
    finally:
        s.close()


def test_an_index_that_does_not_fit_its_segment_is_not_used(tmp_path: Path) -> None:
    """Torn, emptied or garbled index files, and a segment whose length changed (a zero
    tail left by a power cut), are scanned instead; the delivery is the same."""
    fill(tmp_path, 400)
    idx = lane_files(tmp_path, ".idx")
    assert len(idx) >= 5
    idx[0].write_bytes(idx[0].read_bytes()[:-7])  # torn
    idx[1].write_bytes(b"")
    blob = bytearray(idx[2].read_bytes())
    blob[20] ^= 0x01  # a bit flip in the columns
    idx[2].write_bytes(bytes(blob))
    seg = idx[3].with_suffix(".seg")
    seg.write_bytes(seg.read_bytes() + bytes(4096))  # a zero tail the index does not know
    s = open_store(tmp_path)
    try:
        first = lease_all(s)
        assert s.recover()
        assert s.indexed_segments == len(idx) - 4
        assert sorted(first + lease_all(s)) == list(range(1, 401))
        assert s.stats().evicted["corrupt"] == 0
        assert not any(p.exists() for p in idx[:3])  # of no use: deleted
    finally:
        s.close()
    assert all(p.exists() for p in lane_files(tmp_path, ".seg"))


def test_a_record_damaged_behind_its_index_is_reported_when_delivered(tmp_path: Path) -> None:
    """An index says where records are, not that they are intact: a record damaged on the
    card later fails when it is opened for delivery, is reported corrupt, and its segment
    is kept as evidence; the rest is delivered."""
    fill(tmp_path, 400)
    victim = lane_files(tmp_path, ".seg")[1]
    data = bytearray(victim.read_bytes())
    size = rec.parse_header(bytes(data[:rec.HEAD_SIZE])).size
    data[size + 60] ^= 0xFF  # the second record of the second segment
    victim.write_bytes(bytes(data))
    inode = victim.stat().st_ino
    s = open_store(tmp_path)
    try:
        assert s.recover()
        assert s.stats().damaged_segments == 0 and s.indexed_segments > 0
        delivered = lease_all(s)
        st = s.stats()
        lost = [n for a, b, why in st.evicted_recent if why == "corrupt"
                for n in range(a, b + 1)]
        assert len(lost) == 1 and st.unreadable_records == 1
        assert sorted(delivered) == [n for n in range(1, 401) if n not in lost]
        kept = list((tmp_path / "ot" / "quarantine").iterdir())
        assert len(kept) == 1 and kept[0].stat().st_ino == inode  # a link: no copy
    finally:
        s.close()


def test_an_index_without_its_segment_is_a_stray(tmp_path: Path) -> None:
    fill(tmp_path, 400)
    lone = lane_files(tmp_path, ".idx")[0]
    lone.with_suffix(".seg").unlink()
    s = open_store(tmp_path)
    try:
        assert not lone.exists()
        assert [p.name.endswith(lone.name) for p in (tmp_path / "ot" / "quarantine").iterdir()]
    finally:
        s.close()
