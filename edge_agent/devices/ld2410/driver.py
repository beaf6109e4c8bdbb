"""HLK-LD2410 presence radar on a UART (256000 8N1): presence, target state, distance.

Readings (rate-limited: at once when the target state changes, otherwise at most every
``report_interval`` seconds): ``presence`` (bool), ``target_state`` ("none", "moving",
"stationary", "both") and ``distance`` (m, only while a target is reported at a non-zero
distance). A port that goes silent for ``silence_timeout`` seconds is reopened.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge_agent.core.errors import ProtocolError, ValueOutOfRangeError
from edge_agent.devices.base import Sample, Sensor, SensorContext, SensorSpec, StreamSensor
from edge_agent.devices.ld2410.options import LD2410Options
from edge_agent.devices.serial_sensor import SilenceWatchdog
from edge_agent.hal.interfaces import ByteStream
from edge_agent.protocols import ld2410
from edge_agent.protocols.ld2410 import Report, TargetState

MAX_DISTANCE_CM = 800  # 9 gates of 0.75 m, with margin
MAX_ENERGY = 100


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
    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: LD2410Options) -> None:
        super().__init__(spec, ctx)
        self.options = options
        self._parser = ld2410.Parser()
        self._last_state: TargetState | None = None
        self._last_emit: float | None = None
        self.firmware: str | None = None


    def open_stream(self) -> ByteStream:
        stream = self.ctx.hw.serial(self.options.port, self.options.baudrate, timeout=0.05)
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
    return LD2410Sensor(spec, ctx, options)
