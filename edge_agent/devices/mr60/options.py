"""The ``mr60fda1`` and ``mr60bha1`` entries: their keys and emulator scenario (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Model = Literal["mr60fda1", "mr60bha1"]


MotionName = Literal["none", "stationary", "moving"]


@dataclass(frozen=True)
class OccupancyStep:
    """Hold one occupancy state for ``seconds``."""

    seconds: float = 30.0
    present: bool = True
    motion: MotionName = "stationary"
    body_movement: int = 10

    def __post_init__(self) -> None:
        if self.seconds <= 0 or not 0 <= self.body_movement <= 100:
            raise ValueError("seconds must be > 0 and body_movement 0..100")


def _default_schedule() -> list[OccupancyStep]:
    return [OccupancyStep(30.0, True, "moving", 40), OccupancyStep(60.0, True, "stationary", 5),
            OccupancyStep(20.0, False, "none", 0)]


@dataclass(frozen=True)
class MR60Emulate:
    """Scenario knobs for the emulated radar (times in seconds since it started)."""

    schedule: list[OccupancyStep] = field(default_factory=_default_schedule)
    fall_at: float | None = None  # MR60FDA1: a fall at this time...
    fall_for: float = 30.0  # ...reported for this long
    heart_rate: int = 72  # MR60BHA1, /min
    respiration_rate: int = 16  # MR60BHA1, /min
    distance_cm: int = 80  # MR60BHA1
    report_interval: float = 1.0
    noise_every: int = 0  # every Nth burst is preceded by noise bytes (0 = never)
    bad_checksum_every: int = 0  # every Nth frame carries a wrong checksum (0 = never)
    silence_after: float | None = None
    silence_for: float = 10.0
    unplug_after: float | None = None
    unplug_for: float = 5.0

    def __post_init__(self) -> None:
        if self.report_interval <= 0 or self.fall_for <= 0:
            raise ValueError("report_interval and fall_for must be > 0")
        if not 0 <= self.heart_rate <= 255 or not 0 <= self.respiration_rate <= 255:
            raise ValueError("heart_rate and respiration_rate must be 0..255")
        if not 0 <= self.distance_cm <= 0xFFFF:
            raise ValueError("distance_cm must be 0..65535")
        if self.noise_every < 0 or self.bad_checksum_every < 0:
            raise ValueError("noise_every and bad_checksum_every must be >= 0")


@dataclass(frozen=True)
class MR60Options:
    port: str = "/dev/serial0"
    baudrate: int = 115200
    report_interval: float = 5.0
    silence_timeout: float = 90.0  # the radar sends a heartbeat frame every minute
    emulate: MR60Emulate = field(default_factory=MR60Emulate)

    def __post_init__(self) -> None:
        if self.baudrate <= 0:
            raise ValueError("baudrate must be > 0")
        if self.report_interval < 0:
            raise ValueError("report_interval must be >= 0")
        if self.silence_timeout <= 0:
            raise ValueError("silence_timeout must be > 0")
