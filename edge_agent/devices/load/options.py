"""The ``load`` sensor entry: its keys."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoadOptions:
    rate: float = 100.0  # readings per second
    chunk: float = 0.05  # seconds of readings emitted at once
    total: int | None = None  # stop after this many readings (None = run forever)

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 1_000_000:
            raise ValueError("rate must be between 0 and 1000000 readings/s")
        if not 0.001 <= self.chunk <= 10:
            raise ValueError("chunk must be between 0.001 and 10 seconds")
