"""Seeed 60 GHz radars MR60FDA1 (fall) and MR60BHA1 (breathing/heart): one frame format.

Frame::

    53 59 | control | command | length (2, big-endian) | data | sum | 54 43

``sum`` is the low byte of the sum of every byte before it. A command word with bit 7 set is
a query (host -> radar, data ``0F``) or the radar's answer to it, laid out as the report.

Reports decoded (control, command):

- 01 01 heartbeat, 01 02 reset, 02 xx product information (text);
- 80 01 presence (0 nobody, 1 somebody), 80 02 motion (0 none, 1 stationary, 2 moving),
  80 03 body movement parameter (0..100), 80 04 distance (2 bytes, cm),
  80 05 direction (x, y, z: 2 bytes each, bit 15 = sign, cm);
- 81 01 breathing state, 81 02 respiration rate (/min), 81 05 breath waveform (5 points);
- 83 01 fall (0 no, 1 fall), 83 05 stationary residence (0 no, 1 yes);
- 84 01 bed, 84 02 sleep state, 84 03..05 awake/light/deep sleep time (min), 84 06 score;
- 85 02 heart rate (/min), 85 05 heart waveform (5 points).

Waveforms are decoded for inspection only; drivers never publish them. Other words decode
as ``unknown`` with their raw data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError
from edge_agent.protocols.noise import HeaderFramedParser

HEADER = b"\x53\x59"
FOOTER = b"\x54\x43"
QUERY_BIT = 0x80
QUERY_DATA = b"\x0f"
MAX_DATA = 128
"""Largest data length accepted; bounds the bytes held for an incomplete frame."""

CTRL_SYSTEM = 0x01
CTRL_PRODUCT = 0x02
CTRL_HUMAN = 0x80
CTRL_BREATH = 0x81
CTRL_FALL = 0x83
CTRL_SLEEP = 0x84
CTRL_HEART = 0x85
PRODUCT_MODEL = 0xA1  # control 0x02: product information items start here

WAVEFORMS = frozenset({"breath_waveform", "heart_waveform"})

Value = bool | int | str | tuple[int, ...] | None
Decoder = Callable[[bytes], Value]


class PayloadError(ValueError):
    """Internal: a known report's data does not match its layout."""


def _one(data: bytes) -> int:
    if len(data) != 1:
        raise PayloadError(f"{len(data)} data bytes, expected 1")
    return data[0]


def _u8(data: bytes) -> Value:
    return _one(data)


def _u16(data: bytes) -> Value:
    if len(data) != 2:
        raise PayloadError(f"{len(data)} data bytes, expected 2")
    return int.from_bytes(data, "big")


def _flag(data: bytes) -> Value:
    v = _one(data)
    if v > 1:
        raise PayloadError(f"flag value {v}, expected 0 or 1")
    return v == 1


def _enum(*labels: str, first: int = 0) -> Decoder:
    def decode(data: bytes) -> Value:
        v = _one(data) - first
        if not 0 <= v < len(labels):
            raise PayloadError(f"unknown code {v + first}")
        return labels[v]
    return decode


def _wave(data: bytes) -> Value:
    if len(data) != 5:
        raise PayloadError(f"{len(data)} waveform points, expected 5")
    return tuple(data)


def _direction(data: bytes) -> Value:
    if len(data) != 6:
        raise PayloadError(f"{len(data)} data bytes, expected 6")
    out = []
    for i in range(0, 6, 2):
        raw = int.from_bytes(data[i:i + 2], "big")
        out.append(-(raw & 0x7FFF) if raw & 0x8000 else raw)
    return tuple(out)


def _text(data: bytes) -> Value:
    return data.decode("ascii") if data.isascii() and data.decode("ascii").isprintable() \
        else data.hex()


REPORTS: dict[tuple[int, int], tuple[str, Decoder]] = {
    (CTRL_SYSTEM, 0x01): ("heartbeat", _u8),
    (CTRL_SYSTEM, 0x02): ("reset", _u8),
    (CTRL_HUMAN, 0x01): ("presence", _flag),
    (CTRL_HUMAN, 0x02): ("motion", _enum("none", "stationary", "moving")),
    (CTRL_HUMAN, 0x03): ("body_movement", _u8),
    (CTRL_HUMAN, 0x04): ("distance", _u16),
    (CTRL_HUMAN, 0x05): ("direction", _direction),
    (CTRL_BREATH, 0x01): ("breath_state", _enum("normal", "rapid", "slow", "none", first=1)),
    (CTRL_BREATH, 0x02): ("respiration_rate", _u8),
    (CTRL_BREATH, 0x05): ("breath_waveform", _wave),
    (CTRL_FALL, 0x01): ("fall", _flag),
    (CTRL_FALL, 0x05): ("residence", _flag),
    (CTRL_SLEEP, 0x01): ("bed", _enum("out", "in", "none")),
    (CTRL_SLEEP, 0x02): ("sleep_state", _enum("deep", "light", "awake", "none")),
    (CTRL_SLEEP, 0x03): ("awake_minutes", _u16),
    (CTRL_SLEEP, 0x04): ("light_sleep_minutes", _u16),
    (CTRL_SLEEP, 0x05): ("deep_sleep_minutes", _u16),
    (CTRL_SLEEP, 0x06): ("sleep_score", _u8),
    (CTRL_HEART, 0x02): ("heart_rate", _u8),
    (CTRL_HEART, 0x05): ("heart_waveform", _wave),
}
_QUERYABLE = frozenset({CTRL_HUMAN, CTRL_BREATH, CTRL_FALL, CTRL_SLEEP, CTRL_HEART})


