"""The ``bme280`` sensor entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.protocols import bme280 as p


@dataclass(frozen=True)
class BME280Emulate:
    """Scenario knobs for an emulated BME280 (the ``emulate`` key of a ``bme280`` sensor)."""

    temperature: float = 22.0  # degC
    humidity: float = 50.0  # %RH
    pressure: float = 101325.0  # Pa
    noise: float = 0.02  # +- uniform noise (pressure noise is 100x, in Pa)
    chip_id: int = p.CHIP_ID  # 0x58 emulates a BMP280 answering instead
    seed: int | None = None


@dataclass(frozen=True)
class BME280Options:
    bus: int = 1
    address: int = p.ADDRESS_DEFAULT
    oversampling: int = 1  # 1, 2, 4, 8 or 16, for all three measurements
    emulate: BME280Emulate = field(default_factory=BME280Emulate)

    def __post_init__(self) -> None:
        if self.address not in (0x76, 0x77):
            raise ValueError("address must be 0x76 (118) or 0x77 (119)")
        if self.oversampling not in (1, 2, 4, 8, 16):
            raise ValueError("oversampling must be 1, 2, 4, 8 or 16")
