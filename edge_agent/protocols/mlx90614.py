"""Melexis MLX90614 SMBus codec: PEC (CRC-8 poly 0x07) and RAM temperature words.

Pure functions, no I/O. A "read word" is addr+W, command, repeated start, addr+R, then
LSB, MSB, PEC; the PEC covers every byte of the transaction, addresses included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_agent.core.errors import ChecksumError, FrameError

ADDRESS_DEFAULT = 0x5A
RAM_TA = 0x06  # ambient (die) temperature
RAM_TOBJ1 = 0x07  # object temperature, zone 1
RAM_TOBJ2 = 0x08
ERROR_FLAG = 0x8000

T_OBJECT_RANGE = (-70.0, 380.0)  # degC, the sensor's object range
T_AMBIENT_RANGE = (-40.0, 125.0)


def pec(data: bytes) -> int:
    """SMBus PEC: CRC-8, polynomial 0x07 (x^8 + x^2 + x + 1), init 0."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _header(address: int, command: int) -> bytes:
    return bytes([address << 1, command, (address << 1) | 1])


def encode_read_word(address: int, command: int, word: int) -> bytes:
    """What the device sends for a read word: LSB, MSB, PEC."""
    data = word.to_bytes(2, "little")
    return data + bytes([pec(_header(address, command) + data)])


@dataclass(frozen=True)
class Temperature:
    raw: int

    @property
    def celsius(self) -> float:
        return self.raw * 0.02 - 273.15

    def to_json(self) -> dict[str, Any]:
        return {"raw": self.raw, "celsius": self.celsius}


def decode_read_word(address: int, command: int, data: bytes) -> int:
    """Check the PEC of a read-word answer and return the word."""
    if len(data) != 3:
        raise FrameError(f"read word answer is 3 bytes, got {len(data)}", 0)
    want = pec(_header(address, command) + bytes(data[:2]))
    if data[2] != want:
        raise ChecksumError(f"PEC 0x{data[2]:02X} != 0x{want:02X}", 2)
    return int.from_bytes(data[:2], "little")


def decode_temperature(address: int, command: int, data: bytes) -> Temperature:
    """A RAM temperature; FrameError when the device sets its error flag (bit 15)."""
    word = decode_read_word(address, command, data)
    if word & ERROR_FLAG:
        raise FrameError(f"device error flag set in 0x{word:04X}", 1)
    return Temperature(word)


def raw_from_celsius(celsius: float) -> int:
    """The nearest 15-bit RAM value for a temperature (clamped)."""
    return max(0, min(0x7FFF, round((celsius + 273.15) / 0.02)))
