"""Commits written as whole sectors (``store/sectors.py``, docs/design/0018): the bytes on
disk are exactly what a write through the page cache leaves, refusals fall back to it, and
a failed direct write is a failed commit like any other."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.core.errors import StoreError
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.store import sectors
from edge_agent.store.channel_store import ChannelStore
from edge_agent.store.sectors import SectorWriter, tail_after

KEY = bytes(range(32))


def readings(n: int, start: int = 0) -> list[Reading]:
    return [Reading("meter-main", Channel.OT, Priority.NORMAL, "power", 1000.0 + start + i,
                    1_700_000_000.0 + start + i, "W") for i in range(n)]


def direct_ok(path: Path) -> bool:
    """O_DIRECT works on the file system that holds ``path``."""
    probe = path / "probe"
    probe.write_bytes(bytes(4096))
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_DIRECT)
    except OSError:
        return False
    try:
        import mmap
        buf = mmap.mmap(-1, 4096)
        try:
            return os.pwrite(fd, buf, 0) == 4096
        except OSError:
            return False
        finally:
            buf.close()
    finally:
        os.close(fd)
        probe.unlink()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    if not direct_ok(tmp_path):
        pytest.skip("no O_DIRECT on the file system that holds the test's files")
    yield tmp_path


def zero_file(path: Path, size: int) -> int:
    path.write_bytes(bytes(size))
    return os.open(path, os.O_WRONLY | os.O_DIRECT)


def test_tail_after_is_the_bytes_since_the_last_4k_boundary() -> None:
    rng = random.Random(7)
    content = b""
    tail = b""
    for _ in range(400):
        data = rng.randbytes(rng.choice([1, 7, 100, 511, 512, 700, 4095, 4096, 5000]))
        content += data
        tail = tail_after(tail, data, len(content))
        assert tail == content[len(content) - len(content) % sectors.TAIL:]


def test_commits_land_as_sectors_and_leave_the_same_bytes(disk: Path) -> None:
    rng = random.Random(1)
    size = 256 * 1024
    fd = zero_file(disk / "seg", size)
    sizes: list[int] = []

    def write(fd: int, data: memoryview) -> int:
        sizes.append(len(data))
        return os.write(fd, data)

    w = SectorWriter(disk, True, write)
    expected = bytearray(size)
    offset, tail = 0, b""
    try:
        while True:
            data = rng.randbytes(rng.randint(1, 1500))
            if offset + len(data) > size - 4096:
                break
            assert w.put(fd, offset, tail, data, size) == len(data)
            expected[offset:offset + len(data)] = data
            offset += len(data)
            tail = tail_after(tail, data, offset)
    finally:
        os.close(fd)
        w.close()
    assert (disk / "seg").read_bytes() == bytes(expected)
    assert w.alignment == 512 and w.writes == len(sizes) > 100
    assert all(n % 512 == 0 for n in sizes)
    # a commit of up to 1,500 bytes is at most four sectors, not a 4 KiB block
    assert max(sizes) <= 2048 and sum(sizes) / len(sizes) < 1536


def test_a_run_past_the_zero_tail_is_left_to_the_caller(disk: Path) -> None:
    fd = zero_file(disk / "seg", 8192)
    w = SectorWriter(disk, True)
    try:
        assert w.put(fd, 8150, bytes(4054), b"x" * 100, 8192) == 0  # would end past 8192
        assert w.put(fd, 8000, b"", b"x" * 100, 16384) == 0  # tail too short to rebuild
        assert w.writes == 0
    finally:
        os.close(fd)


def test_refused_alignment_tries_4k_then_turns_off(disk: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    fd = zero_file(disk / "seg", 65536)
    tries: list[int] = []

    def refuse_small(fd: int, data: memoryview) -> int:
        tries.append(len(data))
        if len(data) % 4096:
            raise OSError(errno.EINVAL, "Invalid argument")
        return os.write(fd, data)

    w = SectorWriter(disk, True, refuse_small)
    try:
        assert w.put(fd, 0, b"", b"a" * 600, 65536) == 600
        assert w.alignment == 4096 and tries == [1024, 4096]
        assert (disk / "seg").read_bytes()[:601] == b"a" * 600 + b"\0"
    finally:
        os.close(fd)

    fd = zero_file(disk / "seg2", 65536)

    def refuse(fd: int, data: memoryview) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    w = SectorWriter(disk, True, refuse)
    try:
        with caplog.at_level(logging.INFO, "edge_agent.store"):
            assert w.put(fd, 0, b"", b"a" * 600, 65536) == 0
        assert not w.enabled and "page cache" in caplog.text
        assert w.open(disk / "seg2") is None
    finally:
        os.close(fd)


def test_a_refusal_after_a_direct_write_went_through_is_an_error(disk: Path) -> None:
    fd = zero_file(disk / "seg", 65536)
    state = {"refuse": False}

    def write(fd: int, data: memoryview) -> int:
        if state["refuse"]:
            raise OSError(errno.EINVAL, "Invalid argument")
        return os.write(fd, data)

    w = SectorWriter(disk, True, write)
    try:
        assert w.put(fd, 0, b"", b"a" * 600, 65536) == 600
        state["refuse"] = True
        with pytest.raises(OSError):
            w.put(fd, 600, b"a" * 600, b"b" * 10, 65536)
        assert w.enabled
    finally:
        os.close(fd)


def store(path: Path, write: sectors.DirectWrite | None = None,
          **kw: object) -> ChannelStore:
    s = ChannelStore(path, Channel.OT, KEY, reserve_bytes=0, **kw)  # type: ignore[arg-type]
    if write is not None:
        s._segments.sectors._write = write
    return s


def drain(s: ChannelStore) -> list[float]:
    """Every pending reading's value, in delivery order (acked as read)."""
    values: list[float] = []
    while True:
        batches = s.lease(100)
        if not batches:
            return values
        for b in batches:
            values.extend(float(r["v"]) for r in json.loads(b.senml))
            s.ack(b.first)


def test_store_commits_directly_and_reads_them_back(disk: Path) -> None:
    s = store(disk)
    got: list[float] = []
    try:
        for k in range(30):
            s.append(readings(3, 3 * k))
            if k % 7 == 0:  # read right after a direct write: no stale page cache
                got += drain(s)
        assert s._segments.sectors.writes == 30
    finally:
        s.close()
    assert got == [1000.0 + i for i in range(87)]  # everything up to the 29th commit
    s2 = store(disk)
    try:
        assert s2.next_seq == 91
        assert drain(s2) == [1087.0, 1088.0, 1089.0]
    finally:
        s2.close()


def test_short_direct_write_is_completed_through_the_page_cache(disk: Path) -> None:
    def short(fd: int, data: memoryview) -> int:
        return os.write(fd, data[:512])

    s = store(disk, short)
    try:
        s.append(readings(5))
        s.append(readings(400, 5))  # a record of several sectors: the first one only
        assert s._segments.sectors.writes == 2
        got = drain(s)
    finally:
        s.close()
    assert got == [1000.0 + i for i in range(405)]


def test_failed_direct_write_is_a_failed_commit_and_cut_back(disk: Path) -> None:
    state = {"fail": False}

    def write(fd: int, data: memoryview) -> int:
        if state["fail"]:
            raise OSError(errno.EIO, "Input/output error")
        return os.write(fd, data)

    s = store(disk, write)
    try:
        assert s.append(readings(10)) == [(1, 10)]
        state["fail"] = True
        with pytest.raises(StoreError, match="direct write"):
            s.append(readings(10, 10))
        state["fail"] = False
        assert s.append(readings(10, 20)) == [(11, 20)]
    finally:
        s.close()
    s2 = store(disk)
    try:
        assert s2.stats().quarantined == 0 and sum(s2.stats().evicted.values()) == 0
        assert sorted(drain(s2)) == [1000.0 + i for i in range(10)] + \
            [1020.0 + i for i in range(10)]
    finally:
        s2.close()


def test_auto_is_off_on_a_tmpfs_and_with_an_injected_write(tmpfs: Path,
                                                           disk: Path) -> None:
    s = store(tmpfs)
    try:
        assert not s._segments.sectors.enabled
    finally:
        s.close()
    s = ChannelStore(disk, Channel.OT, KEY, reserve_bytes=0, write=os.write)
    try:
        assert s._segments.sectors.enabled
    finally:
        s.close()
    rig = ChannelStore(disk / "rig", Channel.OT, KEY, reserve_bytes=0,
                       write=lambda fd, data: os.write(fd, data))
    try:
        assert not rig._segments.sectors.enabled
    finally:
        rig.close()
