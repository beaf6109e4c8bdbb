"""``modbus-rtu``: a meter on RS-485 read with Modbus RTU (FC 03/04).

``model: sdm120 | sdm630`` uses the shipped Eastron maps; ``model: custom`` reads the
``registers:`` list. Registers are grouped into as few requests as possible. A request
without a valid answer within ``timeout`` (silence, bad CRC, garbage) is retried
``retries`` times. An exception response is the device's answer, so it is not retried: it
is a ModbusExceptionError (a HardwareError, counted under that name) and the poll fails.
NaN/infinite or implausible values are dropped and counted as ``range``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from edge_agent.core.errors import DeviceTimeoutError, HardwareError, ProtocolError
from edge_agent.core.model import Channel, Priority
from edge_agent.drivers.base import Emit, PollingSensor, Sample, Sensor, SensorContext, SensorSpec
from edge_agent.drivers.registry_types import SensorType
from edge_agent.drivers.serial_port import check_framing, emulator_running, open_serial
from edge_agent.emulators.modbus_rtu import ModbusEmulation, ModbusSlave
from edge_agent.hal.interfaces import ByteStream
from edge_agent.protocols import modbus_rtu as mb


class ModbusExceptionError(HardwareError):
    """The slave answered a read with a Modbus exception response."""

    def __init__(self, unit: int, function: int, address: int, code: int,
                 description: str) -> None:
        self.unit, self.function, self.address, self.code = unit, function, address, code
        super().__init__(f"unit {unit} answered exception {code} ({description}) to FC "
                         f"{function} @{address}")


@dataclass(frozen=True)
class ModbusOptions:
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


class ModbusSensor(PollingSensor):
    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: ModbusOptions,
                 port: Callable[[], str], device: ModbusSlave | None = None) -> None:
        super().__init__(spec, ctx)
        self.options = options
        self.emulator = device
        self._port = port
        self._plans = mb.plan_reads(list(options.register_map))
        self._stream: ByteStream | None = None

    def run(self, emit: Emit, stop: threading.Event) -> None:
        with emulator_running(self.emulator):
            super().run(emit, stop)

    def open(self) -> None:
        self._stream = open_serial(self._port(), self.options.baudrate,
                                   framing=self.options.framing, timeout=0.02)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def sample(self) -> list[Sample]:
        out: list[Sample] = []
        for plan in self._plans:
            for reg, value in plan.decode(self._transact(plan)):
                s = self.plausible_sample(reg.name, reg.name, value, reg.unit)
                if s is not None:
                    out.append(s)
        return out

    def _transact(self, plan: mb.ReadPlan) -> mb.ReadResponse:
        last: DeviceTimeoutError | ProtocolError | None = None
        for _ in range(self.options.retries + 1):
            try:
                return self._request(plan)
            except (DeviceTimeoutError, ProtocolError) as exc:
                last = exc
        assert last is not None
        raise last

    def _request(self, plan: mb.ReadPlan) -> mb.ReadResponse:
        stream = self._stream
        if stream is None:
            raise DeviceTimeoutError("port is not open")
        unit = self.options.unit
        request = plan.request(unit)
        stream.reset_input_buffer()
        stream.write(request)
        parser = mb.Parser()
        parser.feed(request)  # so the parser knows which answer to expect
        clock = self.ctx.clock
        deadline = clock.monotonic() + self.options.timeout
        while clock.monotonic() < deadline:
            for frame in parser.feed(stream.read(256)):
                if isinstance(frame, ProtocolError):
                    raise frame
                if frame.unit != unit or frame.function != plan.function:
                    continue  # our echo, or another master's traffic
                if isinstance(frame, mb.ExceptionResponse):
                    raise ModbusExceptionError(unit, plan.function, plan.address, frame.code,
                                               frame.description)
                if isinstance(frame, mb.ReadResponse):
                    return frame
        for item in parser.flush():  # a corrupted answer is a checksum/frame error
            if isinstance(item, ProtocolError):
                raise item
        raise DeviceTimeoutError(f"unit {unit} did not answer within {self.options.timeout} s")


def build(spec: SensorSpec, options: ModbusOptions, ctx: SensorContext) -> Sensor:
    if ctx.hardware == "emulated":
        device = ModbusSlave(options.register_map, unit=options.unit,
                             emulation=options.emulate)
        return ModbusSensor(spec, ctx, options, lambda: device.path, device)
    return ModbusSensor(spec, ctx, options, lambda: options.port)


TYPES = (
    SensorType(
        name="modbus-rtu",
        summary="Modbus RTU meter on RS-485 (Eastron SDM120/SDM630 or a custom register "
                "map): voltage, current, power, frequency, energy",
        options=ModbusOptions,
        build=build,
        default_channel=Channel.OT,
        default_priority=Priority.NORMAL,
        default_interval=10.0,
    ),
)
