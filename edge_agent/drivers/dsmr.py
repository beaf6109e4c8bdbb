"""``dsmr-p1``: a DSMR / ESMR / Fluvius smart meter's P1 port (push telegrams).

DSMR 4/5 (and ESMR 5, Fluvius): 115200 8N1 with CRC; DSMR 2.2/3: 9600 7E1, no CRC. Every
known OBIS quantity becomes a reading (``obis`` selects a subset), scaled to SenML units
(Wh, W, V, A, m3, J), timed by the meter's own timestamps. Text values (equipment id,
version) are published when they change. At most one telegram per ``interval`` seconds is
published (0 = every telegram). A port silent for ``silence_timeout`` seconds is reopened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from edge_agent.core.errors import ProtocolError
from edge_agent.core.model import Channel, Priority
from edge_agent.drivers.base import Emit, Sample, Sensor, SensorContext, SensorSpec, StreamSensor
from edge_agent.drivers.registry_types import SensorType
from edge_agent.drivers.serial_port import (
    SilenceWatchdog,
    check_framing,
    emulator_running,
    open_serial,
)
from edge_agent.emulators.dsmr import DsmrEmulation, DsmrEmulator
from edge_agent.hal.interfaces import ByteStream
from edge_agent.protocols import dsmr
from edge_agent.protocols.obis import selection as obis_selection


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
class DsmrOptions:
    port: str = "/dev/ttyUSB0"
    version: DsmrVersion = DsmrVersion("5")
    baudrate: int | None = None  # default: 115200 (DSMR 4/5), 9600 (2.2/3)
    framing: str | None = None  # default: 8N1 (DSMR 4/5), 7E1 (2.2/3)
    obis: list[str] = field(default_factory=list)  # empty = every known quantity
    silence_timeout: float = 30.0  # reopen the port after this long without data
    emulate: DsmrEmulation = field(default_factory=DsmrEmulation)

    def __post_init__(self) -> None:
        DsmrVersion.__config_parse__(self.version)
        obis_selection(self.obis)
        if self.baudrate is not None and self.baudrate <= 0:
            raise ValueError("baudrate must be > 0")
        if self.framing is not None:
            check_framing(self.framing)
        if self.silence_timeout <= 0:
            raise ValueError("silence_timeout must be > 0")

    @property
    def line(self) -> tuple[int, str]:
        modern = DsmrVersion(self.version).modern
        return (self.baudrate or (115200 if modern else 9600),
                self.framing or ("8N1" if modern else "7E1"))


class DsmrSensor(StreamSensor):
    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: DsmrOptions,
                 port: Callable[[], str], device: DsmrEmulator | None = None) -> None:
        super().__init__(spec, ctx)
        self.options = options
        self.emulator = device
        self._port = port
        self._selection = obis_selection(options.obis)
        self._require_crc = DsmrVersion(options.version).modern
        self._parser = dsmr.Parser(require_crc=self._require_crc)
        self._texts: dict[str, str] = {}
        self._last_publish: float | None = None

    def run(self, emit: Emit, stop: threading.Event) -> None:
        with emulator_running(self.emulator):
            super().run(emit, stop)

    def open_stream(self) -> ByteStream:
        baudrate, framing = self.options.line
        stream = open_serial(self._port(), baudrate, framing=framing)
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
            s = self.plausible_sample(f"{m.obis} {m.name}", m.name, m.value, m.unit, m.time)
            if s is not None:
                out.append(s)
        return out


def build(spec: SensorSpec, options: DsmrOptions, ctx: SensorContext) -> Sensor:
    if ctx.hardware == "emulated":
        device = DsmrEmulator(options.emulate, version=str(options.version))
        return DsmrSensor(spec, ctx, options, lambda: device.path, device)
    return DsmrSensor(spec, ctx, options, lambda: options.port)


TYPES = (
    SensorType(
        name="dsmr-p1",
        summary="DSMR 2.2-5 / ESMR 5 / Fluvius smart meter P1 port: energy, power, "
                "voltage, current, tariff, M-Bus gas/water/heat",
        options=DsmrOptions,
        build=build,
        default_channel=Channel.OT,
        default_priority=Priority.NORMAL,
        default_interval=10.0,
    ),
)
