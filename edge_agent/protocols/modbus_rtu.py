"""Modbus RTU (sans-I/O): read requests/responses (FC 01-04), exceptions, register maps.

RTU frames carry no length and no direction: ``unit fc ... CRC16/MODBUS (little-endian)``.
A read request is 8 bytes; a read response is ``unit fc count data[count] crc`` (5 + count);
an exception is ``unit fc|0x80 code crc`` (5). The parser decodes both directions of a
capture: at each position it tries the candidate lengths for the function code, shortest
first, and takes the first whose CRC matches (waiting while a candidate is incomplete).
An 8-byte FC 01/02 frame that fits both shapes is a response when it answers the request
just seen. A shorter response shape can in principle match a request by chance (CRC: 1 in 65536).
After garbage, responses are recognised again once a request is seen (requests are always
recognised), so feed the parser your own request before the answer.
Write frames (FC 05/06/15/16) are recognised and shown raw.

Why not pymodbus: this codec is sans-I/O (bytes in, frames out), so the same parser serves
the driver and the decode tool, which must read two-direction captures (requests and
responses interleaved on one line) that a client-side framer does not parse; it needs no
asyncio and stays small on a Pi Zero 2 W (the driver reads a few registers every few
seconds); and pymodbus changed its framer/client API several times across 3.x, which the
driver would have to follow. FC 03/04 polling, CRC and exception responses are ~200 lines.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Literal

from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError

JUNK_REPORT = 256
EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
              4: "server device failure", 5: "acknowledge", 6: "server device busy",
              8: "memory parity error", 10: "gateway path unavailable",
              11: "gateway target device failed to respond"}
READ_FUNCTIONS = {1: "read coils", 2: "read discrete inputs", 3: "read holding registers",
                  4: "read input registers"}
MAX_REGISTERS = 125
MAX_BITS = 2000


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS: poly 0x8005 reflected (0xA001), init 0xFFFF (table-driven: the
    parser checks a CRC at every byte offset while it resynchronises)."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def with_crc(pdu: bytes) -> bytes:
    """Append the CRC, low byte first."""
    return pdu + crc16_modbus(pdu).to_bytes(2, "little")


def read_request(unit: int, function: int, address: int, count: int) -> bytes:
    """A read request (FC 01-04) for ``count`` registers/bits from ``address``."""
    if function not in READ_FUNCTIONS:
        raise ValueError(f"not a read function: {function}")
    limit = MAX_REGISTERS if function in (3, 4) else MAX_BITS
    if not 0 <= unit <= 247 or not 0 <= address <= 0xFFFF or not 1 <= count <= limit \
            or address + count > 0x10000:
        raise ValueError(f"bad read: unit {unit} address {address} count {count}")
    return with_crc(struct.pack(">BBHH", unit, function, address, count))


def read_response(unit: int, function: int, data: bytes) -> bytes:
    """A read response carrying ``data`` (register words big-endian, or packed bits)."""
    return with_crc(bytes([unit, function, len(data)]) + data)


def exception_response(unit: int, function: int, code: int) -> bytes:
    return with_crc(bytes([unit, function | 0x80, code]))


# -- frames ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadRequest:
    offset: int
    unit: int
    function: int
    address: int
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"type": "modbus-read-request", "offset": self.offset, "unit": self.unit,
                "function": self.function, "name": READ_FUNCTIONS[self.function],
                "address": self.address, "count": self.count}


@dataclass(frozen=True)
class ReadResponse:
    offset: int
    unit: int
    function: int
    data: bytes

    @property
    def registers(self) -> tuple[int, ...]:
        """The 16-bit registers (FC 03/04); empty for bit reads."""
        if self.function not in (3, 4):
            return ()
        return struct.unpack(f">{len(self.data) // 2}H", self.data)

    def bits(self, count: int) -> tuple[bool, ...]:
        """The first ``count`` coils/inputs (FC 01/02), LSB of the first byte first."""
        return tuple(bool(self.data[i // 8] >> (i % 8) & 1)
                     for i in range(min(count, 8 * len(self.data))))

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": "modbus-read-response", "offset": self.offset,
                               "unit": self.unit, "function": self.function,
                               "data": self.data.hex()}
        if self.function in (3, 4):
            doc["registers"] = list(self.registers)
        else:
            doc["bits"] = [int(b) for b in self.bits(8 * len(self.data))]
        return doc


@dataclass(frozen=True)
class ExceptionResponse:
    offset: int
    unit: int
    function: int  # without the 0x80 bit
    code: int

    @property
    def description(self) -> str:
        return EXCEPTIONS.get(self.code, f"exception {self.code}")

    def to_json(self) -> dict[str, Any]:
        return {"type": "modbus-exception", "offset": self.offset, "unit": self.unit,
                "function": self.function, "code": self.code,
                "description": self.description}


@dataclass(frozen=True)
class OtherFrame:
    """A write request/response (FC 05/06/15/16), shown raw."""

    offset: int
    unit: int
    function: int
    payload: bytes

    def to_json(self) -> dict[str, Any]:
        return {"type": "modbus-frame", "offset": self.offset, "unit": self.unit,
                "function": self.function, "payload": self.payload.hex()}


Frame = ReadRequest | ReadResponse | ExceptionResponse | OtherFrame


def _candidates(buf: bytearray, responses: bool) -> list[int]:
    """Possible frame lengths at the start of ``buf`` (needs 3 bytes), shortest first."""
    unit, fc = buf[0], buf[1]
    if unit > 247:
        return []
    if fc & 0x80:
        return [5] if 1 <= fc & 0x7F <= 0x2B else []
    out: list[int] = []
    if fc in READ_FUNCTIONS:
        out.append(8)
        count = buf[2]
        if responses and count and (fc not in (3, 4) or count % 2 == 0) and count <= 250:
            out.append(5 + count)
    elif fc in (5, 6):
        out.append(8)
    elif fc in (15, 16):
        out.append(8)  # the response
        if len(buf) >= 7:
            out.append(9 + buf[6])  # unit fc addr(2) qty(2) count data crc(2)
        else:
            out.append(9)  # wait for the byte count
    return sorted(set(out))


class Parser:
    """Feed bytes of a Modbus RTU line (either direction), get Frames and ProtocolErrors."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0
        self._junk_start: int | None = None
        self._junk_len = 0
        self._junk_crc = False  # the run started where a frame header had a bad CRC
        self._pending: tuple[int, int, int] | None = None  # last request: unit, fc, bytes

    def feed(self, data: bytes) -> list[Frame | ProtocolError]:
        self._buf += data
        out: list[Frame | ProtocolError] = []
        while self._step(out):
            pass
        return out

    def flush(self) -> list[Frame | ProtocolError]:
        """End of input: a pending partial frame and trailing garbage are errors."""
        out: list[Frame | ProtocolError] = []
        self._end_junk(out)
        if self._buf:
            out.append(FrameError(f"truncated frame ({len(self._buf)} bytes)", self._base))
            self._base += len(self._buf)
            self._buf.clear()
        return out

    def _end_junk(self, out: list[Frame | ProtocolError]) -> None:
        if self._junk_start is not None:
            kind = ChecksumError if self._junk_crc else FrameError
            what = "bad CRC" if self._junk_crc else "garbage"
            out.append(kind(f"{self._junk_len} bytes skipped ({what})", self._junk_start))
            self._junk_start = None

    def _junk(self, out: list[Frame | ProtocolError], had_header: bool) -> None:
        if self._junk_start is None:
            self._junk_start = self._base
            self._junk_crc = had_header
        self._junk_len = self._base + 1 - self._junk_start
        del self._buf[:1]
        self._base += 1
        if self._junk_len >= JUNK_REPORT:
            self._end_junk(out)

    def _step(self, out: list[Frame | ProtocolError]) -> bool:
        buf = self._buf
        if len(buf) < 3:
            return False
        # While resynchronising, a read response is only looked for where it answers the
        # last request: a random byte count would otherwise stall the parser.
        responses = self._junk_start is None or self._pending == (buf[0], buf[1], buf[2])
        candidates = _candidates(buf, responses)
        for length in candidates:
            if len(buf) < length:
                return False
            frame = bytes(buf[:length])
            if crc16_modbus(frame[:-2]) == int.from_bytes(frame[-2:], "little"):
                self._end_junk(out)
                out.append(self._decode(frame, length))
                del buf[:length]
                self._base += length
                return True
        self._junk(out, bool(candidates))
        return True

    def _decode(self, frame: bytes, length: int) -> Frame:
        unit, fc = frame[0], frame[1]
        if fc & 0x80:
            self._pending = None
            return ExceptionResponse(self._base, unit, fc & 0x7F, frame[2])
        if fc in READ_FUNCTIONS:
            pending, self._pending = self._pending, None
            # 8 bytes is a request, unless it answers the pending request (FC 01/02 with 3
            # data bytes is 8 bytes long too)
            if length != 8 or pending == (unit, fc, frame[2]):
                return ReadResponse(self._base, unit, fc, frame[3:-2])
            address, count = struct.unpack(">HH", frame[2:6])
            bytes_expected = 2 * count if fc in (3, 4) else (count + 7) // 8
            self._pending = (unit, fc, bytes_expected)
            return ReadRequest(self._base, unit, fc, address, count)
        self._pending = None
        return OtherFrame(self._base, unit, fc, frame[2:-2])


