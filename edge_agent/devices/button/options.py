"""The ``button`` sensor entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ButtonEmulate:
    """Emulated presses: every ``press_every_seconds`` (None = never) +- jitter; a press
    is held past ``hold_seconds`` with ``hold_probability``; contacts bounce."""

    press_every_seconds: float | None = 300.0
    jitter_seconds: float = 60.0
    first_after_seconds: float | None = None
    press_seconds: float = 0.3
    hold_probability: float = 0.2
    bounce_edges: int = 3
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.hold_probability <= 1.0:
            raise ValueError("hold_probability must be within 0..1")


@dataclass(frozen=True)
class ButtonOptions:
    pin: int
    pull_up: bool = True  # a button to GND with the internal pull-up
    bounce_ms: int = 20
    hold_seconds: float = 3.0
    emulate: ButtonEmulate = field(default_factory=ButtonEmulate)

    def __post_init__(self) -> None:
        if not 0 <= self.pin <= 27:
            raise ValueError("pin must be a BCM GPIO number 0..27")
        if self.bounce_ms < 0:
            raise ValueError("bounce_ms must be >= 0")
        if self.hold_seconds <= 0:
            raise ValueError("hold_seconds must be > 0")
