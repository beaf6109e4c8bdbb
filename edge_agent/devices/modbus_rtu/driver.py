"""``modbus-rtu``: a meter on RS-485 read with Modbus RTU (FC 03/04).

``model: sdm120 | sdm630`` uses the shipped Eastron maps; ``model: custom`` reads the
``registers:`` list. Registers are grouped into as few requests as possible. A request
without a valid answer within ``timeout`` (silence, bad CRC, garbage) is retried
``retries`` times. An exception response is the device's answer, so it is not retried: it
is a ModbusExceptionError (a HardwareError, counted under that name) and the poll fails.
NaN/infinite or implausible values are dropped and counted as ``range``.
"""

from __future__ import annotations

from edge_agent.core.errors import DeviceTimeoutError, HardwareError, ProtocolError
from edge_agent.devices.base import PollingSensor, Sample, Sensor, SensorContext, SensorSpec
from edge_agent.devices.meter_checks import guard_for, meter_sample
from edge_agent.devices.modbus_rtu.options import ModbusOptions
from edge_agent.hal.interfaces import ByteStream
from edge_agent.protocols import modbus_rtu as mb


class ModbusExceptionError(HardwareError):
    """The slave answered a read with a Modbus exception response."""

    def __init__(self, unit: int, function: int, address: int, code: int,
                 description: str) -> None:
        self.unit, self.function, self.address, self.code = unit, function, address, code
        super().__init__(f"unit {unit} answered exception {code} ({description}) to FC "
                         f"{function} @{address}")


class ModbusSensor(PollingSensor):
    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: ModbusOptions) -> None:
        super().__init__(spec, ctx)
        self.options = options
        self._plans = mb.plan_reads(list(options.register_map))
        self._stream: ByteStream | None = None
        self._guard = guard_for(options)


    def open(self) -> None:
        self._stream = self.ctx.hw.serial(self.options.port, self.options.baudrate,
                                   framing=self.options.framing, timeout=0.02)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def sample(self) -> list[Sample]:
        out: list[Sample] = []
        for plan in self._plans:
            for reg, value in plan.decode(self._transact(plan)):
                s = meter_sample(self, self._guard, reg.name, reg.name, value, reg.unit)
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
    return ModbusSensor(spec, ctx, options)
