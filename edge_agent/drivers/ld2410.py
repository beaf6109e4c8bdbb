"""HLK-LD2410 presence radar on a UART (256000 8N1): presence, target state, distance.

Readings (rate-limited: at once when the target state changes, otherwise at most every
``report_interval`` seconds): ``presence`` (bool), ``target_state`` ("none", "moving",
"stationary", "both") and ``distance`` (m, only while a target is reported at a non-zero
distance). A port that goes silent for ``silence_timeout`` seconds is reopened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from edge_agent.core.errors import ProtocolError, ValueOutOfRangeError
from edge_agent.core.model import Channel, Priority
from edge_agent.drivers.base import Emit, Sample, Sensor, SensorContext, SensorSpec, StreamSensor
from edge_agent.drivers.registry_types import SensorType
from edge_agent.drivers.serial_port import SilenceWatchdog, emulator_running, open_serial
from edge_agent.emulators.ld2410 import LD2410Device, LD2410Emulate
from edge_agent.hal.interfaces import ByteStream
from edge_agent.protocols import ld2410
from edge_agent.protocols.ld2410 import Report, TargetState

MAX_DISTANCE_CM = 800  # 9 gates of 0.75 m, with margin
MAX_ENERGY = 100


@dataclass(frozen=True)
class LD2410Options:
    port: str = "/dev/serial0"
    baudrate: int = 256000
    report_interval: float = 5.0
    silence_timeout: float = 5.0  # the radar reports about 10 times a second
    engineering: bool = False  # switch the radar to engineering reports (gate energies)
    emulate: LD2410Emulate = field(default_factory=LD2410Emulate)

    def __post_init__(self) -> None:
        if self.baudrate <= 0:
            raise ValueError("baudrate must be > 0")
        if self.report_interval < 0:
            raise ValueError("report_interval must be >= 0")
        if self.silence_timeout <= 0:
            raise ValueError("silence_timeout must be > 0")


def target_distance(report: Report) -> int:
    """The distance (cm) of the reported target, 0 if there is none."""
    if report.state is TargetState.MOVING:
        return report.moving_distance
    if report.state is TargetState.STATIONARY:
        return report.stationary_distance
    if report.state is TargetState.BOTH:
        if report.detection_distance:
            return report.detection_distance
        both = [d for d in (report.moving_distance, report.stationary_distance) if d]
        return min(both, default=0)
    return 0


class LD2410Sensor(StreamSensor):
    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: LD2410Options,
                 port: Callable[[], str], device: LD2410Device | None = None) -> None:
        super().__init__(spec, ctx)
        self.options = options
        self._port = port
        self.emulator = device
        self._parser = ld2410.Parser()
        self._last_state: TargetState | None = None
        self._last_emit: float | None = None
        self.firmware: str | None = None

    def run(self, emit: Emit, stop: threading.Event) -> None:
        with emulator_running(self.emulator):
            super().run(emit, stop)

    def open_stream(self) -> ByteStream:
        stream = open_serial(self._port(), self.options.baudrate, timeout=0.05)
        return SilenceWatchdog(stream, self.ctx.clock, self.options.silence_timeout)

    def on_open(self, stream: ByteStream) -> None:
        self._parser = ld2410.Parser()
        self._last_state = None  # a reopened radar reports its state again at once
        stream.write(ld2410.enable_config() + ld2410.read_firmware()
                     + ld2410.engineering_mode(self.options.engineering) + ld2410.end_config())

    def feed(self, data: bytes) -> Iterable[Sample]:
        out: list[Sample] = []
        for item in self._parser.feed(data):
            if isinstance(item, ProtocolError):
                self.record_error(item.reason, item)
            elif isinstance(item, Report):
                out += self._report(item)
            else:
                self._ack(item)
        return out

    def _ack(self, frame: ld2410.CommandFrame) -> None:
        if not frame.is_ack:
            return
        if frame.status:
            self.log.warning("radar refused %s (status %d)", frame.name, frame.status)
        version = frame.firmware_version()
        if version is not None and version != self.firmware:
            self.firmware = version
            self.log.info("LD2410 firmware %s", version)

    def _report(self, report: Report) -> list[Sample]:
        energies = (report.moving_energy, report.stationary_energy,
                    *report.moving_gate_energy, *report.stationary_gate_energy)
        distance = target_distance(report)
        if max(energies) > MAX_ENERGY or distance > MAX_DISTANCE_CM:
            self.record_error("range", ValueOutOfRangeError(
                f"energy {max(energies)} or distance {distance} cm outside the radar's range"))
            return []
        now = self.ctx.clock.monotonic()
        changed = report.state is not self._last_state
        if not changed and self._last_emit is not None \
                and now - self._last_emit < self.options.report_interval:
            return []
        self._last_state, self._last_emit = report.state, now
        out = [Sample("presence", report.state is not TargetState.NONE),
               Sample("target_state", report.state.label)]
        if distance:
            out.append(Sample("distance", distance / 100, "m"))
        return out


def build(spec: SensorSpec, options: LD2410Options, ctx: SensorContext) -> Sensor:
    if ctx.hardware == "emulated":
        device = LD2410Device(options.emulate)
        return LD2410Sensor(spec, ctx, options, lambda: device.path, device)
    return LD2410Sensor(spec, ctx, options, lambda: options.port)


TYPES = (
    SensorType(
        name="ld2410",
        summary="HLK-LD2410 24 GHz presence radar (UART): presence, target state, distance",
        options=LD2410Options,
        build=build,
        default_channel=Channel.IT,
        default_priority=Priority.NORMAL,
        default_interval=5.0,
    ),
)
