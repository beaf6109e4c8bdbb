"""COSEM: the DataNotification push, its date-time, and its values as OBIS measurements.

The notification body is mapped to OBIS values for the common push layouts: arrays of
``(OBIS, value[, (scaler, unit)])`` structures (Aidon) and flat structures where logical
names and values alternate (Kamstrup, with implied scalers).
"""

from __future__ import annotations

import calendar
import struct
from dataclasses import dataclass
from typing import Any

from edge_agent.core.errors import FrameError
from edge_agent.protocols.dlms.axdr import Data, Reader, decode_data, jsonable
from edge_agent.protocols.obis import Measurement, ObisCode, lookup

DATA_NOTIFICATION = 0x0F


UNITS: dict[int, str | None] = {
    9: "Cel", 13: "m3", 14: "m3", 27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh",
    32: "varh", 33: "A", 35: "V", 44: "Hz", 255: None,
}


IMPLIED_SCALERS: dict[str, dict[tuple[int, int, int], int]] = {
    "Kamstrup_V0001": {
        (31, 7, 0): -2, (51, 7, 0): -2, (71, 7, 0): -2,  # 0.01 A
        (1, 8, 0): 1, (2, 8, 0): 1, (3, 8, 0): 1, (4, 8, 0): 1,  # 0.01 kWh = 10 Wh
    },
}


def cosem_datetime(raw: bytes) -> tuple[str, float | None] | None:
    """A 12-byte COSEM date-time: (local ISO text, epoch or None if no deviation given)."""
    if len(raw) != 12:
        return None
    year, month, day, _dow, hour, minute, second, _hs, deviation, _status = \
        struct.unpack(">HBBBBBBBhB", raw)
    if year == 0xFFFF or not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24
                              and minute < 60 and second < 60):
        return None
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if deviation == -0x8000 or not -720 <= deviation <= 720:
        return text, None
    # Blue Book: deviation = minutes of local time to UTC (UTC = local + deviation)
    try:
        local = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    return text, float(local + 60 * deviation)


@dataclass(frozen=True)
class Notification:
    """A decoded DataNotification (after joining segments and decrypting)."""

    offset: int
    invoke_id: int
    time_text: str | None  # the notification's date-time, meter-local
    timestamp: float | None  # epoch, when the meter states its UTC deviation
    body: Data
    objects: tuple[tuple[str, Data], ...]  # (OBIS, raw value) pairs found in the body
    measurements: tuple[Measurement, ...]
    list_id: str | None = None
    encrypted: bool = False
    system_title: bytes | None = None
    invocation_counter: int | None = None  # of the general-glo-ciphering APDU

    def select(self, obis: frozenset[str] | None) -> list[Measurement]:
        if not obis:
            return list(self.measurements)
        return [m for m in self.measurements if m.obis in obis]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "dlms-data-notification", "offset": self.offset,
            "invoke_id": self.invoke_id, "time": self.time_text, "timestamp": self.timestamp,
            "list_id": self.list_id, "encrypted": self.encrypted,
            "system_title": None if self.system_title is None else self.system_title.hex(),
            "invocation_counter": self.invocation_counter,
            "objects": [{"obis": o, "value": jsonable(v)} for o, v in self.objects],
            "measurements": [m.to_json() for m in self.measurements],
            "body": jsonable(self.body),
        }


def notification_fields(r: Reader) -> tuple[int, bytes, Data]:
    """(invoke id, raw date-time, body) of a DataNotification whose tag was read."""
    invoke_id = int.from_bytes(r.take(4), "big")
    first = r.byte()
    if first == 0x09:  # date-time written as a tagged octet-string
        first = r.byte()
    raw_time = r.take(first)
    return invoke_id, raw_time, decode_data(r)