@dataclass(frozen=True)
class Frame:
    """One checked frame and its decoded value (None for a query request)."""

    control: int
    command: int
    data: bytes
    name: str
    value: Value
    offset: int = field(default=0, compare=False)

    @property
    def query(self) -> bool:
        return self.control in _QUERYABLE and bool(self.command & QUERY_BIT)

    @property
    def waveform(self) -> bool:
        return self.name in WAVEFORMS

    def to_json(self) -> dict[str, Any]:
        value: Any = list(self.value) if isinstance(self.value, tuple) else self.value
        out: dict[str, Any] = {
            "control": f"0x{self.control:02x}",
            "command": f"0x{self.command:02x}",
            "name": self.name,
            "value": value,
            "data": self.data.hex(),
        }
        if self.query:
            out["query"] = True
        return out


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def encode(control: int, command: int, data: bytes, *, bad_checksum: bool = False) -> bytes:
    """A frame; ``bad_checksum`` makes one with a wrong sum (emulator faults, tests)."""
    head = HEADER + bytes([control, command]) + len(data).to_bytes(2, "big") + data
    return head + bytes([(checksum(head) + bad_checksum) & 0xFF]) + FOOTER


def query(control: int, command: int) -> bytes:
    """A query frame (host -> radar)."""
    return encode(control, command | QUERY_BIT, QUERY_DATA)


def decode_frame(control: int, command: int, data: bytes, offset: int = 0
                 ) -> Frame | ProtocolError:
    """Decode a checked frame's data by its control/command words."""
    key = (control, command & ~QUERY_BIT) if control in _QUERYABLE else (control, command)
    if control == CTRL_PRODUCT:
        return Frame(control, command, data, "product_info",
                     None if data == QUERY_DATA else _text(data), offset)
    entry = REPORTS.get(key)
    if entry is None:
        return Frame(control, command, data, "unknown", data.hex(), offset)
    name, decoder = entry
    if key != (control, command) and data == QUERY_DATA:
        return Frame(control, command, data, name, None, offset)
    try:
        value = decoder(data)
    except PayloadError as exc:
        return FrameError(f"bad {name} report: {exc}", offset)
    return Frame(control, command, data, name, value, offset)


class Parser(HeaderFramedParser):
    """Feed bytes, get Frames and rejections. Never raises on bad input.

    Noise between frames is reported as one FrameError per run (when the next frame
    starts). A rejected frame whose footer is in place is skipped whole; otherwise the parser
    resyncs on the next header silently. Call ``flush()`` at the end of
    input: it reports pending noise and a frame cut off at the end.
    """

    header_len = len(HEADER)

    def __init__(self, max_data: int = MAX_DATA) -> None:
        super().__init__()
        self.max_data = max_data

    def feed(self, data: bytes) -> list[Frame | ProtocolError]:
        self._buf += data
        buf, pos, n = self._buf, 0, len(self._buf)
        out: list[Frame | ProtocolError] = []
        while pos < n:
            if buf[pos] != HEADER[0] or (n - pos >= 2 and buf[pos + 1] != HEADER[1]):
                nxt = buf.find(HEADER[0], pos + 1)
                nxt = n if nxt == -1 else nxt
                out += self._skip(pos, nxt - pos)
                pos = nxt
                continue
            if n - pos < 6:
                break
            offset = self._base + pos
            out += self._noise.flush()  # a header: the noise run before it ends here
            length = int.from_bytes(buf[pos + 4:pos + 6], "big")
            if length > self.max_data:
                out += self._reject(FrameError(f"impossible data length {length}", offset))
                pos += 2
                continue
            total = 9 + length
            if n - pos < total:
                break
            frame = bytes(buf[pos:pos + total])
            result = _check(frame, offset)
            if frame[-2:] == FOOTER:  # well delimited: skip it whole, even if rejected
                out += self._accept(offset)
                out.append(result)
                pos += total
            else:
                assert isinstance(result, ProtocolError)
                out += self._reject(result)
                pos += 2
        del buf[:pos]
        self._base += pos
        return out



def _check(frame: bytes, offset: int) -> Frame | ProtocolError:
    if frame[-2:] != FOOTER:
        return FrameError(f"bad footer {frame[-2:].hex()}", offset)
    if checksum(frame[:-3]) != frame[-3]:
        return ChecksumError(
            f"checksum 0x{frame[-3]:02x}, computed 0x{checksum(frame[:-3]):02x}", offset)
    return decode_frame(frame[2], frame[3], frame[6:-3], offset)
