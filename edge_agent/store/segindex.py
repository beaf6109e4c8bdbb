"""A segment's index file: the rows of every record of a closed segment, so that a start
reads them instead of scanning the segment record by record.

    <store>/lane-<n>/<first-seq, 20 digits>.idx   beside   <same>.seg

Written once, when the segment is closed for writing (rotated, or the store closes), from
the record table the writer filled; never rewritten (a segment at rest does not change).
Layout (little-endian):

    magic     4  b"EAX1"
    length    8  the segment file's length when the index was written
    count     4  records
    zlen      4  length of the compressed columns
    columns   zlen  zlib of: firsts (int64) counts, offsets, sizes (uint32) oldest
                    (float64) key ids (uint16), ``count`` of each, one column after another
    crc32     4  over everything above

Not synced: a torn or missing index (a power cut) fails its CRC or length check and the
segment is scanned as before, and so is a segment whose length is not the one the index
was written for (cut back after damage). The index says where records are, not that they
are intact: a record damaged on the card fails its authentication tag when it is opened
for delivery and is reported there (``runs.open_runs``), as one damaged after a scan is.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path

from edge_agent.core.fsutil import write_all
from edge_agent.store.table import RecordTable

MAGIC = b"EAX1"
_HEAD = struct.Struct("<4sQII")
_CRC = struct.Struct("<I")
SUFFIX = ".idx"
# (typecode, the table's column): the order of the columns in the file
_COLUMNS = (("q", "firsts"), ("I", "counts"), ("I", "offsets"), ("I", "sizes"),
            ("d", "oldest"), ("H", "keys"))


@dataclass(frozen=True)
class Columns:
    firsts: array[int]
    counts: array[int]
    offsets: array[int]
    sizes: array[int]
    oldest: array[float]
    keys: array[int]

    def __len__(self) -> int:
        return len(self.firsts)


def path_for(segment: Path) -> Path:
    return segment.with_suffix(SUFFIX)


def encode(table: RecordTable, length: int) -> bytes:
    """The index of a segment of ``length`` bytes whose records are ``table``'s rows."""
    cols = b"".join(_little(getattr(table, name)).tobytes() for _, name in _COLUMNS)
    z = zlib.compress(cols, 1)
    body = _HEAD.pack(MAGIC, length, len(table), len(z)) + z
    return body + _CRC.pack(zlib.crc32(body))


def decode(blob: bytes, length: int) -> Columns | None:
    """The columns, or None when ``blob`` is not a whole, intact index of a segment of
    ``length`` bytes whose records lie back to back from offset 0."""
    if len(blob) < _HEAD.size + _CRC.size:
        return None
    magic, seg_len, count, zlen = _HEAD.unpack_from(blob, 0)
    if magic != MAGIC or seg_len != length or len(blob) != _HEAD.size + zlen + _CRC.size:
        return None
    (crc,) = _CRC.unpack_from(blob, len(blob) - _CRC.size)
    if zlib.crc32(memoryview(blob)[:-_CRC.size]) != crc:
        return None
    try:
        raw = zlib.decompress(memoryview(blob)[_HEAD.size:_HEAD.size + zlen])
    except zlib.error:
        return None
    cols: list[array[int] | array[float]] = []
    at = 0
    for code, _ in _COLUMNS:
        col = array(code)
        end = at + col.itemsize * count
        if end > len(raw):
            return None
        col.frombytes(raw[at:end])
        cols.append(_little(col))
        at = end
    if at != len(raw):
        return None
    out = Columns(*cols)  # type: ignore[arg-type]
    return out if complete(out.offsets, out.sizes, length) else None


def complete(offsets: array[int], sizes: array[int], length: int) -> bool:
    """Whether records at ``offsets`` of ``sizes`` fill a segment of ``length`` bytes (the
    writer places them back to back from 0, so their sizes add up to the length)."""
    if not offsets:
        return length == 0
    return offsets[0] == 0 and sum(sizes) == length and offsets[-1] + sizes[-1] == length


def _little(col: array[int] | array[float]) -> array[int] | array[float]:
    """``col`` in little-endian order (a copy on a big-endian host)."""
    if sys.byteorder == "little":
        return col
    out = array(col.typecode, col)
    out.byteswap()
    return out


def write(segment: Path, table: RecordTable, length: int) -> int:
    """Write ``segment``'s index (no sync). Returns its size, 0 when it was not written:
    the table does not hold every record of the file, or no room, an I/O error (the
    segment will be scanned instead)."""
    if not complete(table.offsets, table.sizes, length):
        return 0
    blob = encode(table, length)
    path = path_for(segment)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, blob, what=path)
        finally:
            os.close(fd)
    except OSError:
        remove(segment)
        return 0
    return len(blob)


def read(segment: Path, length: int) -> Columns | None:
    """``segment``'s index when there is an intact one for its ``length``; None otherwise
    (absent, torn, or written for another length)."""
    try:
        blob = path_for(segment).read_bytes()
    except OSError:
        return None
    return decode(blob, length)


def size(segment: Path) -> int:
    """Bytes of ``segment``'s index file (0 when it has none)."""
    try:
        return path_for(segment).stat().st_size
    except OSError:
        return 0


def remove(segment: Path) -> None:
    with contextlib.suppress(OSError):
        path_for(segment).unlink()
