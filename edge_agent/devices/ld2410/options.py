"""The ``ld2410`` sensor entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

StateName = Literal["none", "moving", "stationary", "both"]


@dataclass(frozen=True)
class PresenceStep:
    """Hold one target state for ``seconds``."""

    seconds: float = 10.0
    state: StateName = "none"
    distance_cm: int = 150
    energy: int = 60


def _default_schedule() -> list[PresenceStep]:
    return [PresenceStep(20.0, "none"), PresenceStep(20.0, "moving", 220, 70),
            PresenceStep(40.0, "stationary", 140, 45)]


@dataclass(frozen=True)
class LD2410Emulate:
    """Scenario knobs for the emulated radar (times in seconds since it started)."""

    schedule: list[PresenceStep] = field(default_factory=_default_schedule)
    frame_interval: float = 0.1
    noise_every: int = 0  # every Nth frame is preceded by noise bytes (0 = never)
    bad_check_every: int = 0  # every Nth frame carries a wrong check byte (0 = never)
    silence_after: float | None = None
    silence_for: float = 10.0
    unplug_after: float | None = None
    unplug_for: float = 5.0

    def __post_init__(self) -> None:
        if self.frame_interval <= 0:
            raise ValueError("frame_interval must be > 0")
        if any(s.seconds <= 0 for s in self.schedule):
            raise ValueError("every schedule step needs seconds > 0")
        if any(not 0 <= s.distance_cm <= 0xFFFF or not 0 <= s.energy <= 100
               for s in self.schedule):
            raise ValueError("distance_cm must be 0..65535 and energy 0..100")
        if self.noise_every < 0 or self.bad_check_every < 0:
            raise ValueError("noise_every and bad_check_every must be >= 0")


@dataclass(frozen=True)
class LD2410Options:
    port: str = "/dev/serial0"
    baudrate: int = 256000
    report_interval: float = 5.0
    silence_timeout: float = 5.0  # the radar reports about 10 times a second
    engineering: bool = False  # switch the radar to engineering reports (gate energies)
    emulate: LD2410Emulate = field(default_factory=LD2410Emulate)

    def __post_init__(self) -> None:
        if self.baudrate <= 0:
            raise ValueError("baudrate must be > 0")
        if self.report_interval < 0:
            raise ValueError("report_interval must be >= 0")
        if self.silence_timeout <= 0:
            raise ValueError("silence_timeout must be > 0")
