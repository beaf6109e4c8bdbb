"""HDLC frame type 3 (IEC 62056-46) as HAN ports send it: addresses, CRC-16/X-25, LLC.

Frame: ``7E | A<S><len:11> | dst addr | src addr | control | HCS | info | FCS | 7E``; the
length counts the bytes between the flags, so 0x7E may occur inside the payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FLAG = 0x7E


LLC = bytes([0xE6, 0xE7, 0x00])


LLC_RESPONSE = bytes([0xE6, 0xE6, 0x00])


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25 (IBM-SDLC): poly 0x1021 reflected (0x8408), init/xorout 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


@dataclass(frozen=True)
class HdlcFrame:
    """An HDLC frame whose information field is not a (complete) notification."""

    offset: int
    dst: int
    src: int
    control: int
    info: bytes

    def to_json(self) -> dict[str, Any]:
        return {"type": "hdlc-frame", "offset": self.offset, "dst": self.dst, "src": self.src,
                "control": self.control, "info": self.info.hex()}


def hdlc_address(buf: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """An HDLC address (1, 2 or 4 bytes, last byte LSB = 1): (value, next position)."""
    value = 0
    for i in range(4):
        if pos + i >= end:
            return None
        byte = buf[pos + i]
        value = (value << 7) | (byte >> 1)
        if byte & 1:
            return (value, pos + i + 1) if i in (0, 1, 3) else None
    return None


def encode_frame(info: bytes, *, dst: int = 0x10, src: int = 0x41, control: int = 0x13,
                 segmented: bool = False) -> bytes:
    """An HDLC type-3 frame around ``info`` (1-byte addresses; emulators, tests)."""
    header_len = 2 + 1 + 1 + 1  # format, dst, src, control
    length = header_len + 2 + len(info) + 2 if info else header_len + 2
    if length > 0x7FF:
        raise ValueError("HDLC frame too long: segment the APDU")
    fmt = 0xA000 | (0x0800 if segmented else 0) | length
    header = fmt.to_bytes(2, "big") + bytes([(dst << 1) | 1, (src << 1) | 1, control])
    body = header + crc16_x25(header).to_bytes(2, "little") + info if info else header
    return bytes([FLAG]) + body + crc16_x25(body).to_bytes(2, "little") + bytes([FLAG])
