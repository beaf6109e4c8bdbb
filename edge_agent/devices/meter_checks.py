"""The checks every meter value passes before it is published (the four meter families).

First the coarse range of its unit (``obis.plausible``, counted as ``range``), then the
installation's limits and register monotonicity (``protocols.plausibility``: ``range``,
``energy-decrease``). A value that fails is counted and never becomes a reading.
"""

from __future__ import annotations

from edge_agent.core.errors import ValueOutOfRangeError
from edge_agent.devices.base import Sample, Sensor
from edge_agent.protocols.plausibility import MeterGuard, MeterLimits


def guard_for(options: MeterLimits) -> MeterGuard:
    """A fresh guard for a meter sensor's options (they carry the installation limits)."""
    return MeterGuard(options)


def meter_sample(sensor: Sensor, guard: MeterGuard, what: str, name: str, value: float | int,
                 unit: str | None, time: float | None = None) -> Sample | None:
    """A meter value as a Sample, or None (counted per reason) if it may not be published."""
    sample = sensor.plausible_sample(what, name, value, unit, time)
    if sample is None:
        return None
    verdict = guard.verdict(name, float(value), unit)
    if verdict is not None:
        reason, why = verdict
        sensor.record_error(reason, ValueOutOfRangeError(f"{what} = {value} {unit or ''}: "
                                                         f"{why}"))
        return None
    return sample
