"""The ``modbus-rtu`` sensor entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edge_agent.hal.serial import check_framing
from edge_agent.protocols import modbus_rtu as mb
from edge_agent.protocols.plausibility import MeterLimits

Fault = Literal["none", "silence", "bad_crc", "garbage", "exception"]


@dataclass(frozen=True)
class ModbusEmulation:
    """Scenario knobs (the ``emulate:`` block of a modbus-rtu sensor)."""

    values: dict[str, float] = field(default_factory=dict)  # name -> value (published unit)
    fault: Fault = "none"
    exception_code: int = 4  # for fault "exception": server device failure


@dataclass(frozen=True)
class ModbusOptions(MeterLimits):
    port: str = "/dev/ttyUSB0"
    baudrate: int = 9600
    framing: str = "8N1"
    unit: int = 1  # slave address 1..247
    model: Literal["sdm120", "sdm630", "custom"] = "sdm120"
    registers: list[mb.Register] = field(default_factory=list)  # model: custom
    timeout: float = 0.5  # seconds for each response
    retries: int = 1
    emulate: ModbusEmulation = field(default_factory=ModbusEmulation)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.unit <= 247:
            raise ValueError("unit must be between 1 and 247")
        if self.model == "custom" and not self.registers:
            raise ValueError("model: custom needs a registers: list")
        if self.model != "custom" and self.registers:
            raise ValueError("registers: is only for model: custom")
        names = [r.name for r in self.register_map]
        if len(set(names)) != len(names):
            raise ValueError("register names must be unique")
        if self.baudrate <= 0 or self.timeout <= 0 or not 0 <= self.retries <= 10:
            raise ValueError("need baudrate > 0, timeout > 0, 0 <= retries <= 10")
        check_framing(self.framing)

    @property
    def register_map(self) -> tuple[mb.Register, ...]:
        return tuple(self.registers) if self.model == "custom" else mb.MODELS[self.model]
