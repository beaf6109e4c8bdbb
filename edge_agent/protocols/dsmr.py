"""DSMR P1 / ESMR / Fluvius e-MUCS telegrams (sans-I/O).

A telegram is ``/XXX5<ident>\\r\\n\\r\\n<data lines>!<CRC>\\r\\n``. DSMR 4/5 (and Fluvius,
ESMR 5) end with a CRC16/ARC (poly 0xA001 reflected, init 0) over ``/`` through ``!`` as up to
4 hex digits; DSMR 2.2/3 end with a bare ``!``. Data lines are ``OBIS(value)(value)...``;
a line starting with ``(`` continues the previous object (DSMR 2.2 gas). Timestamps are
``YYMMDDhhmmssX`` in CET/CEST, X = S (summer, UTC+2) or W (winter, UTC+1).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError
from edge_agent.protocols.obis import ObisCode, lookup, scale, to_decimal

DEFAULT_MAX_TELEGRAM = 16 * 1024
JUNK_REPORT = 256  # garbage outside telegrams is reported per run, at most this long

_LINE = re.compile(r"^(\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3}(?:\*\d{1,3})?)((?:\([^()]*\))+)$")
_GROUPS = re.compile(r"\(([^()]*)\)")
_CONTINUATION = re.compile(r"^(?:\([^()]*\))+$")
_TIME = re.compile(r"^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})([SWsw]?)$")
_ACE_TIME = re.compile(r"^(\d{2})-(\d{2})-(\d{2}) (\d{2}):(\d{2})(?::(\d{2}))?$")
_HEX_CRC = re.compile(rb"^[0-9A-Fa-f]{1,4}$")
_WS = frozenset(b" \t\r\n\x00")
_WS_BYTES = bytes(sorted(_WS))

# M-Bus device types (EN 13757-3 medium) -> (quantity name, default SenML unit)
_MBUS_KIND = {
    3: "gas_volume", 6: "hot_water_volume", 7: "water_volume", 4: "heat_energy",
    12: "heat_energy", 10: "cooling_energy", 11: "cooling_energy", 13: "heat_energy",
}


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC: poly 0x8005 reflected (0xA001), init 0, no final xor."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def parse_timestamp(text: str) -> float | None:
    """``YYMMDDhhmmssX`` (X = S/W, either case; absent = EU DST rules) to epoch seconds, also
    ``YY-MM-DD hh:mm[:ss]`` (Itron ACE4000 gas lines); None if invalid."""
    m = _TIME.match(text)
    if m is not None:
        yy, mo, dd, hh, mi, ss = (int(g) for g in m.groups()[:6])
        flag = m.group(7).upper()
    else:
        m = _ACE_TIME.match(text.strip())
        if m is None:
            return None
        yy, mo, dd, hh, mi = (int(g) for g in m.groups()[:5])
        ss, flag = int(m.group(6) or 0), ""
    year = 2000 + yy
    if not (1 <= mo <= 12 and 1 <= dd <= calendar.monthrange(year, mo)[1]
            and hh < 24 and mi < 60 and ss < 60):
        return None
    if not flag:
        flag = "S" if _eu_summer_local(year, mo, dd, hh) else "W"
    offset = 7200 if flag == "S" else 3600
    return float(calendar.timegm((year, mo, dd, hh, mi, ss, 0, 0, 0)) - offset)


def _last_sunday(year: int, month: int) -> int:
    last = calendar.monthrange(year, month)[1]
    return last - (calendar.weekday(year, month, last) + 1) % 7


def _eu_summer_local(year: int, month: int, day: int, hour: int) -> bool:
    """CEST in force at this CET/CEST local time (the repeated October hour counts as CEST)."""
    start = (3, _last_sunday(year, 3), 2)
    end = (10, _last_sunday(year, 10), 3)
    return start <= (month, day, hour) < end


@dataclass(frozen=True)
class DataObject:
    """One data line: canonical OBIS code and its raw parenthesised values."""

    obis: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Measurement:
    """A decoded, scaled value of a known quantity."""

    obis: str
    name: str
    value: float | int | str
    unit: str | None
    time: float | None  # device timestamp (telegram or M-Bus capture time)

    def to_json(self) -> dict[str, Any]:
        return {"obis": self.obis, "name": self.name, "value": self.value, "unit": self.unit,
                "time": self.time}


@dataclass(frozen=True)
class Telegram:
    """A complete, checked telegram."""

    offset: int
    header: str  # the identification line without '/'
    crc: int | None  # None for DSMR 2.2/3 telegrams (no CRC)
    objects: tuple[DataObject, ...]
    timestamp: float | None  # 0-0:1.0.0, epoch seconds
    measurements: tuple[Measurement, ...] = field(default=())

    @property
    def manufacturer(self) -> str:
        return self.header[:3]

    @property
    def version(self) -> str | None:
        """Protocol version: 1-3:0.2.8 (DSMR, ``50`` = 5.0) or 0-0:96.1.4 (Fluvius)."""
        for obj in self.objects:
            if obj.obis in ("1-3:0.2.8", "0-0:96.1.4") and obj.values:
                return obj.values[0]
        return None

    def select(self, obis: frozenset[str] | None) -> list[Measurement]:
        """The measurements whose OBIS code is in ``obis`` (None or empty = all)."""
        if not obis:
            return list(self.measurements)
        return [m for m in self.measurements if m.obis in obis]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "dsmr-telegram",
            "offset": self.offset,
            "header": self.header,
            "manufacturer": self.manufacturer,
            "version": self.version,
            "crc": None if self.crc is None else f"{self.crc:04X}",
            "timestamp": self.timestamp,
            "objects": [{"obis": o.obis, "values": list(o.values)} for o in self.objects],
            "measurements": [m.to_json() for m in self.measurements],
        }


class Parser:
    """Feed bytes, get Telegrams and rejected telegrams (ProtocolError with stream offset).

    ``require_crc``: reject telegrams without a CRC (DSMR 4/5 meters always send one).
    Bytes outside telegrams that are not whitespace are reported once per run, when the
    run ends (at the next ``/``, at ``flush()`` or after JUNK_REPORT bytes).
    """

    def __init__(self, *, require_crc: bool = False,
                 max_telegram: int = DEFAULT_MAX_TELEGRAM) -> None:
        self.require_crc = require_crc
        self.max_telegram = max_telegram
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._junk_start: int | None = None
        self._junk_len = 0

    def feed(self, data: bytes) -> list[Telegram | ProtocolError]:
        self._buf += data
        out: list[Telegram | ProtocolError] = []
        while self._step(out):
            pass
        return out

    def flush(self) -> list[Telegram | ProtocolError]:
        """End of input: a complete telegram without its final line end (``!XXXX``, or a bare
        ``!`` for DSMR 2.2/3) is decoded; a partial telegram and trailing garbage are
        reported."""
        out: list[Telegram | ProtocolError] = []
        if self._buf:
            bang = self._buf.find(b"!")
            tail = bytes(self._buf[bang + 1:]).strip(_WS_BYTES) if bang >= 0 else b""
            if self._buf[0:1] == b"/" and bang >= 0 and (not tail or _HEX_CRC.match(tail)):
                self._end_junk(out)
                out.append(self._decode(self._base, bytes(self._buf[:bang + 1]),
                                        int(tail, 16) if tail else None))
            elif self._buf[0:1] == b"/":
                out.append(FrameError(f"truncated telegram ({len(self._buf)} bytes)",
                                      self._base))
            else:
                self._junk(out, self._base, bytes(self._buf))
            self._drop(len(self._buf))
        self._end_junk(out)
        return out

    # -- framing ---------------------------------------------------------------------------

    def _drop(self, n: int) -> None:
        del self._buf[:n]
        self._base += n

    def _junk(self, out: list[Telegram | ProtocolError], offset: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            if self._junk_start is None:  # a run starts at the next byte that is not space
                rest = data[pos:].lstrip(_WS_BYTES)
                if not rest:
                    return
                pos = len(data) - len(rest)
                self._junk_start = offset + pos
            pos += min(len(data) - pos, JUNK_REPORT - (offset + pos - self._junk_start))
            self._junk_len = offset + pos - self._junk_start
            if self._junk_len >= JUNK_REPORT:  # a long run (wrong baud rate?): report now
                self._end_junk(out)

    def _end_junk(self, out: list[Telegram | ProtocolError]) -> None:
        if self._junk_start is not None:
            out.append(FrameError(f"{self._junk_len} bytes of garbage outside telegrams",
                                  self._junk_start))
            self._junk_start = None

    def _step(self, out: list[Telegram | ProtocolError]) -> bool:
        buf = self._buf
        start = buf.find(b"/")
        if start < 0:
            self._junk(out, self._base, bytes(buf))
            self._drop(len(buf))
            return False
        if start > 0:
            self._junk(out, self._base, bytes(buf[:start]))
            self._drop(start)
        # buf[0] == '/' now. A '/' followed by another '/' before any line end has no
        # identification line: garbage (a flood of '/' is one garbage run, not one error
        # per byte). Skip to the last '/' before the first line end or '!' (where a telegram
        # would end): looking no further keeps the result the same however input is chunked.
        ends = [i for i in (buf.find(b"\n", 0, self.max_telegram),
                            buf.find(b"!", 0, self.max_telegram)) if i >= 0]
        last = buf.rfind(b"/", 0, min(ends) if ends else min(len(buf), self.max_telegram))
        if last > 0:
            self._junk(out, self._base, bytes(buf[:last]))
            self._drop(last)
            return True
        bang = buf.find(b"!", 0, self.max_telegram)
        restart = buf.find(b"/", 1, bang if bang >= 0 else self.max_telegram)
        if restart >= 0:
            self._end_junk(out)
            out.append(FrameError("truncated telegram (a new one started)", self._base))
            self._drop(restart)
            return True
        if bang < 0:
            return self._check_size(out, len(buf))
        eol = buf.find(b"\n", bang)
        if (eol < 0 and len(buf) - bang > 8) or eol - bang > 8:  # "!" + 4 hex + CR LF + slack
            return self._bad_tail(out, bang)
        if eol < 0:
            return False
        tail = bytes(buf[bang + 1:eol]).rstrip(b"\r").strip(b" ")
        if tail and not _HEX_CRC.match(tail):
            return self._bad_tail(out, bang)
        self._end_junk(out)
        offset = self._base
        body = bytes(buf[:bang + 1])
        self._drop(eol + 1)
        out.append(self._decode(offset, body, int(tail, 16) if tail else None))
        return True

    def _bad_tail(self, out: list[Telegram | ProtocolError], bang: int) -> bool:
        self._end_junk(out)
        out.append(FrameError("malformed CRC line after '!'", self._base + bang))
        self._drop(bang + 1)
        return True

    def _check_size(self, out: list[Telegram | ProtocolError], size: int) -> bool:
        if size <= self.max_telegram:
            return False
        self._end_junk(out)
        out.append(FrameError(f"telegram longer than {self.max_telegram} bytes", self._base))
        self._drop(1)  # resync at the next '/'
        return True

    # -- content ---------------------------------------------------------------------------

    def _decode(self, offset: int, body: bytes, crc: int | None) -> Telegram | ProtocolError:
        if crc is not None:
            actual = crc16_arc(body)
            if actual != crc:
                return ChecksumError(f"CRC {crc:04X} does not match {actual:04X}", offset)
        elif self.require_crc:
            return FrameError("telegram without CRC", offset)
        text = body[:-1].decode("latin-1")
        lines = text.split("\n")
        header = lines[0][1:].rstrip("\r")
        if len(header) < 4 or not header[:3].isalpha():
            return FrameError(f"bad identification line {header[:20]!r}", offset)
        objects: list[DataObject] = []
        for number, raw in enumerate(lines[1:], start=2):
            line = raw.rstrip("\r").strip()
            if not line:
                continue
            if objects and _CONTINUATION.match(line):
                prev = objects[-1]
                objects[-1] = DataObject(prev.obis, prev.values + tuple(_GROUPS.findall(line)))
                continue
            m = _LINE.match(line)
            code = ObisCode.parse(m.group(1)) if m else None
            if m is None or code is None:
                return FrameError(f"malformed data line {number}: {line[:40]!r}", offset)
            objects.append(DataObject(str(code), tuple(_GROUPS.findall(m.group(2)))))
        timestamp = None
        for obj in objects:
            if obj.obis == "0-0:1.0.0" and obj.values:
                timestamp = parse_timestamp(obj.values[0])
        return Telegram(offset, header, crc, tuple(objects), timestamp,
                        tuple(_measurements(objects, timestamp)))


def _value(raw: str) -> tuple[Decimal, str | None] | None:
    number, _, unit = raw.partition("*")
    d = to_decimal(number)
    if d is None:
        return None
    return d, (unit or None)


def _text(raw: str) -> str:
    """Octet strings are hex-encoded ASCII in DSMR 4+; decode when printable."""
    if raw and len(raw) % 2 == 0 and all(c in "0123456789ABCDEFabcdef" for c in raw):
        try:
            decoded = bytes.fromhex(raw).decode("ascii")
        except UnicodeDecodeError:
            return raw
        if decoded.isprintable():
            return decoded
    return raw


# The unit DSMR fixes for an electricity (A=1) code's SenML unit, for meters that leave the
# unit out (DSMR 5.0.2 P1 companion standard, section 6.12: energies in kWh, powers in kW).
_DSMR_UNIT = {"Wh": "kWh", "W": "kW", "varh": "kvarh", "var": "kvar", "V": "V", "A": "A",
              "Hz": "Hz"}


def _gas_hour(obj: DataObject) -> Measurement | None:
    """Itron ACE4000 ``7-0:23.1.0(value[*m3])(YY-MM-DD hh:mm:ss)``, either order."""
    if len(obj.values) != 2:
        return None
    for raw_value, raw_time in (obj.values, reversed(obj.values)):
        when = parse_timestamp(raw_time)
        parsed = _value(raw_value)
        if when is not None and parsed is not None:
            number, unit = parsed
            if unit not in (None, "m3"):
                return None
            return Measurement(obj.obis, "gas_volume", float(number), "m3", when)
    return None


def _measurements(objects: list[DataObject], timestamp: float | None) -> list[Measurement]:
    out: list[Measurement] = []
    mbus_type: dict[int, int] = {}
    for obj in objects:
        code = ObisCode.parse(obj.obis)
        assert code is not None
        if code.a == 0 and code.c == 24 and code.d == 1 and code.e == 0 and obj.values:
            d = to_decimal(obj.values[0])
            if d is not None:
                mbus_type[code.b] = int(d)
            continue
        if code.a == 0 and code.c == 24 and code.d in (2, 3) and 1 <= code.b <= 9:
            m = _mbus(obj, code, mbus_type.get(code.b))
            if m is not None:
                out.append(m)
            continue
        if code.a == 7 and code.c == 23 and code.d in (1, 2) and code.e == 0:
            gas = _gas_hour(obj)
            if gas is not None:
                out.append(gas)
            continue
        q = lookup(code)
        if q is None or not obj.values:
            continue
        if q.kind in ("text", "hextext"):
            text = _text(obj.values[-1]) if q.kind == "hextext" else obj.values[-1]
            if text:
                out.append(Measurement(obj.obis, q.name, text, None, timestamp))
            continue
        when = timestamp
        if len(obj.values) == 2:  # (capture time)(value), e.g. Fluvius 1-0:1.6.0
            when = parse_timestamp(obj.values[0])
            if when is None:
                continue
        parsed = _value(obj.values[-1])
        if parsed is None:
            continue
        number, unit = parsed
        if unit is None and code.a == 1 and q.unit in _DSMR_UNIT:
            unit = _DSMR_UNIT[q.unit]  # the unit the OBIS code has in DSMR
        if q.kind == "count":
            if number != number.to_integral_value():
                continue
            out.append(Measurement(obj.obis, q.name, int(number), q.unit, when))
            continue
        value, senml = scale(number, unit)
        name = q.name
        if unit is None:
            if q.unit not in (None, "/"):
                continue  # a quantity without its unit is ambiguous (kW or W?)
            senml = q.unit
        elif senml != q.unit:
            if q.name != "power_limit" or senml != "A":
                continue  # the meter states another dimension than the code implies
            name = "current_limit"  # DSMR 3 gives the limit in A
        out.append(Measurement(obj.obis, name, value, senml, when))
    return out


def _mbus(obj: DataObject, code: ObisCode, device_type: int | None) -> Measurement | None:
    vals = obj.values
    if code.d == 3 and len(vals) >= 7:  # DSMR 2.2/3: (time)(..)(..)(..)(obis)(unit)(value)
        when, raw = parse_timestamp(vals[0]), f"{vals[-1]}*{vals[5]}"
    elif code.d == 2 and len(vals) == 2:  # (time)(value*unit)
        when, raw = parse_timestamp(vals[0]), vals[1]
    else:
        return None
    parsed = _value(raw)
    if parsed is None or when is None:
        return None
    number, unit = parsed
    if unit is None:
        return None  # e.g. an unconnected channel reporting (00000000)
    value, senml = scale(number, unit)
    kind = _MBUS_KIND.get(device_type or 0)
    if kind is None:
        kind = "volume" if senml == "m3" else "energy" if senml in ("J", "Wh") else "value"
    return Measurement(obj.obis, f"mbus{code.b}_{kind}", value, senml, when)
