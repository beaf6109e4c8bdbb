"""The ``door`` sensor entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.devices.gpio_common import check_pin


@dataclass(frozen=True)
class DoorEmulate:
    """Emulated door: opened every ``every_seconds`` (None = never) for ``open_seconds``."""

    every_seconds: float | None = 120.0
    jitter_seconds: float = 30.0
    open_seconds: float = 10.0
    seed: int | None = None


@dataclass(frozen=True)
class DoorOptions:
    pin: int
    pull_up: bool = True  # reed switch to GND: a shut door closes it and pulls the pin low
    bounce_ms: int = 50
    emulate: DoorEmulate = field(default_factory=DoorEmulate)

    def __post_init__(self) -> None:
        check_pin(self.pin, self.bounce_ms)