# -- register maps ----------------------------------------------------------------------------

RegisterType = Literal["float32", "int16", "uint16", "int32", "uint32"]
_WORDS = {"float32": 2, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2}
_FORMAT = {"float32": ">f", "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I"}


@dataclass(frozen=True)
class Register:
    """One value in a device's register map (also the ``registers:`` config entries)."""

    name: str
    address: int
    type: RegisterType = "float32"
    table: Literal["input", "holding"] = "input"
    unit: str | None = None
    scale: float = 1.0  # value = raw * scale (e.g. 1000 for kWh -> Wh)
    word_order: Literal["big", "little"] = "big"  # for 32-bit types

    def __post_init__(self) -> None:
        if self.type not in _WORDS:
            raise ValueError(f"register {self.name}: unknown type {self.type!r}")
        if not 0 <= self.address <= 0xFFFF - self.words + 1:
            raise ValueError(f"register {self.name}: address out of range")
        if self.scale == 0 or not math.isfinite(self.scale):
            raise ValueError(f"register {self.name}: scale must be finite and non-zero")

    @property
    def words(self) -> int:
        return _WORDS[self.type]

    @property
    def function(self) -> int:
        return 4 if self.table == "input" else 3

    def decode(self, words: tuple[int, ...]) -> float | int:
        """The scaled value from this register's words (NaN floats stay NaN)."""
        ws = list(words) if self.word_order == "big" else list(reversed(words))
        raw = struct.unpack(_FORMAT[self.type], struct.pack(f">{len(ws)}H", *ws))[0]
        if self.type == "float32":
            return float(raw) * self.scale
        return raw * self.scale if self.scale != 1.0 else int(raw)

    def encode(self, value: float) -> tuple[int, ...]:
        """The words for ``value`` (emulators): the inverse of ``decode``."""
        raw: float | int = value / self.scale
        if self.type != "float32":
            raw = round(raw)
        ws = struct.unpack(f">{self.words}H", struct.pack(_FORMAT[self.type], raw))
        return tuple(ws) if self.word_order == "big" else tuple(reversed(ws))


