"""The ``dsmr-p1`` sensor entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_agent.hal.serial import check_framing
from edge_agent.protocols.obis import selection as obis_selection
from edge_agent.protocols.plausibility import MeterLimits

Fault = Literal["none", "bad_crc", "garbage", "truncated", "silence", "replay"]


@dataclass(frozen=True)
class DsmrEmulation:
    """Scenario knobs for the emulated meter (the ``emulate:`` block of a dsmr-p1 sensor)."""

    interval: float = 1.0  # seconds between telegrams (DSMR 5: 1 s, DSMR 4: 10 s)
    power_w: float = 450.0  # import power; energy registers integrate it
    export_w: float = 0.0
    voltage_v: float = 230.0
    energy_import_wh: float = 1_234_567.0  # tariff 1 + tariff 2 at start
    gas_m3: float | None = 987.654  # None = no M-Bus gas meter
    values: dict[str, str] = field(default_factory=dict)  # OBIS -> raw value text override
    fault: Fault = "none"
    fault_every: int = 1  # every Nth telegram carries the fault
    unplug_after: float = 0.0  # seconds after start, once; 0 = never
    unplug_for: float = 5.0

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("emulate.interval must be positive")
        if self.fault_every < 1:
            raise ValueError("emulate.fault_every must be at least 1")


class DsmrVersion(str):
    """A DSMR version: 5, 4, 3 or 2.2 (also written as a number in YAML)."""

    __config_name__ = "a DSMR version (5, 4, 3 or 2.2)"

    @classmethod
    def __config_parse__(cls, v: Any) -> DsmrVersion:
        text = str(v) if isinstance(v, int | float | str) and not isinstance(v, bool) else ""
        if text not in ("5", "4", "3", "2.2"):
            raise ValueError(f"expected a DSMR version (5, 4, 3 or 2.2), got {v!r}")
        return cls(text)

    @property
    def modern(self) -> bool:
        return self in ("5", "4")


@dataclass(frozen=True)
class DsmrOptions(MeterLimits):
    port: str = "/dev/ttyUSB0"
    version: DsmrVersion = DsmrVersion("5")
    baudrate: int | None = None  # default: 115200 (DSMR 4/5), 9600 (2.2/3)
    framing: str | None = None  # default: 8N1 (DSMR 4/5), 7E1 (2.2/3)
    obis: list[str] = field(default_factory=list)  # empty = every known quantity
    silence_timeout: float = 30.0  # reopen the port after this long without data
    key_file: Path | None = None  # encrypted P1 (Smarty): EK (and AK) lines, mode 0600
    auth_key_file: Path | None = None  # the AK in a file of its own (AK=<hex>), mode 0600
    emulate: DsmrEmulation = field(default_factory=DsmrEmulation)

    def __post_init__(self) -> None:
        super().__post_init__()
        DsmrVersion.__config_parse__(self.version)
        obis_selection(self.obis)
        if self.baudrate is not None and self.baudrate <= 0:
            raise ValueError("baudrate must be > 0")
        if self.framing is not None:
            check_framing(self.framing)
        if self.silence_timeout <= 0:
            raise ValueError("silence_timeout must be > 0")
        if self.auth_key_file is not None and self.key_file is None:
            raise ValueError("auth_key_file needs a key_file (the encryption key)")

    @property
    def line(self) -> tuple[int, str]:
        modern = DsmrVersion(self.version).modern
        return (self.baudrate or (115200 if modern else 9600),
                self.framing or ("8N1" if modern else "7E1"))
