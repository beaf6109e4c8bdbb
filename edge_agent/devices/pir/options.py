"""The ``pir`` sensor entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.devices.gpio_common import check_pin


@dataclass(frozen=True)
class PirEmulate:
    """Emulated motion: a motion episode every ``every_seconds`` (None = never)."""

    every_seconds: float | None = 30.0
    jitter_seconds: float = 10.0
    motion_seconds: float = 5.0
    seed: int | None = None


@dataclass(frozen=True)
class PirOptions:
    pin: int
    pull_up: bool = False  # PIR modules drive their output high on motion
    bounce_ms: int = 50
    count_seconds: float | None = None  # also emit ``motion_count`` per period
    emulate: PirEmulate = field(default_factory=PirEmulate)

    def __post_init__(self) -> None:
        check_pin(self.pin, self.bounce_ms)
        if self.count_seconds is not None and self.count_seconds <= 0:
            raise ValueError("count_seconds must be > 0")
