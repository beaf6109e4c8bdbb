"""OBIS codes (IEC 62056-61): parsing, the common quantities, unit scaling, plausible ranges.

Shared by the DSMR P1, IEC 62056-21 and DLMS/COSEM parsers. Names are SenML record names
(``energy_import_t1``); meter units are scaled to registered SenML units (kWh -> Wh,
kW -> W, GJ -> J).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

_TEXT = re.compile(
    r"^(?:(\d{1,3})-(\d{1,3}):)?(\d{1,3}|[A-Z])\.(\d{1,3}|[A-Z])(?:\.(\d{1,3}))?"
    r"(?:[*.&](\d{1,3}))?$"
)
_LETTERS = {"C": 96, "F": 97, "L": 98, "P": 99}  # IEC 62056-61 letter codes for C/D groups


@dataclass(frozen=True, order=True)
class ObisCode:
    """A logical name A-B:C.D.E*F (F = 255 when absent)."""

    a: int
    b: int
    c: int
    d: int
    e: int
    f: int = 255

    @classmethod
    def parse(cls, text: str) -> ObisCode | None:
        """``1-0:1.8.1``, ``1-0:1.8.1*255``, ``1.8.1`` (A-B = 1-0), ``C.1.0``; None if not one."""
        m = _TEXT.match(text.strip())
        if m is None:
            return None
        a, b, c, d, e, f = m.groups()
        cc, dd = _group(c), _group(d)
        code = cls(int(a) if a else 1, int(b) if b else 0, cc, dd,
                   int(e) if e else 0, int(f) if f else 255)
        if max(code.a, code.b, code.c, code.d, code.e, code.f) > 255:
            return None
        return code

    @classmethod
    def from_bytes(cls, raw: bytes) -> ObisCode | None:
        """The 6-byte logical name of a COSEM object."""
        if len(raw) != 6:
            return None
        return cls(*raw)

    def __str__(self) -> str:
        tail = "" if self.f == 255 else f"*{self.f}"
        return f"{self.a}-{self.b}:{self.c}.{self.d}.{self.e}{tail}"


def _group(text: str) -> int:
    return _LETTERS.get(text, 0) if text.isalpha() else int(text)


def normalize(text: str) -> str | None:
    """The canonical text of an OBIS code (``1-0:1.8.1``), or None if ``text`` is not one."""
    code = ObisCode.parse(text)
    return None if code is None else str(code)


def selection(codes: list[str]) -> frozenset[str]:
    """Canonical OBIS codes of a meter driver's ``obis:`` option; ValueError names a bad one."""
    out = set()
    for code in codes:
        canon = normalize(code)
        if canon is None:
            raise ValueError(f"obis: {code!r} is not an OBIS code (like 1-0:1.8.1)")
        out.add(canon)
    return frozenset(out)


@dataclass(frozen=True)
class Quantity:
    """What an OBIS code measures.

    ``kind``: number (scaled to ``unit``), count (int), text, or hextext (an octet string
    that DSMR sends hex-encoded).
    """

    name: str
    unit: str | None = None
    kind: str = "number"


def _energy_table() -> dict[tuple[int, int, int], Quantity]:
    t: dict[tuple[int, int, int], Quantity] = {}
    for c, base, unit in ((1, "energy_import", "Wh"), (2, "energy_export", "Wh"),
                          (3, "reactive_energy_import", "varh"),
                          (4, "reactive_energy_export", "varh")):
        t[(c, 8, 0)] = Quantity(base, unit)
        for tariff in (1, 2, 3, 4):
            t[(c, 8, tariff)] = Quantity(f"{base}_t{tariff}", unit)
    for q in (1, 2, 3, 4):
        t[(4 + q, 8, 0)] = Quantity(f"reactive_energy_q{q}", "varh")
        t[(4 + q, 7, 0)] = Quantity(f"reactive_power_q{q}", "var")
    t[(15, 8, 0)] = Quantity("energy_absolute", "Wh")
    t[(15, 7, 0)] = Quantity("power_absolute", "W")  # |import| + |export| (Iskra, EasyMeter)
    t[(1, 7, 0)] = Quantity("power_import", "W")
    t[(2, 7, 0)] = Quantity("power_export", "W")
    t[(3, 7, 0)] = Quantity("reactive_power_import", "var")
    t[(4, 7, 0)] = Quantity("reactive_power_export", "var")
    t[(1, 4, 0)] = Quantity("power_import_avg", "W")  # Fluvius: current average demand
    t[(1, 6, 0)] = Quantity("power_import_max", "W")  # Fluvius: this month's peak
    t[(16, 7, 0)] = Quantity("power", "W")  # import - export (signed)
    t[(14, 7, 0)] = Quantity("frequency", "Hz")
    t[(13, 7, 0)] = Quantity("power_factor", "/")
    t[(91, 7, 0)] = Quantity("current_neutral", "A")
    for phase, off in ((1, 20), (2, 40), (3, 60)):
        t[(off + 16, 7, 0)] = Quantity(f"power_l{phase}", "W")  # signed
        t[(off + 1, 7, 0)] = Quantity(f"power_import_l{phase}", "W")
        t[(off + 2, 7, 0)] = Quantity(f"power_export_l{phase}", "W")
        t[(off + 3, 7, 0)] = Quantity(f"reactive_power_import_l{phase}", "var")
        t[(off + 4, 7, 0)] = Quantity(f"reactive_power_export_l{phase}", "var")
        t[(off + 11, 7, 0)] = Quantity(f"current_l{phase}", "A")
        t[(off + 12, 7, 0)] = Quantity(f"voltage_l{phase}", "V")
        t[(off + 13, 7, 0)] = Quantity(f"power_factor_l{phase}", "/")
        t[(off + 12, 32, 0)] = Quantity(f"voltage_sags_l{phase}", "count", "count")
        t[(off + 12, 36, 0)] = Quantity(f"voltage_swells_l{phase}", "count", "count")
        t[(off + 11, 4, 0)] = Quantity(f"current_limit_l{phase}", "A")  # Fluvius
    return t


