"""A Modbus RTU slave (an Eastron SDM120/SDM630 or a custom register map) on a pty.

It answers FC 03/04 reads for its unit id from its register map; a read that touches an
unmapped register gets exception 02, other functions exception 01. Faults: ``silence``,
``bad_crc``, ``garbage``, ``exception`` (``exception_code``); ``unplug()``/``replug()``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from edge_agent.core.clock import Clock
from edge_agent.devices.modbus_rtu.options import Fault, ModbusEmulation, ModbusOptions
from edge_agent.hal.emulated.pty import PtyDevice
from edge_agent.protocols.modbus_rtu import (
    Parser,
    ReadRequest,
    Register,
    exception_response,
    read_response,
)


def default_value(name: str) -> float:
    """A plausible value for a register by its name."""
    for key, value in (("voltage", 230.0), ("current", 2.0), ("power_factor", 0.95),
                       ("apparent", 470.0), ("reactive", 50.0), ("power", 450.0),
                       ("frequency", 50.0), ("energy_import", 1_234_567.0)):
        if key in name:
            return value
    return 0.0


class ModbusSlave(PtyDevice):
    """The slave device. ``requests`` counts the requests addressed to it."""

    def __init__(self, registers: tuple[Register, ...] | list[Register], *, unit: int = 1,
                 emulation: ModbusEmulation | None = None, clock: Clock | None = None,
                 link_dir: Path | None = None) -> None:
        super().__init__("modbus-rtu", link_dir=link_dir, clock=clock)
        self.unit = unit
        self.emulation = emulation or ModbusEmulation()
        self.fault: Fault = self.emulation.fault
        self.registers = {r.name: r for r in registers}
        self.requests = 0
        self._lock = threading.Lock()
        self._words: dict[tuple[int, int], int] = {}
        self._parser = Parser()
        for reg in registers:
            self._store(reg, self.emulation.values.get(reg.name, default_value(reg.name)))

    def _store(self, reg: Register, value: float) -> None:
        for i, word in enumerate(reg.encode(value)):
            self._words[(reg.function, reg.address + i)] = word

    def set_value(self, name: str, value: float) -> None:
        with self._lock:
            self._store(self.registers[name], value)

    def set_fault(self, fault: Fault) -> None:
        with self._lock:
            self.fault = fault

    def on_replug(self) -> None:
        self._parser = Parser()

    def on_data(self, data: bytes) -> None:
        for frame in self._parser.feed(data):
            if isinstance(frame, ReadRequest) and frame.unit == self.unit:
                self.requests += 1
                reply = self._answer(frame)
                if reply:
                    self.write(reply)

    def _answer(self, req: ReadRequest) -> bytes:
        with self._lock:
            fault = self.fault
            if req.function not in (3, 4):
                return exception_response(self.unit, req.function, 1)
            keys = [(req.function, req.address + i) for i in range(req.count)]
            if any(k not in self._words for k in keys):
                return exception_response(self.unit, req.function, 2)
            data = b"".join(self._words[k].to_bytes(2, "big") for k in keys)
        if fault == "silence":
            return b""
        if fault == "exception":
            return exception_response(self.unit, req.function, self.emulation.exception_code)
        reply = read_response(self.unit, req.function, data)
        if fault == "bad_crc":
            return reply[:-1] + bytes([reply[-1] ^ 0xFF])
        if fault == "garbage":
            return b"\xff\x00\xfe" + reply[3:]
        return reply


def emulate(options: ModbusOptions, clock: Clock) -> ModbusSlave:
    """The emulated slave of a ``modbus-rtu`` sensor: its unit, its register map, on a pty."""
    return ModbusSlave(options.register_map, unit=options.unit, emulation=options.emulate)
