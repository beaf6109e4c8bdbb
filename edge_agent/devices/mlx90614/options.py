"""The ``mlx90614`` sensor entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.protocols import mlx90614 as p


@dataclass(frozen=True)
class MLX90614Emulate:
    """Scenario knobs (the ``emulate`` key of an ``mlx90614`` sensor)."""

    object_temperature: float = 36.6  # degC, the person's skin/forehead
    ambient_temperature: float = 23.0
    noise: float = 0.05
    fever_after_seconds: float | None = None  # object temperature jumps to fever then
    fever_temperature: float = 38.6
    bad_pec_every: int = 0  # corrupt every Nth answer's PEC (0 = never)
    seed: int | None = None


@dataclass(frozen=True)
class MLX90614Options:
    bus: int = 1
    address: int = p.ADDRESS_DEFAULT
    presence_min_celsius: float = 30.0  # below this nobody is in front: no reading
    fever_alarm_celsius: float | None = None
    fever_alarm_hysteresis: float = 0.3
    emulate: MLX90614Emulate = field(default_factory=MLX90614Emulate)

    def __post_init__(self) -> None:
        if not 0x03 <= self.address <= 0x77:
            raise ValueError("address must be a 7-bit I2C address")
        if self.fever_alarm_hysteresis < 0:
            raise ValueError("fever_alarm_hysteresis must be >= 0")
