"""Plausibility of meter values for the installation they come from (pure, no I/O).

The coarse ranges in ``obis.plausible`` hold for any meter; these follow the installation:

- voltage (V): within ``voltage_band`` times ``nominal_voltage`` (default 230 V, 0.5-1.5x,
  so 115-345 V). Exactly 0 V passes: a phase the meter does not measure (a single-phase
  meter's L2/L3, L2 on a 3-wire IT network).
- current (A): magnitude at most ``max_current`` (default 100 A).
- power (W, var, VA): magnitude at most ``nominal_voltage x band top x max_current x
  phases`` (one phase for a per-phase power ``_l1``/``_l2``/``_l3``).
- energy registers (Wh, varh, J, m3) never go backwards: a value below the last one accepted
  under the same name is held back (counted as ``energy-decrease``) until the register
  passes the last accepted value again.

A value that fails is counted as ``range`` (or ``energy-decrease``) and not published.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PER_PHASE = re.compile(r"_l[123]$")
_POWER_UNITS = frozenset({"W", "var", "VA"})
REGISTER_UNITS = frozenset({"Wh", "varh", "VAh", "J", "m3"})


@dataclass(frozen=True)
class MeterLimits:
    """The installation a meter measures (sensor options shared by the meter types)."""

    nominal_voltage: float = 230.0  # V, phase to neutral
    voltage_band: list[float] = field(default_factory=lambda: [0.5, 1.5])  # x nominal
    max_current: float = 100.0  # A, per phase (the main fuse, or the meter's Imax)
    phases: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.nominal_voltage <= 1000:
            raise ValueError("nominal_voltage must be in (0, 1000] V")
        band = self.voltage_band
        if len(band) != 2 or not 0 <= band[0] < 1 < band[1] <= 3:
            raise ValueError("voltage_band must be [low, high] with 0 <= low < 1 < high <= 3")
        if not 0 < self.max_current <= 10_000:
            raise ValueError("max_current must be in (0, 10000] A")
        if self.phases not in (1, 2, 3):
            raise ValueError("phases must be 1, 2 or 3")

    def out_of_range(self, name: str, value: float, unit: str | None) -> str | None:
        """Why ``value`` is implausible for this installation, or None if it is plausible."""
        if unit == "V":
            low = self.voltage_band[0] * self.nominal_voltage
            high = self.voltage_band[1] * self.nominal_voltage
            if value != 0 and not low <= value <= high:
                return f"outside {low:g}..{high:g} V"
        elif unit == "A":
            if abs(value) > self.max_current:
                return f"above max_current {self.max_current:g} A"
        elif unit in _POWER_UNITS:
            phases = 1 if _PER_PHASE.search(name) else self.phases
            bound = self.nominal_voltage * self.voltage_band[1] * self.max_current * phases
            if abs(value) > bound:
                return f"above {bound:g} {unit} (voltage x max_current x phases)"
        return None


@dataclass
class RegisterGuard:
    """The last accepted value of each energy register: registers never go backwards."""

    last: dict[str, float] = field(default_factory=dict)

    def decrease(self, name: str, value: float, unit: str | None) -> str | None:
        """Why ``value`` is held back (below the last accepted), or None (and remember it)."""
        if unit not in REGISTER_UNITS:
            return None
        last = self.last.get(name)
        if last is not None and value < last:
            return f"register went back from {last:g} to {value:g} {unit}"
        self.last[name] = value
        return None


@dataclass
class MeterGuard:
    """Installation limits and register monotonicity for one meter."""

    limits: MeterLimits
    registers: RegisterGuard = field(default_factory=RegisterGuard)

    def verdict(self, name: str, value: float, unit: str | None) -> tuple[str, str] | None:
        """None if ``value`` may be published, else (reason, why): ``range`` or
        ``energy-decrease``."""
        why = self.limits.out_of_range(name, value, unit)
        if why is not None:
            return "range", why
        why = self.registers.decrease(name, value, unit)
        if why is not None:
            return "energy-decrease", why
        return None
