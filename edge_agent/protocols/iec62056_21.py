"""IEC 62056-21 (ex IEC 1107) mode C, both directions of the optical-probe dialogue (sans-I/O).

    host  -> /?[address]!CR LF                          sign-on (300 baud, 7E1)
    meter -> /XXXZ<identification>CR LF                 Z = max baud: '0'..'6' = 300..19200
    host  -> ACK 0 Z 0 CR LF                            option select: data readout at Z
    (both switch to Z's baud rate)
    meter -> STX <data lines> ! CR LF ETX BCC           BCC = XOR of bytes after STX .. ETX

Data lines hold data sets ``address(value*unit)``. Programming-mode messages
(``SOH C D STX data ETX BCC``), lone ACK and NAK are decoded too (for capture decoding).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError
from edge_agent.protocols.obis import Measurement, ObisCode, lookup, scale, to_decimal

SOH, STX, ETX, ACK, NAK = 0x01, 0x02, 0x03, 0x06, 0x15
BAUD = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
BAUD_CHAR = {v: k for k, v in BAUD.items()}
DEFAULT_MAX_MESSAGE = 64 * 1024
MAX_LINE = 128  # sign-on and identification lines
_OTHER_START = re.compile(b"[\x01\x02\x06\x15]")  # SOH STX ACK NAK
JUNK_REPORT = 256
_DATASET = re.compile(r"([^()\r\n]*)\(([^()\r\n]*)\)")
_WS = frozenset(b" \t\r\n\x00")


def bcc(data: bytes) -> int:
    """Block check character: XOR of the bytes."""
    out = 0
    for byte in data:
        out ^= byte
    return out


# -- request builders (pure) ----------------------------------------------------------------


def sign_on(address: str = "") -> bytes:
    """``/?[address]!\\r\\n``; ``address`` is the meter's device address (up to 32 chars)."""
    if len(address) > 32 or not all(c.isalnum() or c == " " for c in address):
        raise ValueError(f"bad IEC 62056-21 device address {address!r}")
    return b"/?" + address.encode("ascii") + b"!\r\n"


def option_select(baudrate: int, mode: str = "0", protocol: str = "0") -> bytes:
    """``ACK V Z Y CR LF``: mode '0' = data readout, '1' = programming."""
    return bytes([ACK]) + (protocol + BAUD_CHAR[baudrate] + mode).encode("ascii") + b"\r\n"


def encode_data_block(lines: list[str]) -> bytes:
    """``STX lines... ! CR LF ETX BCC`` (used by emulators and tests)."""
    body = ("".join(line + "\r\n" for line in lines) + "!\r\n").encode("ascii") + bytes([ETX])
    return bytes([STX]) + body + bytes([bcc(body)])


# -- messages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignOn:
    offset: int
    address: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "iec-sign-on", "offset": self.offset, "address": self.address}


@dataclass(frozen=True)
class Identification:
    offset: int
    manufacturer: str
    baud_char: str
    ident: str

    @property
    def baudrate(self) -> int | None:
        """The meter's maximum baud rate (mode C), None for other modes' characters."""
        return BAUD.get(self.baud_char)

    def to_json(self) -> dict[str, Any]:
        return {"type": "iec-identification", "offset": self.offset,
                "manufacturer": self.manufacturer, "baud_char": self.baud_char,
                "baudrate": self.baudrate, "ident": self.ident}


@dataclass(frozen=True)
class OptionSelect:
    offset: int
    protocol: str
    baud_char: str
    mode: str

    @property
    def baudrate(self) -> int | None:
        return BAUD.get(self.baud_char)

    def to_json(self) -> dict[str, Any]:
        return {"type": "iec-option-select", "offset": self.offset, "protocol": self.protocol,
                "baud_char": self.baud_char, "baudrate": self.baudrate, "mode": self.mode}


@dataclass(frozen=True)
class Control:
    """A lone ACK or NAK."""

    offset: int
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"type": f"iec-{self.name.lower()}", "offset": self.offset}


