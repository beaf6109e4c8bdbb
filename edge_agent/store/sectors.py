"""Commits that reach the device as whole sectors instead of whole file-system blocks.

A commit of a few hundred bytes through the page cache makes the kernel write the whole
4 KiB block that holds them, at every commit: on an SD card's root file system that block
is most of what a quiet or a 100-readings/s node writes (docs/design/0018). Written with
``O_DIRECT`` the same commit is the sector-aligned run that holds it (often one or two
512-byte sectors): the bytes of the previous record back to the sector boundary, the new
records, and zeros up to the next boundary. It only ever overwrites a segment's zero tail
(blocks already allocated and written, so no metadata changes) and rewrites earlier bytes
with their own values.

``SectorWriter.put`` tries it and says how much of the data it wrote; whatever it did not
write the caller writes through its ordinary descriptor, so a file system, a device or an
alignment that refuses direct writes costs nothing but the saving. The first refusal
(``EINVAL``) tries the next alignment (512, then 4096 bytes); a second one turns direct
writes off for the store, with a log line.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("edge_agent.store")

ALIGNMENTS = (512, 4096)  # tried in order: a device's logical sector, then a 4 KiB one
TAIL = 4096  # what a segment keeps of its last bytes: enough for the largest alignment
_REFUSED = frozenset({errno.EINVAL, errno.EOPNOTSUPP})
_BUFFER_KEEP = 1024 * 1024  # the aligned buffer is kept for the next commit up to this

DirectWrite = Callable[[int, memoryview], int]


def tail_after(tail: bytes, data: bytes, end: int) -> bytes:
    """A segment's ``tail`` once ``data`` is written after it and the records end at
    ``end``: the bytes from the last ``TAIL`` boundary at or below ``end`` up to it."""
    keep = end % TAIL
    if keep == 0:
        return b""
    if len(data) >= keep:
        return data[len(data) - keep:]
    return (tail + data)[-keep:]


class SectorWriter:
    """Direct writes of one store's segments (not thread-safe: the store's lock)."""

    def __init__(self, root: Path, enabled: bool, write: DirectWrite = os.write) -> None:
        self._root = root
        self._write = write
        self._align = ALIGNMENTS[0] if enabled else 0  # 0: off
        self._next = 1  # the next alignment to try after a refusal
        self._proven = False  # a direct write went through: refusals are errors now
        self._buffer: mmap.mmap | None = None
        self.writes = 0  # commits written this way
        self.bytes = 0  # bytes written this way (whole sectors)

    @property
    def enabled(self) -> bool:
        return self._align != 0

    @property
    def alignment(self) -> int:
        return self._align

    def open(self, path: Path) -> int | None:
        """A second descriptor of a new segment for direct writes. None: off, the file
        system refuses ``O_DIRECT`` (off from now on), or it could not be opened (this
        segment is written through the page cache)."""
        if not self._align:
            return None
        try:
            return os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in _REFUSED:
                self._off(f"O_DIRECT refused ({exc.strerror})")
            return None

    def put(self, fd: int, offset: int, tail: bytes, data: bytes, limit: int) -> int:
        """Write ``data`` at ``offset`` of the file open as ``fd`` in whole aligned sectors,
        rebuilt from ``tail`` (the bytes before ``offset`` back to a ``TAIL`` boundary) and
        zeros, but only if the run ends within ``limit`` (the zero-filled part of the
        file). Returns how many bytes of ``data``, from its start, are written: all, fewer
        after a short write, or 0 when it was not written this way. Raises ``OSError`` for
        a write that failed."""
        while self._align:
            align = self._align
            start = offset - offset % align
            end = offset + len(data)
            stop = -(-end // align) * align
            if stop > limit or offset - start > len(tail):
                return 0
            head = tail[len(tail) - (offset - start):] if offset > start else b""
            size = stop - start
            buf = self._buf(size)
            filled = len(head) + len(data)
            buf[:len(head)] = head
            buf[len(head):filled] = data
            buf[filled:size] = bytes(size - filled)
            view = memoryview(buf)[:size]
            try:
                os.lseek(fd, start, os.SEEK_SET)
                written = self._write(fd, view)
            except OSError as exc:
                if exc.errno not in _REFUSED or self._proven:
                    raise
                self._refused(exc)
                continue
            finally:
                view.release()
            self._proven = True
            self.writes += 1
            self.bytes += max(0, written)
            return max(0, min(len(data), start + written - offset))
        return 0

    def close(self) -> None:
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None

    def _buf(self, size: int) -> mmap.mmap:
        """A page-aligned buffer of at least ``size`` bytes (anonymous mmap)."""
        if self._buffer is not None and len(self._buffer) >= size:
            return self._buffer
        if self._buffer is not None:
            self._buffer.close()
        length = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
        buf = mmap.mmap(-1, length)
        self._buffer = buf if length <= _BUFFER_KEEP else None
        return buf

    def _refused(self, exc: OSError) -> None:
        if self._next < len(ALIGNMENTS):
            self._align = ALIGNMENTS[self._next]
            self._next += 1
            return
        self._off(f"direct writes refused at every alignment ({exc.strerror})")

    def _off(self, why: str) -> None:
        self._align = 0
        log.info("store %s: %s; commits are written through the page cache",
                 self._root.name, why)
