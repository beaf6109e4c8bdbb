"""Small append-only journals of sequence ranges (acknowledged, evicted), torn-write safe.

Each entry is 21 bytes: first (u64), last (u64), tag (u8), crc32 (u32). A torn or garbled
tail is ignored on load (an unsynced ack only causes a resend; evictions are synced before
the data they describe is removed).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

_ENTRY = struct.Struct("<QQB")
_SIZE = _ENTRY.size + 4


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    def __init__(self, path: Path, fsync: Callable[[int], None] = os.fsync) -> None:
        self.path = path
        self._fsync = fsync
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.dirty = False

    def entries(self) -> Iterator[tuple[int, int, int]]:
        data = self.path.read_bytes()
        for off in range(0, len(data) - _SIZE + 1, _SIZE):
            chunk = data[off:off + _ENTRY.size]
            (crc,) = struct.unpack_from("<I", data, off + _ENTRY.size)
            if zlib.crc32(chunk) != crc:
                break
            yield _ENTRY.unpack(chunk)
        # a partial tail is dropped at the next rewrite; appends stay entry-aligned
        tail = len(data) % _SIZE
        if tail:
            os.ftruncate(self._fd, len(data) - tail)

    def append(self, first: int, last: int, tag: int = 0, sync: bool = False) -> None:
        e = _ENTRY.pack(first, last, tag)
        os.write(self._fd, e + struct.pack("<I", zlib.crc32(e)))
        self.dirty = True
        if sync:
            self.sync()

    def sync(self) -> None:
        if self.dirty:
            self._fsync(self._fd)
            self.dirty = False

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def rewrite(self, entries: list[tuple[int, int, int]]) -> None:
        """Atomically replace the journal with ``entries`` (compaction)."""
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            buf = bytearray()
            for first, last, tag in entries:
                e = _ENTRY.pack(first, last, tag)
                buf += e + struct.pack("<I", zlib.crc32(e))
            os.write(fd, bytes(buf))
            self._fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND, 0o600)
        self.dirty = False

    def close(self) -> None:
        try:
            self.sync()
        finally:
            os.close(self._fd)
