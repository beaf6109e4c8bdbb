"""COSEM: the DataNotification push, its date-time, and its values as OBIS measurements.

The notification body is mapped to OBIS values for the common push layouts: arrays of
``(OBIS, value[, (scaler, unit)])`` structures (Aidon) and flat structures where logical
names and values alternate (Kamstrup, with implied scalers).
"""

from __future__ import annotations

import calendar
import dataclasses
import struct
from dataclasses import dataclass
from typing import Any

from edge_agent.core.errors import FrameError, ProtocolError
from edge_agent.protocols.dlms.axdr import Data, Reader, decode_data, jsonable
from edge_agent.protocols.obis import Measurement, ObisCode, lookup

DATA_NOTIFICATION = 0x0F


UNITS: dict[int, str | None] = {
    9: "Cel", 13: "m3", 14: "m3", 27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh",
    32: "varh", 33: "A", 35: "V", 44: "Hz", 255: None,
}


class LayoutError(ProtocolError):
    """A push whose list layout or value scalers are not known: nothing of it is published.

    A number without a scaler-unit structure beside it is only trusted when a model table
    (``MODELS``) names its scaler, for the list id the meter sends.
    """

    reason = "layout"


@dataclass(frozen=True)
class Model:
    """A meter family's push list, as its HAN documentation describes it.

    ``scalers``: the implied scaler (power of ten) of each quantity (C, D, E) the list sends
    without a scaler-unit structure; a quantity not listed is not trusted. ``positional``:
    for lists that carry no OBIS codes, the OBIS code of each element, by list length.
    """

    source: str
    scalers: dict[tuple[int, int, int], int]
    positional: dict[int, tuple[str, ...]] = dataclasses.field(default_factory=dict)


_KAMSTRUP = Model(
    source="Kamstrup, 'HAN-NVE interface description' (OMNIPOWER, list id Kamstrup_V0001): "
           "powers in W/var, currents in 0.01 A, voltages in V, energies in 0.01 kWh",
    scalers={
        (1, 7, 0): 0, (2, 7, 0): 0, (3, 7, 0): 0, (4, 7, 0): 0,
        (31, 7, 0): -2, (51, 7, 0): -2, (71, 7, 0): -2,
        (32, 7, 0): 0, (52, 7, 0): 0, (72, 7, 0): 0,
        (1, 8, 0): 1, (2, 8, 0): 1, (3, 8, 0): 1, (4, 8, 0): 1,
    },
)

_KAIFA_3P = ("0-0:96.1.0", "0-0:96.1.7", "1-0:1.7.0", "1-0:2.7.0", "1-0:3.7.0", "1-0:4.7.0",
             "1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0", "1-0:32.7.0", "1-0:52.7.0",
             "1-0:72.7.0")
_KAIFA_1P = (*_KAIFA_3P[:7], "1-0:32.7.0")
_KAIFA_ENERGY = ("0-0:1.0.0", "1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0")

_KAIFA = Model(
    source="Kaifa MA105H2E/MA304H3E/MA304H4 HAN interface (NVE 'AMS HAN' list KFM_001; the "
           "Swedish/Danish lists carry the same units with OBIS codes): powers in W/var, "
           "currents in mA, voltages in 0.1 V, energies in Wh/varh",
    scalers={
        (1, 7, 0): 0, (2, 7, 0): 0, (3, 7, 0): 0, (4, 7, 0): 0,
        (31, 7, 0): -3, (51, 7, 0): -3, (71, 7, 0): -3,
        (32, 7, 0): -1, (52, 7, 0): -1, (72, 7, 0): -1,
        (1, 8, 0): 0, (2, 8, 0): 0, (3, 8, 0): 0, (4, 8, 0): 0,
    },
    # Element count after the list id -> OBIS code of each element (NVE list 2 and 3).
    positional={
        8: _KAIFA_1P, 12: _KAIFA_3P,
        13: _KAIFA_1P + _KAIFA_ENERGY, 17: _KAIFA_3P + _KAIFA_ENERGY,
    },
)

MODELS: dict[str, Model] = {"Kamstrup_V0001": _KAMSTRUP, "KFM_001": _KAIFA}
"""Push lists without scaler-unit structures, by the list id the meter sends first."""

