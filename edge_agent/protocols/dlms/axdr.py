"""A-XDR data (the DLMS encoding of values): a bounded reader and the decoder."""

from __future__ import annotations

import struct
from typing import Any

from edge_agent.core.errors import FrameError

MAX_APDU = 64 * 1024  # an APDU (joined segments) is at most this long

Data = None | bool | int | float | bytes | str | list["Data"]


class Truncated(FrameError):
    """The APDU ends before its encoding does (a stream parser waits for more bytes)."""


class Reader:
    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.pos = 0
        self.offset = offset  # stream offset of the APDU, for errors

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise Truncated("APDU ends inside a value", self.offset)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def length(self) -> int:
        first = self.byte()
        if first < 0x80:
            return first
        n = first & 0x7F
        if not 1 <= n <= 3:
            raise FrameError(f"bad length encoding 0x{first:02X}", self.offset)
        return int.from_bytes(self.take(n), "big")


_FIXED = {3: ("?", 1), 5: (">i", 4), 6: (">I", 4), 15: (">b", 1), 16: (">h", 2),
          17: (">B", 1), 18: (">H", 2), 20: (">q", 8), 21: (">Q", 8), 22: (">B", 1),
          23: (">f", 4), 24: (">d", 8)}


def decode_data(r: Reader, depth: int = 0) -> Data:
    """One A-XDR ``Data`` value."""
    if depth > 16:
        raise FrameError("data nested too deeply", r.offset)
    tag = r.byte()
    if tag == 0:
        return None
    if tag in (1, 2):  # array, structure
        count = r.length()
        if count > MAX_APDU:
            raise FrameError("impossible element count", r.offset)
        if count > r.remaining:  # every element takes at least one byte
            raise Truncated("APDU ends inside an array/structure", r.offset)
        return [decode_data(r, depth + 1) for _ in range(count)]
    if tag in _FIXED:
        fmt, size = _FIXED[tag]
        value = struct.unpack(fmt, r.take(size))[0]
        return bool(value) if tag == 3 else value
    if tag == 4:  # bit-string
        bits = r.length()
        return r.take((bits + 7) // 8)
    if tag in (9, 13):  # octet-string, bcd (as raw)
        return r.take(r.length() if tag == 9 else 1)
    if tag in (10, 12):  # visible-string, utf8-string
        raw = r.take(r.length())
        try:
            return raw.decode("utf-8" if tag == 12 else "latin-1")
        except UnicodeDecodeError:
            raise FrameError("utf8-string is not valid UTF-8", r.offset) from None
    if tag == 25:
        return r.take(12)
    if tag == 26:
        return r.take(5)
    if tag == 27:
        return r.take(4)
    raise FrameError(f"unsupported data tag {tag}", r.offset)


def jsonable(value: Data) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw
