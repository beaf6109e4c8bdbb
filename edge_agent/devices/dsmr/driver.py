"""``dsmr-p1``: a DSMR / ESMR / Fluvius smart meter's P1 port (push telegrams).

DSMR 4/5 (and ESMR 5, Fluvius): 115200 8N1 with CRC; DSMR 2.2/3: 9600 7E1, no CRC. Every
known OBIS quantity becomes a reading (``obis`` selects a subset), scaled to SenML units
(Wh, W, V, A, m3, J), timed by the meter's own timestamps. Text values (equipment id,
version) are published when they change. At most one telegram per ``interval`` seconds is
published (0 = every telegram). A port silent for ``silence_timeout`` seconds is reopened.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge_agent.core.errors import ProtocolError
from edge_agent.devices.base import Sample, Sensor, SensorContext, SensorSpec, StreamSensor
from edge_agent.devices.dsmr.options import DsmrOptions, DsmrVersion
from edge_agent.devices.meter_checks import guard_for, meter_sample
from edge_agent.devices.serial_sensor import SilenceWatchdog
from edge_agent.hal.interfaces import ByteStream
from edge_agent.protocols import dsmr
from edge_agent.protocols.obis import selection as obis_selection


class DsmrSensor(StreamSensor):
    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: DsmrOptions) -> None:
        super().__init__(spec, ctx)
        self.options = options
        self._selection = obis_selection(options.obis)
        self._require_crc = DsmrVersion(options.version).modern
        self._parser = dsmr.Parser(require_crc=self._require_crc)
        self._texts: dict[str, str] = {}
        self._guard = guard_for(options)
        self._last_publish: float | None = None


    def open_stream(self) -> ByteStream:
        baudrate, framing = self.options.line
        stream = self.ctx.hw.serial(self.options.port, baudrate, framing=framing)
        return SilenceWatchdog(stream, self.ctx.clock, self.options.silence_timeout)

    def on_open(self, stream: ByteStream) -> None:
        self._parser = dsmr.Parser(require_crc=self._require_crc)
        self._texts.clear()

    def feed(self, data: bytes) -> Iterable[Sample]:
        out: list[Sample] = []
        for item in self._parser.feed(data):
            if isinstance(item, ProtocolError):
                self.record_error(item.reason, item)
            else:
                out += self.samples(item)
        return out

    def samples(self, telegram: dsmr.Telegram) -> list[Sample]:
        """The validated samples of one telegram (rate-limited to one per ``interval``)."""
        now = self.ctx.clock.monotonic()
        if self._last_publish is not None and now - self._last_publish < self.spec.interval:
            return []
        self._last_publish = now
        out: list[Sample] = []
        for m in telegram.select(self._selection):
            if isinstance(m.value, str):
                if self._texts.get(m.name) != m.value:
                    self._texts[m.name] = m.value
                    out.append(Sample(m.name, m.value, None, time=m.time))
                continue
            s = meter_sample(self, self._guard, f"{m.obis} {m.name}", m.name, m.value, m.unit,
                             m.time)
            if s is not None:
                out.append(s)
        return out


def build(spec: SensorSpec, options: DsmrOptions, ctx: SensorContext) -> Sensor:
    return DsmrSensor(spec, ctx, options)