def _vse_scalers(voltage: int, current: int) -> dict[tuple[int, int, int], int]:
    table = {(c, 8, e): 0 for c in range(1, 9) for e in range(5)}  # Wh, varh
    table.update({(c, 7, 0): 0 for c in (1, 2, 3, 4)})  # W, var
    table.update({(c, 7, 0): voltage for c in (32, 52, 72)})
    table.update({(c, 7, 0): current for c in (31, 51, 71)})
    table[(13, 7, 0)] = -3  # power factor in 0.001
    return table


_VSE_SOURCE = ("Swiss VSE push (capture-object list, then register values without "
               "scaler-unit); scalers as read by scs/smartmeter-datacollector (commit 1507c3f, "
               "smartmeter/cosem.py and smartmeter/{}.py) from this model's pushes")

METER_MODELS: dict[str, Model] = {
    "iskra-am550": Model(_VSE_SOURCE.format("iskraam550"), _vse_scalers(-1, -2)),
    "lg-e360": Model(_VSE_SOURCE.format("lge360"), _vse_scalers(-1, -2)),
    "lg-e450": Model(_VSE_SOURCE.format("lge450"), _vse_scalers(0, -2)),
}
"""Meter models named by a sensor's ``model:`` option, for pushes that carry no list id."""

_LIST_ID = (1, 0, 0, 2, 129)  # 1-0:0.2.129: the list version id (Kaifa SE/DK lists)


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


def parse_notification(apdu: bytes, offset: int, model: str | None = None) -> Notification:
    r = Reader(apdu, offset)
    if not apdu or r.byte() != DATA_NOTIFICATION:
        tag = f"0x{apdu[0]:02X}" if apdu else "none"
        raise FrameError(f"not a DataNotification (APDU tag {tag})", offset)
    invoke_id, raw_time, body = notification_fields(r)
    if r.pos != len(apdu):
        raise FrameError(f"{len(apdu) - r.pos} bytes after the notification body", offset)
    when = cosem_datetime(raw_time) if raw_time else None
    list_id, objects, scalers = _layout(body, offset)
    if when is None:  # Aidon and others send the clock (0-0:1.0.0) as a list element
        clock = next((v for c, v in objects if (c.a, c.b, c.c, c.d, c.e) == (0, 0, 1, 0, 0)
                      and isinstance(v, bytes)), None)
        when = cosem_datetime(clock) if clock else None
    epoch = when[1] if when else None
    measurements = tuple(dataclasses.replace(m, time=epoch)
                         for m in _measurements(objects, scalers, list_id, offset, model))
    return Notification(offset, invoke_id, when[0] if when else None,
                        when[1] if when else None, body,
                        tuple((str(code), value) for code, value in objects),
                        measurements, list_id)


def _obis(value: Data) -> ObisCode | None:
    return ObisCode.from_bytes(value) if isinstance(value, bytes) else None


