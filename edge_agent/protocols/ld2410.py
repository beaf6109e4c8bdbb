"""HLK-LD2410 24 GHz presence radar: report frames and command/ACK frames (sans-I/O).

Report frame (radar -> host, about 10 per second)::

    F4 F3 F2 F1 | len (2, LE) | type (01 engineering / 02 basic) AA
    | target state | moving dist (2) | moving energy | stationary dist (2)
    | stationary energy | detection dist (2) | [engineering: N_m N_s, gate energies...]
    | 55 00 | F8 F7 F6 F5

Command frame (host -> radar) and its ACK (radar -> host)::

    FD FC FB FA | len (2, LE) | command word (2, LE) | value | 04 03 02 01

An ACK's word is ``command | 0x0100`` and its value starts with a 2-byte status (0 = ok).
All multi-byte numbers are little-endian; distances are in cm, energies 0..100.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError
from edge_agent.protocols.noise import HeaderFramedParser

REPORT_HEADER = b"\xf4\xf3\xf2\xf1"
REPORT_FOOTER = b"\xf8\xf7\xf6\xf5"
COMMAND_HEADER = b"\xfd\xfc\xfb\xfa"
COMMAND_FOOTER = b"\x04\x03\x02\x01"

TYPE_ENGINEERING = 0x01
TYPE_BASIC = 0x02
REPORT_HEAD = 0xAA
REPORT_TAIL = 0x55
REPORT_CHECK = 0x00

MAX_LENGTH = 64
"""Largest intra-frame length accepted; bounds the bytes held for an incomplete frame."""
MAX_GATE = 8
MAX_EXTRA = 4  # engineering frames of some firmware carry light/output bytes after the gates

CMD_ENABLE_CONFIG = 0x00FF
CMD_END_CONFIG = 0x00FE
CMD_READ_FIRMWARE = 0x00A0
CMD_ENGINEERING_ON = 0x0062
CMD_ENGINEERING_OFF = 0x0063
ACK_BIT = 0x0100

COMMAND_NAMES: dict[int, str] = {
    0x0060: "set_max_gates_and_timeout",
    0x0061: "read_parameters",
    CMD_ENGINEERING_ON: "engineering_on",
    CMD_ENGINEERING_OFF: "engineering_off",
    0x0064: "set_gate_sensitivity",
    CMD_READ_FIRMWARE: "read_firmware",
    0x00A1: "set_baud_rate",
    0x00A2: "factory_reset",
    0x00A3: "restart",
    CMD_END_CONFIG: "end_config",
    CMD_ENABLE_CONFIG: "enable_config",
}


class TargetState(enum.IntEnum):
    NONE = 0
    MOVING = 1
    STATIONARY = 2
    BOTH = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Report:
    """One target report. Gate energies are present in engineering mode only."""

    state: TargetState
    moving_distance: int
    moving_energy: int
    stationary_distance: int
    stationary_energy: int
    detection_distance: int
    engineering: bool = False
    moving_gate_energy: tuple[int, ...] = ()
    stationary_gate_energy: tuple[int, ...] = ()
    extra: bytes = b""
    offset: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "report",
            "mode": "engineering" if self.engineering else "basic",
            "target_state": self.state.label,
            "moving_distance_cm": self.moving_distance,
            "moving_energy": self.moving_energy,
            "stationary_distance_cm": self.stationary_distance,
            "stationary_energy": self.stationary_energy,
            "detection_distance_cm": self.detection_distance,
        }
        if self.engineering:
            out["moving_gate_energy"] = list(self.moving_gate_energy)
            out["stationary_gate_energy"] = list(self.stationary_gate_energy)
            out["extra"] = self.extra.hex()
        return out


@dataclass(frozen=True)
class CommandFrame:
    """A command (host -> radar) or its ACK. ``status`` is set on ACKs only."""

    word: int
    value: bytes
    status: int | None = None
    offset: int = field(default=0, compare=False)

    @property
    def is_ack(self) -> bool:
        return self.status is not None

    @property
    def command(self) -> int:
        """The command word this frame is (or acknowledges)."""
        return self.word & ~ACK_BIT

    @property
    def name(self) -> str:
        return COMMAND_NAMES.get(self.command, f"0x{self.command:04x}")

    def firmware_version(self) -> str | None:
        """``V<major>.<minor>.<build>`` from a read-firmware ACK, else None."""
        if self.command != CMD_READ_FIRMWARE or not self.is_ack or len(self.value) < 8:
            return None
        major = int.from_bytes(self.value[2:4], "little")
        build = int.from_bytes(self.value[4:8], "little")
        return f"V{major >> 8}.{major & 0xFF:02x}.{build:08x}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "ack" if self.is_ack else "command",
            "command": self.name,
            "word": f"0x{self.word:04x}",
            "value": self.value.hex(),
        }
        if self.status is not None:
            out["status"] = self.status
        version = self.firmware_version()
        if version is not None:
            out["firmware"] = version
        return out


Frame = Report | CommandFrame


# --- encoders (pure; used by the emulator, the driver and tests) ---------------------------


def _wrap(header: bytes, body: bytes, footer: bytes) -> bytes:
    return header + len(body).to_bytes(2, "little") + body + footer


def encode_report(report: Report, *, check: int = REPORT_CHECK) -> bytes:
    """The bytes of ``report``; a non-zero ``check`` makes a frame with a bad check byte."""
    body = bytearray([TYPE_ENGINEERING if report.engineering else TYPE_BASIC, REPORT_HEAD,
                      int(report.state)])
    body += report.moving_distance.to_bytes(2, "little")
    body.append(report.moving_energy)
    body += report.stationary_distance.to_bytes(2, "little")
    body.append(report.stationary_energy)
    body += report.detection_distance.to_bytes(2, "little")
    if report.engineering:
        body.append(len(report.moving_gate_energy) - 1)
        body.append(len(report.stationary_gate_energy) - 1)
        body += bytes(report.moving_gate_energy) + bytes(report.stationary_gate_energy)
        body += report.extra
    body += bytes([REPORT_TAIL, check])
    return _wrap(REPORT_HEADER, bytes(body), REPORT_FOOTER)


def command(word: int, value: bytes = b"") -> bytes:
    """A command frame (host -> radar)."""
    return _wrap(COMMAND_HEADER, word.to_bytes(2, "little") + value, COMMAND_FOOTER)


def ack(word: int, status: int = 0, value: bytes = b"") -> bytes:
    """The ACK of command ``word`` (radar -> host)."""
    return command(word | ACK_BIT, status.to_bytes(2, "little") + value)


def enable_config() -> bytes:
    return command(CMD_ENABLE_CONFIG, b"\x01\x00")


def end_config() -> bytes:
    return command(CMD_END_CONFIG)


def read_firmware() -> bytes:
    return command(CMD_READ_FIRMWARE)


def engineering_mode(on: bool) -> bytes:
    return command(CMD_ENGINEERING_ON if on else CMD_ENGINEERING_OFF)


# --- decoding -------------------------------------------------------------------------------


def _decode_report(body: bytes, offset: int) -> Report | ProtocolError:
    kind = body[0]
    if kind not in (TYPE_BASIC, TYPE_ENGINEERING):
        return FrameError(f"unknown report type 0x{kind:02x}", offset)
    if body[1] != REPORT_HEAD:
        return FrameError(f"report head is 0x{body[1]:02x}, expected 0xaa", offset)
    if body[-2] != REPORT_TAIL:
        return FrameError(f"report tail is 0x{body[-2]:02x}, expected 0x55", offset)
    if body[-1] != REPORT_CHECK:
        return ChecksumError(f"report check byte is 0x{body[-1]:02x}, expected 0x00", offset)
    inner = body[2:-2]
    if len(inner) < 9:
        return FrameError(f"report too short ({len(body)} bytes)", offset)
    if inner[0] > TargetState.BOTH:
        return FrameError(f"unknown target state {inner[0]}", offset)
    basic = Report(
        state=TargetState(inner[0]),
        moving_distance=int.from_bytes(inner[1:3], "little"),
        moving_energy=inner[3],
        stationary_distance=int.from_bytes(inner[4:6], "little"),
        stationary_energy=inner[6],
        detection_distance=int.from_bytes(inner[7:9], "little"),
        offset=offset,
    )
    if kind == TYPE_BASIC:
        if len(inner) != 9:
            return FrameError(f"basic report has {len(body)} bytes, expected 13", offset)
        return basic
    gates = inner[9:]
    if len(gates) < 2:
        return FrameError("engineering report without gate counts", offset)
    n_moving, n_stationary = gates[0] + 1, gates[1] + 1
    if n_moving > MAX_GATE + 1 or n_stationary > MAX_GATE + 1:
        return FrameError(f"engineering report with {max(n_moving, n_stationary)} gates",
                          offset)
    need = 2 + n_moving + n_stationary
    extra = gates[need:]
    if len(gates) < need or len(extra) > MAX_EXTRA:
        return FrameError(f"engineering report length {len(body)} does not match its gates",
                          offset)
    return dataclasses.replace(
        basic,
        engineering=True,
        moving_gate_energy=tuple(gates[2:2 + n_moving]),
        stationary_gate_energy=tuple(gates[2 + n_moving:need]),
        extra=bytes(extra),
    )


def _decode_command(body: bytes, offset: int) -> CommandFrame | ProtocolError:
    word = int.from_bytes(body[0:2], "little")
    if word & ACK_BIT:
        if len(body) < 4:
            return FrameError("ACK without status", offset)
        return CommandFrame(word=word, status=int.from_bytes(body[2:4], "little"),
                            value=bytes(body[4:]), offset=offset)
    return CommandFrame(word=word, value=bytes(body[2:]), offset=offset)


_HEADERS = (REPORT_HEADER, COMMAND_HEADER)
_FOOTERS = {REPORT_HEADER: REPORT_FOOTER, COMMAND_HEADER: COMMAND_FOOTER}
_FIRST_BYTES = frozenset(h[0] for h in _HEADERS)


class Parser(HeaderFramedParser):
    """Feed bytes, get Reports/CommandFrames and rejections. Never raises on bad input.

    Noise between frames is skipped and reported as one FrameError per run (when the next
    frame starts). A rejected frame whose footer is in place is skipped whole; otherwise the
    parser resyncs on the next header silently. Call ``flush()`` at the end of
    input: it reports pending noise and a frame cut off at the end.
    """

    header_len = 4

    def __init__(self, max_length: int = MAX_LENGTH) -> None:
        super().__init__()
        self.max_length = max_length

    def feed(self, data: bytes) -> list[Frame | ProtocolError]:
        self._buf += data
        buf, pos, n = self._buf, 0, len(self._buf)
        out_list: list[Frame | ProtocolError] = []
        while pos < n:
            head = bytes(buf[pos:pos + 4])
            if head not in _HEADERS:
                if len(head) < 4 and any(h.startswith(head) for h in _HEADERS):
                    break  # maybe a header: wait for more
                nxt = _next_candidate(buf, pos + 1, n)
                out_list += self._skip(pos, nxt - pos)
                pos = nxt
                continue
            if n - pos < 6:
                break
            offset = self._base + pos
            out_list += self._noise.flush()  # a header: the noise run before it ends here
            length = int.from_bytes(buf[pos + 4:pos + 6], "little")
            if length < 2 or length > self.max_length:
                out_list += self._reject(FrameError(f"impossible frame length {length}",
                                                    offset))
                pos += 4
                continue
            total = 10 + length
            if n - pos < total:
                break
            frame = bytes(buf[pos:pos + total])
            result = _decode(head, frame, offset)
            if frame[-4:] == _FOOTERS[head]:  # well delimited: skip it whole, even if rejected
                out_list += self._accept(offset)
                out_list.append(result)
                pos += total
            else:
                assert isinstance(result, ProtocolError)
                out_list += self._reject(result)
                pos += 4
        del buf[:pos]
        self._base += pos
        return out_list



def _next_candidate(buf: bytearray, start: int, end: int) -> int:
    best = end
    for b in _FIRST_BYTES:
        i = buf.find(b, start, best)
        if i != -1:
            best = i
    return best


def _decode(head: bytes, frame: bytes, offset: int) -> Frame | ProtocolError:
    if frame[-4:] != _FOOTERS[head]:
        return FrameError(f"bad footer {frame[-4:].hex()}", offset)
    body = frame[6:-4]
    if head == REPORT_HEADER:
        return _decode_report(body, offset)
    return _decode_command(body, offset)
