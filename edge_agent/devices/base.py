"""What every sensor driver is: a thing that runs in its own thread and emits Readings.

Drivers own their hardware (a port, a bus, a pin), which they get from ``ctx.hw`` (the
hardware backend, real or emulated, chosen once for the agent: hal.backend), and feed bytes
to sans-I/O protocol parsers. Two helpers cover most devices:

- ``PollingSensor``: open(), then every ``interval`` seconds sample() -> Samples.
- ``StreamSensor``: open() a ByteStream, read chunks, feed them to a parser -> Samples.

Both handle failure the same way: a HardwareError or ProtocolError is counted per reason,
logged once per burst (no log flood), the device is closed and reopened with exponential
backoff and jitter. A failing sensor never stops the others and never invents a value.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.core.backoff import Backoff as Backoff  # drivers import it from here
from edge_agent.core.clock import Clock
from edge_agent.core.errors import HardwareError, ProtocolError, ValueOutOfRangeError
from edge_agent.core.model import Channel, Priority, Reading, Value
from edge_agent.hal.interfaces import ByteStream, Hardware
from edge_agent.protocols.obis import plausible
from edge_agent.security import redact

Emit = Callable[[list[Reading]], None]
"""Hand readings to the pipeline. May block briefly when the bounded ingest queue is full."""


@dataclass(frozen=True)
class Sample:
    """A validated value from a device, before it is bound to a sensor and channel."""

    name: str
    value: Value
    unit: str | None = None
    priority: Priority | None = None  # None = the sensor's configured priority
    time: float | None = None  # None = now; set when the device timestamps (M-Bus, DSMR)


@dataclass(frozen=True)
class SensorSpec:
    """The common part of a sensor entry in the site config."""

    id: str
    type: str
    channel: Channel
    priority: Priority
    interval: float  # seconds between polls (polling sensors)


@dataclass
class SensorContext:
    """What the runtime gives a driver factory.

    ``hw`` is the hardware as this sensor sees it (``SensorType.build`` binds the backend to
    the sensor's device): ``ctx.hw.i2c(bus)``, ``ctx.hw.serial(port, baudrate)``,
    ``ctx.hw.pin_factory()``, ``ctx.hw.wait(seconds)``.
    """

    hw: Hardware
    clock: Clock
    log: logging.Logger
    state_dir: Path | None = None  # where drivers may keep state (created by the driver)


@dataclass
class SensorStats:
    readings: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None  # on the IT channel: without values (edge_agent.security.redact)
    last_value_time: float | None = None
    last_error_kind: str | None = None  # the reason of last_error (a fault kind, no value)


class Sensor(abc.ABC):
    """A configured sensor. ``run`` is called once, in a thread the runtime owns."""

    def __init__(self, spec: SensorSpec, ctx: SensorContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.stats = SensorStats()
        self.log = ctx.log.getChild(spec.id)
        self._failing = False

    @property
    def id(self) -> str:
        return self.spec.id

    @abc.abstractmethod
    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Produce readings until ``stop`` is set. Must return promptly after ``stop``."""

    # -- helpers for subclasses ---------------------------------------------------------

    def readings(self, samples: Iterable[Sample]) -> list[Reading]:
        now = self.ctx.clock.time()
        out = [
            Reading(
                sensor=self.spec.id,
                channel=self.spec.channel,
                priority=s.priority if s.priority is not None else self.spec.priority,
                name=s.name,
                value=s.value,
                time=s.time if s.time is not None else now,
                unit=s.unit,
            )
            for s in samples
        ]
        if out:
            self.stats.readings += len(out)
            self.stats.last_value_time = now
        return out

    def plausible_sample(self, what: str, name: str, value: float | int, unit: str | None,
                         time: float | None = None) -> Sample | None:
        """A meter value as a Sample, or None, counted as ``range``, if it is implausible for
        its unit (NaN and infinities never are). ``what`` names it in the error."""
        if not plausible(value, unit):
            self.record_error("range", ValueOutOfRangeError(
                f"{what} = {value} {unit or ''} is not plausible"))
            return None
        return Sample(name, value, unit, time=time)

    def record_error(self, reason: str, exc: BaseException) -> None:
        """Count an error; log only the first of a burst (until the next success).

        On the IT channel the text keeps no value (a rejected heart rate is a health value):
        neither the stats (status file, health message) nor the log see one."""
        self.stats.errors[reason] += 1
        detail = redact.error_text(self.spec.channel, str(exc))
        self.stats.last_error = f"{reason}: {detail}"
        self.stats.last_error_kind = reason
        if not self._failing:
            self.log.warning("%s: %s (further errors suppressed until it recovers)", reason,
                             detail)
            self._failing = True

    def record_success(self) -> None:
        if self._failing:
            self.log.info("recovered")
            self._failing = False


def error_reason(exc: BaseException) -> str:
    if isinstance(exc, ProtocolError):
        return exc.reason
    return type(exc).__name__


class PollingSensor(Sensor):
    """open() once, then sample() every ``spec.interval`` seconds."""

    def open(self) -> None:
        """Acquire the device. Raise HardwareError if it is absent."""

    def close(self) -> None:
        """Release the device. Must not raise."""

    @abc.abstractmethod
    def sample(self) -> Iterable[Sample]:
        """Read the device once; raise HardwareError/ProtocolError on failure."""

    def run(self, emit: Emit, stop: threading.Event) -> None:
        backoff = Backoff()
        opened = False
        while not stop.is_set():
            try:
                if not opened:
                    self.open()
                    opened = True
                batch = self.readings(self.sample())
            except (HardwareError, ProtocolError, OSError) as exc:
                self.record_error(error_reason(exc), exc)
                if opened:
                    self.close()
                    opened = False
                stop.wait(backoff.next_delay())
                continue
            backoff.reset()
            self.record_success()
            if batch:
                emit(batch)
            stop.wait(self.spec.interval)
        if opened:
            self.close()


class StreamSensor(Sensor):
    """A device that pushes bytes (DSMR P1, DLMS push, radars): read, feed, emit."""

    read_size = 256

    @abc.abstractmethod
    def open_stream(self) -> ByteStream:
        """Open the port (pyserial ``serial_for_url``), configured with a short read timeout."""

    @abc.abstractmethod
    def feed(self, data: bytes) -> Iterable[Sample]:
        """Feed bytes to the protocol parser; return the samples of complete frames.

        Raise ProtocolError for a rejected frame; the parser must already have skipped it,
        so the next call continues with the bytes after it.
        """

    def on_open(self, stream: ByteStream) -> None:
        """Called after the port opened (send a wake-up or request, reset the parser)."""

    def run(self, emit: Emit, stop: threading.Event) -> None:
        backoff = Backoff()
        stream: ByteStream | None = None
        while not stop.is_set():
            try:
                if stream is None:
                    stream = self.open_stream()
                    self.on_open(stream)
                data = stream.read(self.read_size)
            except (HardwareError, OSError) as exc:
                self.record_error(error_reason(exc), exc)
                if stream is not None:
                    _close_quietly(stream)
                    stream = None
                stop.wait(backoff.next_delay())
                continue
            if not data:
                continue
            try:
                batch = self.readings(self.feed(data))
            except ProtocolError as exc:
                self.record_error(exc.reason, exc)
                continue
            if batch:
                backoff.reset()
                self.record_success()
                emit(batch)
        if stream is not None:
            _close_quietly(stream)


def _close_quietly(stream: Any) -> None:
    with contextlib.suppress(Exception):
        stream.close()