def _list_id(value: Data) -> str | None:
    """A list id sent as a visible string, or as a printable octet string (Kaifa)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes) and len(value) != 6 and value.isascii() \
            and value.decode("ascii").isprintable():
        return value.decode("ascii")
    return None


Layout = tuple[str | None, list[tuple[ObisCode, Data]], dict[ObisCode, tuple[int, int]]]


def _layout(body: Data, offset: int) -> Layout:
    """(list id, [(OBIS, value)], {OBIS: (scaler, unit)}) for the known push layouts.

    Raises LayoutError for a list of numbers whose meaning is not known (no OBIS codes and
    no positional layout for its list id and length).
    """
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
    if _vse(body):
        return _vse_layout(body)
    items = list(body)
    if items and _list_id(items[0]) is not None:
        list_id = _list_id(items[0])
        items = items[1:]
    model = MODELS.get(list_id or "")
    if model is not None and items and _obis(items[0]) is None \
            and len(items) in model.positional:
        # Positional list (Kaifa, Norway): no OBIS codes, the layout follows the length.
        for text, value in zip(model.positional[len(items)], items, strict=True):
            code = ObisCode.parse(text)
            assert code is not None
            objects.append((code, value))
        return list_id, objects, scalers
    # Flat style (Kamstrup, Kaifa SE/DK): [list id,] OBIS, value, OBIS, value, ...; Austrian
    # pushes mix in (OBIS, value[, (scaler, unit)]) structures (TINETZ) or follow a value with
    # its (scaler, unit) (Netz NÖ/EVN).
    i = 0
    while i < len(items):
        element = items[i]
        if isinstance(element, list) and len(element) in (2, 3) and _obis(element[0]):
            code = _obis(element[0])
            assert code is not None
            objects.append((code, element[1]))
            su = element[2] if len(element) == 3 else None
            if isinstance(su, list) and len(su) == 2 and all(
                    isinstance(x, int) and not isinstance(x, bool) for x in su):
                scaler, unit = su
                assert isinstance(scaler, int) and isinstance(unit, int)
                scalers[code] = (scaler, unit)
            i += 1
            continue
        code = _obis(element)
        if code is None or i + 1 >= len(items):
            i += 1
            continue
        objects.append((code, items[i + 1]))
        i += 2
        su = items[i] if i < len(items) else None  # OBIS, value, (scaler, unit): Netz NÖ
        if isinstance(su, list) and len(su) == 2 and all(
                isinstance(x, int) and not isinstance(x, bool) for x in su):
            scaler, unit = su
            assert isinstance(scaler, int) and isinstance(unit, int)
            scalers[code] = (scaler, unit)
            i += 1
    for code, value in objects:
        if (code.a, code.b, code.c, code.d, code.e) == _LIST_ID and _list_id(value):
            list_id = _list_id(value)
    if not objects and any(isinstance(v, int | float) and not isinstance(v, bool)
                           for v in items):
        what = f"list {list_id!r} of {len(items)} elements" if list_id else \
            f"list of {len(items)} elements without OBIS codes or list id"
        raise LayoutError(f"unknown push layout: {what}", offset)
    return list_id, objects, scalers


def _descriptor(d: Data) -> bool:
    """A capture-object definition: {class id, logical name, attribute, data index}."""
    return (isinstance(d, list) and len(d) == 4 and isinstance(d[0], int)
            and _obis(d[1]) is not None and isinstance(d[2], int) and isinstance(d[3], int))


def _vse(body: list[Data]) -> bool:
    """Swiss VSE layout: the push setup's own object list, then one value per entry."""
    first = body[0] if body else None
    return (isinstance(first, list) and len(first) == len(body) and len(body) > 1
            and all(_descriptor(d) for d in first))


def _vse_layout(body: list[Data]) -> Layout:
    objects: list[tuple[ObisCode, Data]] = []
    scalers: dict[ObisCode, tuple[int, int]] = {}
    descriptors = body[0]
    assert isinstance(descriptors, list)
    for index, (desc, value) in enumerate(zip(descriptors, body, strict=True)):
        assert isinstance(desc, list)
        code = _obis(desc[1])
        assert code is not None
        if index == 0:
            continue  # the object list itself (push setup, attribute 2)
        if desc[2] == 2:  # the value attribute (register, data, clock)
            objects.append((code, value))
        elif desc[2] == 3 and isinstance(value, list) and len(value) == 2 \
                and all(isinstance(x, int) and not isinstance(x, bool) for x in value):
            scaler, unit = value
            assert isinstance(scaler, int) and isinstance(unit, int)
            scalers[code] = (scaler, unit)  # a register's scaler_unit pushed alongside
    return None, objects, scalers


def _measurements(objects: list[tuple[ObisCode, Data]],
                  scalers: dict[ObisCode, tuple[int, int]],
                  list_id: str | None, offset: int,
                  meter_model: str | None = None) -> list[Measurement]:
    """The known quantities of a push. Raises LayoutError when a number's scale is not known:
    no scaler-unit structure beside it and no model table entry for its list id (or, for
    pushes without list id, for the configured meter model)."""
    out: list[Measurement] = []
    model = MODELS.get(list_id or "")
    if model is None and meter_model is not None:
        model = METER_MODELS.get(meter_model)
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
        elif q.kind == "count":
            scaler = 0
        elif model is not None and (code.c, code.d, code.e) in model.scalers:
            scaler = model.scalers[(code.c, code.d, code.e)]
        else:
            whose = f"list {list_id!r}" if list_id else \
                f"meter model {meter_model!r}" if meter_model else \
                "a list without list id (set the sensor's model:)"
            raise LayoutError(f"{code} ({q.name}) has no scaler-unit in the push and none is "
                              f"known for {whose}", offset)
        if q.kind == "count":
            out.append(Measurement(str(code), q.name, int(value), q.unit))
            continue
        scaled = float(value) * 10.0 ** scaler if scaler else float(value)
        out.append(Measurement(str(code), q.name, round(scaled, 6), q.unit))
    return out
