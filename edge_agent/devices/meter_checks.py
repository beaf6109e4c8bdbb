"""The checks every meter value passes before it is published (the four meter families).

First the coarse range of its unit (``obis.plausible``, counted as ``range``), then the
installation's limits and register monotonicity (``protocols.plausibility``: ``range``,
``energy-decrease``). A value that fails is counted and never becomes a reading.

``PushSampler`` is the part the meters that push on their own (DSMR P1, DLMS push) share:
at most one telegram or push per ``interval`` seconds, numbers through those checks, text
values (equipment id, firmware) either dropped or published only when they change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from edge_agent.core.clock import Clock
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


class MeterValue(Protocol):
    """One decoded value of a telegram or push (the DSMR and the OBIS measurements)."""

    @property
    def obis(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> float | int | str: ...
    @property
    def unit(self) -> str | None: ...


class PushSampler:
    """Rate limit and checks for a meter that pushes telegrams on its own schedule."""

    def __init__(self, sensor: Sensor, guard: MeterGuard, clock: Clock, interval: float, *,
                 texts: bool) -> None:
        self._sensor = sensor
        self._guard = guard
        self._clock = clock
        self._interval = interval
        self._texts: dict[str, str] | None = {} if texts else None
        self._last: float | None = None

    def reset_texts(self) -> None:
        """Publish every text value again (a reconnected port may be another meter)."""
        if self._texts is not None:
            self._texts.clear()

    def due(self) -> bool:
        """True (and the interval restarts) if a telegram may be published now."""
        now = self._clock.monotonic()
        if self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        return True

    def samples(self, values: Iterable[tuple[MeterValue, float | None]]) -> list[Sample]:
        """The publishable samples of one telegram's (value, device time) pairs."""
        out: list[Sample] = []
        for m, time in values:
            if isinstance(m.value, str):
                if self._texts is not None and self._texts.get(m.name) != m.value:
                    self._texts[m.name] = m.value
                    out.append(Sample(m.name, m.value, None, time=time))
                continue
            s = meter_sample(self._sensor, self._guard, f"{m.obis} {m.name}", m.name, m.value,
                             m.unit, time)
            if s is not None:
                out.append(s)
        return out
