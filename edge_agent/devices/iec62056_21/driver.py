"""``iec62056-21``: a meter read through an IEC 62056-21 optical probe (mode C data readout).

Every poll: sign-on at 300 baud 7E1, read the identification, select data readout at the
meter's baud rate (capped by ``max_baudrate``), switch, read the data block.

``request_timeout`` is the longest silence tolerated while waiting for an answer: a slow
readout keeps the dialogue alive as long as bytes arrive. A dialogue that fails (no answer,
a BCC mismatch or a garbled message from a noisy optical head, a NAK) is started again from
the sign-on up to ``retries`` times; then the poll fails with the last error (counted per
reason, the port is reopened with backoff). Implausible values are dropped and counted.
"""

from __future__ import annotations

from typing import TypeVar

from edge_agent.core.errors import DeviceTimeoutError, FrameError, ProtocolError
from edge_agent.devices.base import PollingSensor, Sample, Sensor, SensorContext, SensorSpec
from edge_agent.devices.iec62056_21.options import IecOptions
from edge_agent.devices.meter_checks import guard_for, meter_sample
from edge_agent.hal.interfaces import ByteStream
from edge_agent.protocols import iec62056_21 as iec
from edge_agent.protocols.obis import selection as obis_selection

M = TypeVar("M", iec.Identification, iec.DataBlock)


class IecSensor(PollingSensor):
    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: IecOptions) -> None:
        super().__init__(spec, ctx)
        self.options = options
        self._selection = obis_selection(options.obis)
        self._stream: ByteStream | None = None
        self.identification: iec.Identification | None = None
        self._guard = guard_for(options)


    def open(self) -> None:
        self._stream = self.ctx.hw.serial(self.options.port, 300, framing="7E1", timeout=0.05)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def sample(self) -> list[Sample]:
        last: DeviceTimeoutError | ProtocolError | None = None
        for _ in range(self.options.retries + 1):
            try:
                return self.readout()
            except (DeviceTimeoutError, ProtocolError) as exc:
                last = exc
        assert last is not None
        raise last

    def readout(self) -> list[Sample]:
        """One sign-on .. data block dialogue."""
        stream = self._stream
        if stream is None:
            raise DeviceTimeoutError("port is not open")
        parser = iec.Parser()
        stream.baudrate = 300
        stream.reset_input_buffer()
        stream.write(iec.sign_on(self.options.address))
        ident = self._wait(stream, parser, iec.Identification)
        self.identification = ident
        rate = min(ident.baudrate or 300, self.options.max_baudrate)
        stream.write(iec.option_select(rate))
        drain = getattr(stream, "flush", None)
        if callable(drain):  # the ACK must leave at 300 baud before the switch
            drain()
        stream.baudrate = rate
        block = self._wait(stream, parser, iec.DataBlock)
        return self.samples(block)

    def _wait(self, stream: ByteStream, parser: iec.Parser, kind: type[M]) -> M:
        """The next ``kind`` message; DeviceTimeoutError after ``request_timeout`` of silence."""
        clock = self.ctx.clock
        timeout = self.options.request_timeout
        deadline = clock.monotonic() + timeout
        received = 0
        while clock.monotonic() < deadline:
            data = stream.read(256)
            if data:  # the meter is talking: a long readout at a low baud rate is fine
                deadline = clock.monotonic() + timeout
                received += len(data)
                if received > 2 * parser.max_message:  # talking, but never what we wait for
                    raise FrameError(f"no {kind.__name__.lower()} in {received} bytes")
            for item in parser.feed(data):
                if isinstance(item, ProtocolError):
                    raise item
                if isinstance(item, iec.Control) and item.name == "NAK":
                    raise FrameError(f"meter answered NAK while a {kind.__name__.lower()} "
                                     "was expected", item.offset)
                if isinstance(item, kind):
                    return item
        raise DeviceTimeoutError(f"no {kind.__name__.lower()} (silent for {timeout} s)")

    def samples(self, block: iec.DataBlock) -> list[Sample]:
        out: list[Sample] = []
        for m in block.select(self._selection):
            if isinstance(m.value, str):
                out.append(Sample(m.name, m.value, m.unit))
                continue
            s = meter_sample(self, self._guard, f"{m.obis} {m.name}", m.name, m.value, m.unit)
            if s is not None:
                out.append(s)
        return out


def build(spec: SensorSpec, options: IecOptions, ctx: SensorContext) -> Sensor:
    return IecSensor(spec, ctx, options)
