"""The ``iec62056-21`` sensor entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edge_agent.protocols import iec62056_21 as iec
from edge_agent.protocols.iec62056_21 import (
    BAUD_CHAR,
)
from edge_agent.protocols.obis import selection as obis_selection
from edge_agent.protocols.plausibility import MeterLimits

Fault = Literal["none", "silence", "bad_bcc", "garbage"]


@dataclass(frozen=True)
class IecEmulation:
    """Scenario knobs for the emulated meter (the ``emulate:`` block of an iec62056-21 sensor)."""

    manufacturer: str = "EMU"
    ident: str = "EDGE-IEC-1"
    address: str = ""  # the meter answers sign-ons with this address or none
    max_baudrate: int = 9600
    power_w: float = 450.0
    voltage_v: float = 230.0
    energy_import_wh: float = 1_234_567.0
    values: dict[str, str] = field(default_factory=dict)  # data set address -> raw value
    fault: Fault = "none"
    ignore_sign_ons: int = 0
    corrupt_readouts: int = 0
    nak_options: bool = False
    readout_chunk: int = 0  # 0 = the whole readout at once
    switch_delay: float = 0.03

    def __post_init__(self) -> None:
        if self.max_baudrate not in BAUD_CHAR:
            raise ValueError(f"emulate.max_baudrate must be one of {sorted(BAUD_CHAR)}")
        if len(self.manufacturer) != 3 or not self.manufacturer.isalpha():
            raise ValueError("emulate.manufacturer must be 3 letters")
        if min(self.ignore_sign_ons, self.corrupt_readouts, self.readout_chunk) < 0:
            raise ValueError("emulate counts must be >= 0")


@dataclass(frozen=True)
class IecOptions(MeterLimits):
    port: str = "/dev/ttyUSB0"
    address: str = ""  # device address for the sign-on (empty = any meter on the probe)
    max_baudrate: int = 9600  # cap on the readout baud rate (300..19200)
    obis: list[str] = field(default_factory=list)  # empty = every known quantity
    request_timeout: float = 3.0  # seconds for each answer
    retries: int = 2  # further sign-ons when the meter does not answer
    emulate: IecEmulation = field(default_factory=IecEmulation)

    def __post_init__(self) -> None:
        super().__post_init__()
        obis_selection(self.obis)
        iec.sign_on(self.address)  # validates the address
        if self.max_baudrate not in iec.BAUD_CHAR:
            raise ValueError(f"max_baudrate must be one of {sorted(iec.BAUD_CHAR)}")
        if self.request_timeout <= 0:
            raise ValueError("request_timeout must be > 0")
        if not 0 <= self.retries <= 10:
            raise ValueError("retries must be between 0 and 10")
