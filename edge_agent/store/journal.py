"""Small append-only journals of sequence ranges (acknowledged, evicted), torn-write safe.

Each entry is 21 bytes: first (u64), last (u64), tag (u8), crc32 (u32) over the first 17.

A journal must survive a torn entry without losing the entries after it:

- ``append`` keeps the file entry-aligned: a write that fails or comes back short (ENOSPC,
  EFBIG) is cut back to the last whole entry before the error is raised, so the next
  append (after space is freed) does not land behind half an entry;
- loading skips what is not a valid entry and *resynchronises* on the next one (a CRC
  that matches its 17 bytes), so a torn entry in the middle (a crash between a short
  write and its roll-back, or a file written by an older version that did not roll back)
  costs that entry only; a torn tail is truncated away and a damaged middle is rewritten
  (atomically) so later appends stay aligned.

A lost ack only causes a resend; evictions are synced before the data they describe is
removed, so a lost eviction entry shows up as a range reported ``corrupt``, never silently.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from edge_agent.core.errors import IncompleteWriteError
from edge_agent.core.fsutil import atomic_write, fsync_dir, write_all

__all__ = ["Journal", "encode", "fsync_dir", "parse"]

_ENTRY = struct.Struct("<QQB")
_CRC = struct.Struct("<I")
_SIZE = _ENTRY.size + _CRC.size

log = logging.getLogger("edge_agent.store")

Entry = tuple[int, int, int]


def encode(first: int, last: int, tag: int = 0) -> bytes:
    e = _ENTRY.pack(first, last, tag)
    return e + _CRC.pack(zlib.crc32(e))


def _valid_at(data: bytes, off: int) -> Entry | None:
    if off + _SIZE > len(data):
        return None
    (crc,) = _CRC.unpack_from(data, off + _ENTRY.size)
    if zlib.crc32(data[off:off + _ENTRY.size]) != crc:
        return None
    first, last, tag = _ENTRY.unpack_from(data, off)
    if not 1 <= first <= last:
        return None
    return first, last, tag


def parse(data: bytes) -> tuple[list[Entry], int, int]:
    """(valid entries in file order, end of the last valid entry, bytes skipped before it)."""
    entries: list[Entry] = []
    off = end = skipped = 0
    n = len(data)
    while off + _SIZE <= n:
        e = _valid_at(data, off)
        if e is not None:
            entries.append(e)
            off += _SIZE
            end = off
            continue
        # resynchronise: the next offset where a whole, valid entry starts
        nxt = off + 1
        while nxt + _SIZE <= n and _valid_at(data, nxt) is None:
            nxt += 1
        if nxt + _SIZE > n:
            break
        skipped += nxt - off
        off = nxt
    return entries, end, skipped


class Journal:
    def __init__(self, path: Path, fsync: Callable[[int], None] = os.fsync,
                 write: Callable[[int, bytes], int] = os.write) -> None:
        self.path = path
        self._fsync = fsync
        self._write = write
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.dirty = False
        data = path.read_bytes()
        self._entries, end, skipped = parse(data)
        self.repaired = 0  # bytes of torn or garbled entries dropped on open
        if skipped:
            self.repaired = len(data) - _SIZE * len(self._entries)
            log.warning("journal %s: %d bytes of damaged entries skipped; rewriting it",
                        path, self.repaired)
            try:
                self.rewrite(self._entries)
            except OSError as exc:  # e.g. a full disk: loading resyncs past it anyway
                log.error("journal %s: cannot rewrite (%s); kept as it is", path, exc)
        elif end < len(data):
            self.repaired = len(data) - end
            log.warning("journal %s: torn tail of %d bytes cut", path, self.repaired)
            os.ftruncate(self._fd, end)

    def entries(self) -> list[Entry]:
        """The entries read when the journal was opened (file order)."""
        return list(self._entries)

    def append(self, first: int, last: int, tag: int = 0, sync: bool = False) -> None:
        """Append one entry. A failed or short write (ENOSPC) is cut back off the file
        before the error is raised, so the next entry does not land behind half of one."""
        data = encode(first, last, tag)
        try:
            write_all(self._fd, data, write=self._write, what=self.path)
        except IncompleteWriteError as exc:
            if exc.written:
                with contextlib.suppress(OSError):  # shrinking a file needs no space
                    os.ftruncate(self._fd, os.fstat(self._fd).st_size - exc.written)
            raise
        self.dirty = True
        if sync:
            self.sync()

    def sync(self) -> None:
        if self.dirty:
            self._fsync(self._fd)
            self.dirty = False

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def rewrite(self, entries: list[Entry]) -> None:
        """Atomically replace the journal with ``entries`` (compaction, repair)."""
        buf = b"".join(encode(first, last, tag) for first, last, tag in entries)
        atomic_write(self.path, buf, 0o600, fsync=self._fsync, write=self._write)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND, 0o600)
        self.dirty = False

    def close(self) -> None:
        try:
            self.sync()
        finally:
            os.close(self._fd)
