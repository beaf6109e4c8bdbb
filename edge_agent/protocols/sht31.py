"""Sensirion SHT3x-DIS (SHT31) command codec: CRC-8, conversions, measurement words.

Pure functions, no I/O. The driver decodes what it reads; the emulator uses the encode side.
Datasheet: CRC-8 polynomial 0x31 (x^8 + x^5 + x^4 + 1), init 0xFF, no reflection, no final
XOR, over each 2-byte word; T = -45 + 175 * S / 65535 degC, RH = 100 * S / 65535 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_agent.core.errors import ChecksumError, FrameError

ADDRESS_DEFAULT = 0x44  # ADDR pin low; 0x45 when high

CMD_MEASURE_HIGH = 0x2400  # single shot, high repeatability, clock stretching disabled
CMD_MEASURE_MEDIUM = 0x240B
CMD_MEASURE_LOW = 0x2416
CMD_SOFT_RESET = 0x30A2
CMD_READ_STATUS = 0xF32D
CMD_CLEAR_STATUS = 0x3041
CMD_HEATER_ON = 0x306D
CMD_HEATER_OFF = 0x3066

MEASURE_COMMANDS = frozenset({CMD_MEASURE_HIGH, CMD_MEASURE_MEDIUM, CMD_MEASURE_LOW})

STATUS_ALERT_PENDING = 1 << 15
STATUS_HEATER_ON = 1 << 13
STATUS_RH_ALERT = 1 << 11
STATUS_T_ALERT = 1 << 10
STATUS_RESET_DETECTED = 1 << 4
STATUS_COMMAND_FAILED = 1 << 1
STATUS_WRITE_CRC_FAILED = 1 << 0

T_MIN, T_MAX = -40.0, 125.0  # specified operating range, degC
RH_MIN, RH_MAX = 0.0, 100.0


def crc8(data: bytes) -> int:
    """Sensirion CRC-8 (poly 0x31, init 0xFF). ``crc8(b"\\xbe\\xef") == 0x92``."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def command(cmd: int) -> bytes:
    """The two bytes of a 16-bit command, MSB first."""
    return cmd.to_bytes(2, "big")


def encode_word(value: int) -> bytes:
    """A 16-bit word as sent by the sensor: MSB, LSB, CRC."""
    raw = value.to_bytes(2, "big")
    return raw + bytes([crc8(raw)])


def decode_word(data: bytes, offset: int = 0) -> int:
    """Check and decode one MSB, LSB, CRC triple; ChecksumError on a CRC mismatch."""
    if len(data) < offset + 3:
        raise FrameError(f"need 3 bytes for a word, got {len(data) - offset}", offset)
    raw = bytes(data[offset:offset + 2])
    if crc8(raw) != data[offset + 2]:
        raise ChecksumError(
            f"CRC 0x{data[offset + 2]:02X} != 0x{crc8(raw):02X} for word {raw.hex()}", offset + 2)
    return int.from_bytes(raw, "big")


def temperature_from_raw(raw: int) -> float:
    return -45.0 + 175.0 * raw / 65535.0


def humidity_from_raw(raw: int) -> float:
    return 100.0 * raw / 65535.0


def raw_from_temperature(celsius: float) -> int:
    """The nearest raw word for a temperature (clamped to what 16 bits can say)."""
    return max(0, min(0xFFFF, round((celsius + 45.0) * 65535.0 / 175.0)))


def raw_from_humidity(percent: float) -> int:
    return max(0, min(0xFFFF, round(percent * 65535.0 / 100.0)))


@dataclass(frozen=True)
class Measurement:
    """One decoded measurement answer."""

    raw_temperature: int
    raw_humidity: int

    @property
    def temperature(self) -> float:
        return temperature_from_raw(self.raw_temperature)

    @property
    def humidity(self) -> float:
        return humidity_from_raw(self.raw_humidity)

    def to_json(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "humidity": self.humidity,
                "raw_temperature": self.raw_temperature, "raw_humidity": self.raw_humidity}


def encode_measurement(raw_temperature: int, raw_humidity: int) -> bytes:
    """The 6-byte answer: T MSB, T LSB, CRC, RH MSB, RH LSB, CRC."""
    return encode_word(raw_temperature) + encode_word(raw_humidity)


def decode_measurement(data: bytes) -> Measurement:
    """Decode a 6-byte answer; FrameError on a wrong length, ChecksumError on a bad CRC."""
    if len(data) != 6:
        raise FrameError(f"measurement is 6 bytes, got {len(data)}", 0)
    return Measurement(decode_word(data, 0), decode_word(data, 3))
