"""The ``mpu6050`` and ``adxl345`` entries: their keys and emulator scenario (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.protocols import accel as p


@dataclass(frozen=True)
class AccelEmulate:
    """Scenario knobs (the ``emulate`` key of ``mpu6050``/``adxl345`` sensors).

    A fall: ``free_fall_seconds`` near 0 g, a ``impact_g`` spike, then lying still (gravity
    along another axis) for ``lie_seconds``, then standing up again.
    """

    fall_at_seconds: float | None = None  # after the emulator starts; None = never
    fall_every_seconds: float | None = None  # repeat (None = once)
    free_fall_seconds: float = 0.35
    impact_g: float = 3.5
    impact_seconds: float = 0.08
    lie_seconds: float = 30.0
    noise_g: float = 0.02
    seed: int | None = None


@dataclass(frozen=True)
class AccelOptions:
    bus: int = 1
    address: int | None = None  # None: the chip's default (MPU6050Options, ADXL345Options)
    range_g: int = 8  # 4, 8 or 16: an impact (> 2.5 g) must not saturate
    sample_rate_hz: float = 50.0
    activity_seconds: float | None = 60.0  # emit ``activity`` per period (None = never)
    emulate: AccelEmulate = field(default_factory=AccelEmulate)

    def __post_init__(self) -> None:
        if self.range_g not in (4, 8, 16):
            raise ValueError("range_g must be 4, 8 or 16 (2 g saturates before an impact)")
        if not 10.0 <= self.sample_rate_hz <= 200.0:
            raise ValueError("sample_rate_hz must be within 10..200")
        if self.activity_seconds is not None and self.activity_seconds <= 0:
            raise ValueError("activity_seconds must be > 0")


@dataclass(frozen=True)
class MPU6050Options(AccelOptions):
    address: int | None = p.MPU_ADDRESS  # 0x68 (AD0 low); 0x69 with AD0 high


@dataclass(frozen=True)
class ADXL345Options(AccelOptions):
    address: int | None = p.ADXL_ADDRESS  # 0x53 (ALT ADDRESS low); 0x1D with it high