@dataclass(frozen=True)
class DataSet:
    address: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class DataBlock:
    """A data message (readout): data sets and the known quantities among them."""

    offset: int
    datasets: tuple[DataSet, ...]
    measurements: tuple[Measurement, ...]

    def select(self, obis: frozenset[str] | None) -> list[Measurement]:
        if not obis:
            return list(self.measurements)
        return [m for m in self.measurements if m.obis in obis]

    def to_json(self) -> dict[str, Any]:
        return {"type": "iec-data", "offset": self.offset,
                "datasets": [{"address": d.address, "values": list(d.values)}
                             for d in self.datasets],
                "measurements": [m.to_json() for m in self.measurements]}


@dataclass(frozen=True)
class Command:
    """A programming-mode command ``SOH C D STX data ETX BCC`` (e.g. R1, W2, B0)."""

    offset: int
    command: str
    data: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "iec-command", "offset": self.offset, "command": self.command,
                "data": self.data}


Message = SignOn | Identification | OptionSelect | Control | DataBlock | Command


class Parser:
    """Feed bytes of either direction, get Messages and ProtocolErrors."""

    def __init__(self, *, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._base = 0
        self._junk_start: int | None = None
        self._junk_len = 0

    def feed(self, data: bytes) -> list[Message | ProtocolError]:
        self._buf += data
        out: list[Message | ProtocolError] = []
        while self._buf and self._step(out):
            pass
        return out

    def flush(self) -> list[Message | ProtocolError]:
        """End of input: a lone trailing ACK; a partial message and garbage are errors."""
        out: list[Message | ProtocolError] = []
        while self._buf and self._buf[0] == ACK:  # an ACK waiting for a possible option
            self._emit(out, Control(self._base, "ACK"), 1)
            while self._buf and self._step(out):
                pass
        if self._buf:
            self._emit(out, FrameError(f"truncated message ({len(self._buf)} bytes)",
                                       self._base), len(self._buf))
        self._end_junk(out)
        return out

    # -- framing ---------------------------------------------------------------------------

    def _drop(self, n: int) -> None:
        del self._buf[:n]
        self._base += n

    def _emit(self, out: list[Message | ProtocolError], item: Message | ProtocolError,
              consumed: int) -> bool:
        self._end_junk(out)
        out.append(item)
        self._drop(consumed)
        return True

    def _junk_byte(self, out: list[Message | ProtocolError]) -> bool:
        byte = self._buf[0]
        if self._junk_start is not None or byte not in _WS:
            if self._junk_start is None:
                self._junk_start = self._base
            self._junk_len = self._base + 1 - self._junk_start
            if self._junk_len >= JUNK_REPORT:
                self._end_junk(out)
        self._drop(1)
        return True

    def _end_junk(self, out: list[Message | ProtocolError]) -> None:
        if self._junk_start is not None:
            out.append(FrameError(f"{self._junk_len} bytes of garbage between messages",
                                  self._junk_start))
            self._junk_start = None

    def _step(self, out: list[Message | ProtocolError]) -> bool:
        first = self._buf[0]
        if first == ord("/"):
            return self._line(out)
        if first == ACK:
            return self._ack(out)
        if first == NAK:
            return self._emit(out, Control(self._base, "NAK"), 1)
        if first in (STX, SOH):
            return self._block(out)
        return self._junk_byte(out)

    def _line(self, out: list[Message | ProtocolError]) -> bool:
        buf = self._buf
        eol = buf.find(b"\n", 0, MAX_LINE)
        if eol < 0:
            if len(buf) >= MAX_LINE:
                # Skip the whole overlong line in one error, up to the next byte that may
                # start another message (a flood of '/' is one error per MAX_LINE bytes,
                # not one per byte): another control byte, else the last '/' in reach.
                m = _OTHER_START.search(buf, 1, MAX_LINE)
                last = buf.rfind(b"/", 1, MAX_LINE)
                stop = m.start() if m else last if last > 0 else MAX_LINE
                return self._emit(out, FrameError("sign-on/identification line too long",
                                                  self._base), stop)
            return False
        line = bytes(buf[:eol]).rstrip(b"\r").decode("latin-1")
        if line.startswith("/?") and line.endswith("!"):
            return self._emit(out, SignOn(self._base, line[2:-1]), eol + 1)
        if len(line) >= 5 and line[1:4].isalpha() and line[4].isprintable():
            return self._emit(out, Identification(self._base, line[1:4], line[4], line[5:]),
                              eol + 1)
        return self._emit(out, FrameError(f"malformed line {line[:40]!r}", self._base), eol + 1)

    def _ack(self, out: list[Message | ProtocolError]) -> bool:
        buf = self._buf
        pattern = (b"0123456789", b"0123456789ABCDEFGHI", b"0123456789", b"\r", b"\n")
        for i, allowed in enumerate(pattern, start=1):
            if len(buf) <= i:
                return False  # need more bytes to tell ACK from an option select
            if buf[i] not in allowed:
                return self._emit(out, Control(self._base, "ACK"), 1)
        text = bytes(buf[1:4]).decode("ascii")
        return self._emit(out, OptionSelect(self._base, text[0], text[1], text[2]), 6)

    def _block(self, out: list[Message | ProtocolError]) -> bool:
        buf = self._buf
        end = buf.find(bytes([ETX]), 1, self.max_message)
        limit = end if end >= 0 else self.max_message
        stx = buf.find(bytes([STX]), 1, limit)
        if stx == 3 and buf[0] == SOH:  # SOH C D STX: the command's own STX
            stx = buf.find(bytes([STX]), 4, limit)
        soh = buf.find(bytes([SOH]), 1, limit)
        restart = min((p for p in (stx, soh) if p >= 0), default=-1)
        if restart == 1:  # a start byte right before another: garbage (a flood is one run)
            return self._junk_byte(out)
        if restart >= 0:
            return self._emit(out, FrameError("truncated message (a new one started)",
                                              self._base), restart)
        if end < 0:
            if len(buf) > self.max_message:
                return self._emit(out, FrameError(
                    f"message longer than {self.max_message} bytes", self._base), 1)
            return False
        if len(buf) < end + 2:
            return False
        body = bytes(buf[1:end + 1])
        if bcc(body) != buf[end + 1]:
            return self._emit(out, ChecksumError(
                f"BCC {buf[end + 1]:02X} does not match {bcc(body):02X}", self._base), end + 2)
        return self._emit(out, self._decode(self._base, buf[0], body[:-1]), end + 2)

    def _decode(self, offset: int, first: int, body: bytes) -> Message | ProtocolError:
        text = body.decode("latin-1")
        if first == SOH:
            cmd, _, data = text.partition(chr(STX))
            if len(cmd) != 2:
                return FrameError(f"bad command {cmd[:10]!r}", offset)
            return Command(offset, cmd, data)
        datasets: list[DataSet] = []
        for raw in text.replace("\r", "").split("\n"):
            line = raw.strip()
            if not line or line == "!":
                continue
            pos = 0
            for m in _DATASET.finditer(line):
                if line[pos:m.start()].strip():
                    return FrameError(f"malformed data line {line[:40]!r}", offset)
                address, value = m.group(1).strip(), m.group(2)
                if not address and datasets:  # a further value of the previous data set
                    prev = datasets[-1]
                    datasets[-1] = DataSet(prev.address, (*prev.values, value))
                else:
                    datasets.append(DataSet(address, (value,)))
                pos = m.end()
            if line[pos:].strip() not in ("", "!"):
                return FrameError(f"malformed data line {line[:40]!r}", offset)
        return DataBlock(offset, tuple(datasets), tuple(_measurements(datasets)))


def _measurements(datasets: list[DataSet]) -> list[Measurement]:
    out: list[Measurement] = []
    for ds in datasets:
        code = ObisCode.parse(ds.address)
        if code is None:
            continue
        q = lookup(code)
        if q is None or q.kind in ("text", "hextext"):
            continue
        number_text, _, unit = ds.values[0].partition("*")
        number = to_decimal(number_text)
        if number is None:
            continue
        if q.kind == "count":
            if number == number.to_integral_value():
                out.append(Measurement(str(code), q.name, int(number), q.unit))
            continue
        if not unit:
            if q.unit not in (None, "/"):
                continue  # ambiguous without a unit
            out.append(Measurement(str(code), q.name, float(number), q.unit))
            continue
        value, senml = scale(number, unit)
        if senml == q.unit:
            out.append(Measurement(str(code), q.name, value, senml))
    return out
