"""Typed readings: the one thing that flows from drivers to the store.

A Reading is bound to its channel when it is created (by the sensor that owns it) and is
immutable, so nothing downstream can re-route it. Sequence numbers are not part of a
Reading: the channel store assigns them when the reading is accepted (committed).
"""

from __future__ import annotations

import enum
from typing import Any, Literal

import msgspec


class Channel(enum.StrEnum):
    """The two separated uplink channels."""

    OT = "ot"  # operational technology: meters, energy, device telemetry
    IT = "it"  # information systems: health and welfare data


class Priority(enum.IntEnum):
    """Store lanes, drained in this order. Lower value = more urgent."""

    ALARM = 0
    NORMAL = 1
    BULK = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Priority:
        return cls[label.upper()]


Value = float | int | bool | str

HardwareMode = Literal["emulated", "raspberry-pi"]
"""The site's ``hardware:``: every device emulated in-process, or the Pi's real buses."""

CLOCK_FLOOR = 1_577_836_800.0  # 2020-01-01T00:00:00Z: no correct clock reads earlier
"""A wall time before this means the clock is not set (a Pi without RTC boots in 1970)."""


class Reading(msgspec.Struct, frozen=True, gc=False):
    """One measured (or detected) value from one sensor.

    ``name`` and ``unit`` follow SenML (RFC 8428): the published record name is
    ``"<sensor>/<name>"``; ``unit`` is a SenML unit symbol (``"W"``, ``"kWh"``, ``"Cel"``,
    ``"%RH"``, ``"/min"``, ...) or None. ``time`` is wall-clock seconds since the epoch.
    """

    sensor: str
    channel: Channel
    priority: Priority
    name: str
    value: Value
    time: float
    unit: str | None = None

    def senml(self) -> dict[str, Any]:
        """The RFC 8428 record for this reading (without base fields)."""
        rec: dict[str, Any] = {"n": f"{self.sensor}/{self.name}"}
        if self.unit is not None:
            rec["u"] = self.unit
        v = self.value
        if isinstance(v, bool):
            rec["vb"] = v
        elif isinstance(v, str):
            rec["vs"] = v
        else:
            rec["v"] = v
        rec["t"] = self.time
        if self.time < CLOCK_FLOOR:
            # Unset clock: SenML would even read small values as relative times. A
            # must-understand field (RFC 8428 4.4, trailing "_") stops a consumer from
            # taking the timestamp at face value; sequence order is unaffected.
            rec["clock_"] = "unsynced"
        return rec


def senml_records(readings: list[Reading], base_name: str | None = None) -> list[dict[str, Any]]:
    """SenML records for a batch; ``base_name`` (if given) goes on the first record."""
    recs = [r.senml() for r in readings]
    if base_name and recs:
        recs[0] = {"bn": base_name, **recs[0]}
    return recs