def parse_notification(apdu: bytes, offset: int) -> Notification:
    r = Reader(apdu, offset)
    if not apdu or r.byte() != DATA_NOTIFICATION:
        tag = f"0x{apdu[0]:02X}" if apdu else "none"
        raise FrameError(f"not a DataNotification (APDU tag {tag})", offset)
    invoke_id, raw_time, body = notification_fields(r)
    if r.pos != len(apdu):
        raise FrameError(f"{len(apdu) - r.pos} bytes after the notification body", offset)
    when = cosem_datetime(raw_time) if raw_time else None
    list_id, objects, scalers = _layout(body)
    if when is None:  # Aidon and others send the clock (0-0:1.0.0) as a list element
        clock = next((v for c, v in objects if (c.a, c.b, c.c, c.d, c.e) == (0, 0, 1, 0, 0)
                      and isinstance(v, bytes)), None)
        when = cosem_datetime(clock) if clock else None
    measurements = tuple(_measurements(objects, scalers, list_id))
    return Notification(offset, invoke_id, when[0] if when else None,
                        when[1] if when else None, body,
                        tuple((str(code), value) for code, value in objects),
                        measurements, list_id)


def _obis(value: Data) -> ObisCode | None:
    return ObisCode.from_bytes(value) if isinstance(value, bytes) else None


def _layout(body: Data) -> tuple[str | None, list[tuple[ObisCode, Data]],
                                 dict[ObisCode, tuple[int, int]]]:
    """(list id, [(OBIS, value)], {OBIS: (scaler, unit)}) for the known push layouts."""
    objects: list[tuple[ObisCode, Data]] = []
    scalers: dict[ObisCode, tuple[int, int]] = {}
    list_id: str | None = None
    if not isinstance(body, list):
        return None, objects, scalers
    # Aidon style: [(OBIS, value[, (scaler, unit)]), ...]
    if body and all(isinstance(e, list) and len(e) in (2, 3) and _obis(e[0]) for e in body):
        for element in body:
            assert isinstance(element, list)
            code = _obis(element[0])
            assert code is not None
            objects.append((code, element[1]))
            su = element[2] if len(element) == 3 else None
            if isinstance(su, list) and len(su) == 2 and all(isinstance(x, int) for x in su):
                scaler, unit = su
                assert isinstance(scaler, int) and isinstance(unit, int)
                scalers[code] = (scaler, unit)
        return list_id, objects, scalers
    # Kamstrup style: [list id,] OBIS, value, OBIS, value, ...
    items = list(body)
    if items and isinstance(items[0], str):
        list_id = items[0]
        items = items[1:]
    i = 0
    while i + 1 < len(items):
        code = _obis(items[i])
        if code is None:
            i += 1
            continue
        objects.append((code, items[i + 1]))
        i += 2
    return list_id, objects, scalers


def _measurements(objects: list[tuple[ObisCode, Data]],
                  scalers: dict[ObisCode, tuple[int, int]],
                  list_id: str | None) -> list[Measurement]:
    out: list[Measurement] = []
    implied = IMPLIED_SCALERS.get(list_id or "", {})
    for code, value in objects:
        q = lookup(code)
        if q is None:
            continue
        if q.kind in ("text", "hextext"):
            if isinstance(value, bytes):
                try:
                    text = value.decode("ascii")
                except UnicodeDecodeError:
                    continue
                if text.isprintable() and text:
                    out.append(Measurement(str(code), q.name, text, None))
            elif isinstance(value, str) and value:
                out.append(Measurement(str(code), q.name, value, None))
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if code in scalers:
            scaler, unit_code = scalers[code]
            unit = UNITS.get(unit_code, f"unit{unit_code}")
            if unit != q.unit and not (q.unit == "/" and unit is None) \
                    and not (q.kind == "count" and unit is None):
                continue  # the meter states another unit than the code implies
        else:
            scaler = implied.get((code.c, code.d, code.e), 0)
        if q.kind == "count":
            out.append(Measurement(str(code), q.name, int(value), q.unit))
            continue
        scaled = float(value) * 10.0 ** scaler if scaler else float(value)
        out.append(Measurement(str(code), q.name, round(scaled, 6), q.unit))
    return out
