"""The ``max30102`` sensor entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.protocols import max30102 as p


@dataclass(frozen=True)
class MAX30102Emulate:
    """Scenario knobs (the ``emulate`` key of a ``max30102`` sensor)."""

    heart_rate: float = 72.0  # beats per minute
    spo2: float = 97.0  # percent
    perfusion: float = 0.02  # IR AC/DC modulation depth
    finger: bool = True  # a finger on the sensor
    finger_off_after_seconds: float | None = None
    desaturation_after_seconds: float | None = None
    desaturated_spo2: float = 86.0
    noise: float = 20.0  # counts
    seed: int | None = None


@dataclass(frozen=True)
class MAX30102Options:
    bus: int = 1
    sample_rate_hz: int = 100  # ADC rate: 50, 100, 200 or 400
    sample_average: int = 4  # on-chip averaging: 1..32; FIFO rate = rate / average
    led_current_ma: float = 7.0
    window_seconds: float = 8.0
    report_seconds: float = 10.0
    spo2_alarm_percent: float | None = None  # alarm when SpO2 <= this
    spo2_alarm_hysteresis: float = 2.0
    emulate: MAX30102Emulate = field(default_factory=MAX30102Emulate)

    def __post_init__(self) -> None:
        if self.sample_rate_hz not in (50, 100, 200, 400):
            raise ValueError("sample_rate_hz must be 50, 100, 200 or 400")
        if self.sample_average not in p.SAMPLE_AVERAGES:
            raise ValueError("sample_average must be 1, 2, 4, 8, 16 or 32")
        if not 0 < self.led_current_ma <= 51.0:
            raise ValueError("led_current_ma must be within 0..51")
        if not 4.0 <= self.window_seconds <= 30.0:
            raise ValueError("window_seconds must be within 4..30")
        if self.report_seconds <= 0:
            raise ValueError("report_seconds must be > 0")

    @property
    def fifo_rate(self) -> float:
        return self.sample_rate_hz / self.sample_average
