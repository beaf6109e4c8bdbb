"""The ``sht31`` sensor entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.protocols import sht31


@dataclass(frozen=True)
class SHT31Emulate:
    """Scenario knobs for an emulated SHT31 (the ``emulate`` key of an ``sht31`` sensor)."""

    temperature: float = 24.0  # degC
    humidity: float = 45.0  # %RH
    noise: float = 0.05  # +- uniform noise on both
    heat_wave_after_seconds: float | None = None  # start a heat wave this long after start
    heat_wave_rate: float = 0.05  # degC per second while it ramps
    heat_wave_peak: float = 36.0  # degC where the ramp stops
    bad_crc_every: int = 0  # corrupt the CRC of every Nth measurement (0 = never)
    nak_every: int = 0  # NAK every Nth measurement command (0 = never)
    seed: int | None = None


@dataclass(frozen=True)
class SHT31Options:
    bus: int = 1
    address: int = sht31.ADDRESS_DEFAULT
    heat_alarm_celsius: float | None = None
    heat_alarm_hysteresis: float = 1.0
    emulate: SHT31Emulate = field(default_factory=SHT31Emulate)

    def __post_init__(self) -> None:
        if self.address not in (0x44, 0x45):
            raise ValueError("address must be 0x44 (68) or 0x45 (69)")
        if self.heat_alarm_hysteresis < 0:
            raise ValueError("heat_alarm_hysteresis must be >= 0")