_ELECTRICITY = _energy_table()
_GENERAL: dict[tuple[int, int, int], Quantity] = {
    (96, 14, 0): Quantity("tariff", None, "count"),
    (96, 7, 21): Quantity("power_failures", "count", "count"),
    (96, 7, 9): Quantity("long_power_failures", "count", "count"),
    (96, 3, 10): Quantity("breaker_state", None, "count"),
    (17, 0, 0): Quantity("power_limit", "W"),
    (96, 1, 1): Quantity("equipment_id", None, "hextext"),
    (96, 1, 0): Quantity("equipment_id", None, "hextext"),
    (96, 1, 4): Quantity("fluvius_version", None, "text"),
    (96, 13, 0): Quantity("message", None, "hextext"),
}
_METER_VERSION = ObisCode(1, 3, 0, 2, 8)


def lookup(code: ObisCode) -> Quantity | None:
    """The quantity of a well-known electricity / general code, else None.

    Electricity codes (A=1) match on C.D.E whatever the channel B (meters use 1-0 and 1-1).
    M-Bus sub-meter values (0-n:24.2.x) depend on the device type: see the DSMR parser.
    Codes with a billing period (F != 255) are historical values and are not matched.
    """
    key = (code.c, code.d, code.e)
    if code.f != 255:  # a billing-period (historical) value, not the current one
        return None
    if code == _METER_VERSION:
        return Quantity("dsmr_version", None, "text")
    if code.a == 1:
        return _ELECTRICITY.get(key)
    if code.a == 0 and code.b == 0:
        return _GENERAL.get(key)
    return None


# Meter unit -> (factor, SenML unit). Units not listed pass through unchanged.
_SCALE: dict[str, tuple[Decimal, str]] = {
    "kWh": (Decimal(1000), "Wh"),
    "MWh": (Decimal(1_000_000), "Wh"),
    "kW": (Decimal(1000), "W"),
    "MW": (Decimal(1_000_000), "W"),
    "kvarh": (Decimal(1000), "varh"),
    "kvar": (Decimal(1000), "var"),
    "kVArh": (Decimal(1000), "varh"),
    "kVAr": (Decimal(1000), "var"),
    "GJ": (Decimal(1_000_000_000), "J"),
    "MJ": (Decimal(1_000_000), "J"),
    "kV": (Decimal(1000), "V"),
    "mA": (Decimal("0.001"), "A"),
    "m3": (Decimal(1), "m3"),
    "Wh": (Decimal(1), "Wh"),
    "W": (Decimal(1), "W"),
    "V": (Decimal(1), "V"),
    "A": (Decimal(1), "A"),
    "Hz": (Decimal(1), "Hz"),
}


def to_decimal(text: str) -> Decimal | None:
    """A meter number (``001581.123``, ``-0.5``) as a Decimal; None if it is not one."""
    t = text.strip()
    if not t or len(t) > 40 or not all(ch in "0123456789.+-" for ch in t):
        return None
    try:
        d = Decimal(t)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def scale(value: Decimal, unit: str | None) -> tuple[float, str | None]:
    """Scale a meter value to its SenML unit: (001.5, "kWh") -> (1500.0, "Wh")."""
    if unit is None:
        return float(value), None
    factor, senml = _SCALE.get(unit, (Decimal(1), unit))
    return float(value * factor), senml


# Physically plausible range per SenML unit for a single meter (values outside are dropped).
_PLAUSIBLE: dict[str | None, tuple[float, float]] = {
    "V": (0.0, 1_000.0),
    "A": (-10_000.0, 10_000.0),
    "W": (-10_000_000.0, 10_000_000.0),
    "var": (-10_000_000.0, 10_000_000.0),
    "Wh": (0.0, 1e13),
    "varh": (0.0, 1e13),
    "J": (0.0, 1e16),
    "m3": (0.0, 1e9),
    "Hz": (40.0, 70.0),
    "/": (-1.0, 1.0),
    "count": (0.0, 1e9),
}


@dataclass(frozen=True)
class Measurement:
    """A decoded, scaled value of a known OBIS quantity (IEC 62056-21 readout, DLMS push)."""

    obis: str
    name: str
    value: float | int | str
    unit: str | None
    time: float | None = None  # the meter's own time for it (epoch), when it gives one

    def to_json(self) -> dict[str, Any]:
        """The same shape for every meter protocol (``decode`` prints it)."""
        return {"obis": self.obis, "name": self.name, "value": self.value, "unit": self.unit,
                "time": self.time}


def plausible(value: float | int | str, unit: str | None) -> bool:
    """True if a numeric value is within the plausible range of its unit (text always is)."""
    if isinstance(value, str):
        return True
    if not math.isfinite(value):  # NaN (a meter's "no value"), infinities
        return False
    lo, hi = _PLAUSIBLE.get(unit, (-1e15, 1e15))
    return lo <= value <= hi