@dataclass(frozen=True)
class ReadPlan:
    """One read request covering ``registers`` (contiguous, same table)."""

    function: int
    address: int
    count: int
    registers: tuple[Register, ...]

    def request(self, unit: int) -> bytes:
        return read_request(unit, self.function, self.address, self.count)

    def decode(self, response: ReadResponse) -> list[tuple[Register, float | int]]:
        words = response.registers
        if len(words) != self.count:
            raise FrameError(f"expected {self.count} registers, got {len(words)}",
                             response.offset)
        out: list[tuple[Register, float | int]] = []
        for reg in self.registers:
            start = reg.address - self.address
            out.append((reg, reg.decode(words[start:start + reg.words])))
        return out


def plan_reads(registers: list[Register], max_count: int = MAX_REGISTERS) -> list[ReadPlan]:
    """Group registers into as few requests as possible (contiguous runs, no gaps)."""
    plans: list[ReadPlan] = []
    ordered = sorted(registers, key=lambda r: (r.function, r.address))
    run: list[Register] = []
    for reg in ordered:
        if run:
            first = run[0]
            end = max(r.address + r.words for r in run)
            if reg.function != first.function or reg.address > end \
                    or reg.address + reg.words - first.address > max_count:
                plans.append(_plan(run))
                run = []
        run.append(reg)
    if run:
        plans.append(_plan(run))
    return plans


def _plan(run: list[Register]) -> ReadPlan:
    start = run[0].address
    end = max(r.address + r.words for r in run)
    return ReadPlan(run[0].function, start, end - start, tuple(run))


def finite(value: float | int) -> bool:
    return not (isinstance(value, float) and (math.isnan(value) or math.isinf(value)))


def _sdm(entries: list[tuple[str, int, str | None, float]]) -> tuple[Register, ...]:
    return tuple(Register(name, address, "float32", "input", unit, scale)
                 for name, address, unit, scale in entries)


# Eastron SDM120 / SDM630 input registers (float32, big-endian words); energies in kWh.
SDM120: tuple[Register, ...] = _sdm([
    ("voltage", 0x0000, "V", 1.0),
    ("current", 0x0006, "A", 1.0),
    ("power", 0x000C, "W", 1.0),
    ("apparent_power", 0x0012, "VA", 1.0),
    ("reactive_power", 0x0018, "var", 1.0),
    ("power_factor", 0x001E, "/", 1.0),
    ("frequency", 0x0046, "Hz", 1.0),
    ("energy_import", 0x0048, "Wh", 1000.0),
    ("energy_export", 0x004A, "Wh", 1000.0),
])
SDM630: tuple[Register, ...] = _sdm([
    ("voltage_l1", 0x0000, "V", 1.0),
    ("voltage_l2", 0x0002, "V", 1.0),
    ("voltage_l3", 0x0004, "V", 1.0),
    ("current_l1", 0x0006, "A", 1.0),
    ("current_l2", 0x0008, "A", 1.0),
    ("current_l3", 0x000A, "A", 1.0),
    ("power_l1", 0x000C, "W", 1.0),
    ("power_l2", 0x000E, "W", 1.0),
    ("power_l3", 0x0010, "W", 1.0),
    ("power_factor_l1", 0x001E, "/", 1.0),
    ("power_factor_l2", 0x0020, "/", 1.0),
    ("power_factor_l3", 0x0022, "/", 1.0),
    ("power", 0x0034, "W", 1.0),
    ("power_factor", 0x003E, "/", 1.0),
    ("frequency", 0x0046, "Hz", 1.0),
    ("energy_import", 0x0048, "Wh", 1000.0),
    ("energy_export", 0x004A, "Wh", 1000.0),
])
MODELS: dict[str, tuple[Register, ...]] = {"sdm120": SDM120, "sdm630": SDM630}
