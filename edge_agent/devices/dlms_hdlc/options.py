"""The ``dlms-hdlc`` sensor entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edge_agent.hal.serial import check_framing
from edge_agent.protocols.dlms.cosem import METER_MODELS
from edge_agent.protocols.obis import selection as obis_selection
from edge_agent.protocols.plausibility import MeterLimits

Fault = Literal["none", "bad_fcs", "garbage", "truncated", "silence", "wrong_key", "replay"]


@dataclass(frozen=True)
class DlmsEmulation:
    """Scenario knobs (the ``emulate:`` block of a dlms-hdlc sensor)."""

    interval: float = 2.5  # Aidon/Kamstrup push every 2-10 s
    layout: Literal["aidon", "kamstrup"] = "aidon"
    power_w: float = 1122.0
    voltage_v: float = 230.7
    current_a: float = 4.9
    energy_import_wh: float = 10_049_926.0
    max_info: int = 200  # HDLC information field size; longer APDUs are segmented
    fault: Fault = "none"

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("emulate.interval must be positive")
        if not 32 <= self.max_info <= 2000:
            raise ValueError("emulate.max_info must be between 32 and 2000")


@dataclass(frozen=True)
class DlmsOptions(MeterLimits):
    port: str = "/dev/ttyUSB0"
    baudrate: int = 2400  # Aidon/Kamstrup HAN: 2400 8N1 (some meters 115200)
    framing: str = "8N1"
    key_file: Path | None = None  # EK (+ AK) for encrypted pushes
    model: str | None = None  # meter model for pushes without scalers (Swiss VSE lists)
    wrapping: Literal["hdlc", "mbus"] = "hdlc"  # mbus: M-Bus long frames (Kaifa MA309, T210)
    obis: list[str] = field(default_factory=list)  # empty = every known quantity
    silence_timeout: float = 60.0
    emulate: DlmsEmulation = field(default_factory=DlmsEmulation)

    def __post_init__(self) -> None:
        super().__post_init__()
        obis_selection(self.obis)
        if self.model is not None and self.model not in METER_MODELS:
            raise ValueError(f"unknown model {self.model!r}; known: "
                             f"{', '.join(sorted(METER_MODELS))}")
        if self.baudrate <= 0 or self.silence_timeout <= 0:
            raise ValueError("baudrate and silence_timeout must be > 0")
        check_framing(self.framing)
