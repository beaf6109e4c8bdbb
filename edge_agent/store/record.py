"""The on-disk record: one encrypted, compressed batch of readings from one lane.

Layout (little-endian), 48 bytes of framing around the ciphertext:

    magic     4  b"EAR1"
    lane      1  Priority value (0 alarm, 1 normal, 2 bulk)
    flags     1  bit 0: zlib-compressed
    key_id    2  which at-rest key sealed it
    first     8  first sequence number; the batch covers first .. first+count-1
    count     4
    oldest    8  float64 wall time of the oldest reading (retention)
    nonce    12  AES-GCM nonce (random)
    clen      4  ciphertext length, tag included
    ciphertext clen
    crc32     4  over everything above (detects torn/garbled writes without the key)

The plaintext is the batch's SenML records as a JSON array (RFC 8428). The header (with the
channel name) is the AES-GCM associated data, so a record cannot be moved to another
channel, lane or sequence range without failing authentication.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import NamedTuple, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"EAR1"
HEAD_SIZE = 4 + 1 + 1 + 2 + 8 + 4 + 8 + 12 + 4
_HEAD = struct.Struct("<4sBBHQId12sI")
assert _HEAD.size == HEAD_SIZE
TRAILER_SIZE = 4
CRC = struct.Struct("<I")  # the trailer
FLAG_ZLIB = 1
# plaintexts shorter than this are stored as they are: zlib saves a few bytes at most on
# one or two readings and costs more than the rest of sealing and opening them together
COMPRESS_MIN = 256
MAX_CIPHERTEXT = 64 * 1024 * 1024


class RecordCorrupt(Exception):
    """Internal: a record failed its CRC or framing (the store turns this into a report)."""


class RecordUnreadable(Exception):
    """Internal: a record's CRC is fine but it fails authentication (wrong key, tampering)."""


class RecordHeader(NamedTuple):
    """A decoded header (a tuple: recovery makes one per record, so it must be cheap)."""

    lane: int
    flags: int
    key_id: int
    first: int
    count: int  # type: ignore[assignment]  # the field hides tuple.count, never used here
    oldest: float
    nonce: bytes
    clen: int

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    @property
    def size(self) -> int:
        return HEAD_SIZE + self.clen + TRAILER_SIZE

    def pack(self) -> bytes:
        return _HEAD.pack(MAGIC, self.lane, self.flags, self.key_id, self.first, self.count,
                          self.oldest, self.nonce, self.clen)


def seal(aead: AESGCM, channel: str, lane: int, key_id: int, first: int, count: int,
         oldest: float, plaintext: bytes, compress: bool = True) -> bytes:
    """Build a complete record (header, ciphertext, CRC)."""
    flags = 0
    if compress and len(plaintext) >= COMPRESS_MIN:
        plaintext = zlib.compress(plaintext, 1)
        flags |= FLAG_ZLIB
    nonce = os.urandom(12)
    clen = len(plaintext) + 16
    head = RecordHeader(lane, flags, key_id, first, count, oldest, nonce, clen).pack()
    ct = aead.encrypt(nonce, plaintext, channel.encode() + head)
    body = head + ct
    return body + struct.pack("<I", zlib.crc32(body))


def parse_header(buf: bytes | memoryview) -> RecordHeader:
    """Decode a header; raises RecordCorrupt when it cannot be one."""
    if len(buf) < HEAD_SIZE:
        raise RecordCorrupt("short header")
    magic, lane, flags, key_id, first, count, oldest, nonce, clen = _HEAD.unpack_from(buf, 0)
    if magic != MAGIC:
        raise RecordCorrupt("bad magic")
    if lane > 2 or count == 0 or first == 0 or not 16 <= clen <= MAX_CIPHERTEXT:
        raise RecordCorrupt("impossible header")
    return RecordHeader(lane, flags, key_id, first, count, oldest, nonce, clen)


def unpack_header(buf: bytes | memoryview, off: int) -> RecordHeader | None:
    """The header at ``off`` of ``buf``, or None when there is none that could be valid
    (short, bad magic or impossible values); ``parse_header`` without the exception, for
    the scan's loop over every record of a segment."""
    if len(buf) - off < HEAD_SIZE:
        return None
    magic, lane, flags, key_id, first, count, oldest, nonce, clen = _HEAD.unpack_from(buf, off)
    if magic != MAGIC or lane > 2 or count == 0 or first == 0 \
            or not 16 <= clen <= MAX_CIPHERTEXT:
        return None
    return RecordHeader(lane, flags, key_id, first, count, oldest, nonce, clen)


def check_crc(record: bytes | memoryview) -> None:
    """Raises RecordCorrupt when ``record`` (a whole record) does not carry its CRC."""
    (crc,) = CRC.unpack_from(record, len(record) - TRAILER_SIZE)
    if zlib.crc32(memoryview(record)[:-TRAILER_SIZE]) != crc:
        raise RecordCorrupt("crc mismatch")


class KeyLookup(Protocol):
    def get(self, key_id: int) -> AESGCM | None: ...


def open_record(keys: KeyLookup, channel: str, record: bytes) -> tuple[RecordHeader, bytes]:
    """Verify and decrypt a whole record; returns (header, plaintext SenML JSON).

    The AES-GCM tag authenticates the header and the ciphertext, so the CRC (over the
    same bytes) is only read when the tag does not match: it tells a damaged record
    (``RecordCorrupt``) from a wrong key or tampering (``RecordUnreadable``)."""
    head = parse_header(record)
    if len(record) != head.size:
        raise RecordCorrupt("length mismatch")
    aead = keys.get(head.key_id)
    if aead is None:
        check_crc(record)
        raise RecordUnreadable(f"key {head.key_id} is gone (shredded or rotated away)")
    try:
        pt = aead.decrypt(head.nonce, record[HEAD_SIZE:HEAD_SIZE + head.clen],
                          channel.encode() + record[:HEAD_SIZE])
    except InvalidTag:
        check_crc(record)
        raise RecordUnreadable("authentication failed (wrong key or tampered)") from None
    if head.flags & FLAG_ZLIB:
        try:
            pt = zlib.decompress(pt)
        except zlib.error as exc:
            raise RecordUnreadable(f"decompression failed: {exc}") from None
    return head, pt
