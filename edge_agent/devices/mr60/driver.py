"""Seeed 60 GHz radars on a UART (115200 8N1): MR60FDA1 (fall) and MR60BHA1 (vitals).

Readings: ``presence`` (bool), ``motion`` ("none"/"stationary"/"moving"), ``body_movement``
(0..100); MR60FDA1: ``fall`` (True once per fall, ALARM priority; False when it clears),
``stationary_residence`` (bool); MR60BHA1: ``heart_rate`` and ``respiration_rate`` (/min),
``breath_state``, ``distance`` (m). States go out when they change and at most every
``report_interval`` seconds otherwise; numbers at most every ``report_interval``.
Waveforms, sleep and direction reports are never published. A rate of 0 means "not
measured" and is skipped; other values outside the physiological range are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge_agent.core.errors import ProtocolError, ValueOutOfRangeError
from edge_agent.core.model import Priority, Value
from edge_agent.devices.base import Sample, Sensor, SensorContext, SensorSpec, StreamSensor
from edge_agent.devices.mr60.options import Model, MR60Options
from edge_agent.devices.serial_sensor import SilenceWatchdog
from edge_agent.hal.interfaces import ByteStream
from edge_agent.protocols import mr60

HEART_RANGE = (30, 220)
RESPIRATION_RANGE = (4, 60)
MAX_DISTANCE_CM = 1000

_STATES = {"presence": "presence", "motion": "motion", "breath_state": "breath_state",
           "residence": "stationary_residence"}
_COMMON = frozenset({"presence", "motion", "body_movement"})
_ACCEPTED: dict[str, frozenset[str]] = {
    "mr60fda1": _COMMON | {"fall", "residence"},
    "mr60bha1": _COMMON | {"heart_rate", "respiration_rate", "breath_state", "distance"},
}


class MR60Sensor(StreamSensor):
    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: MR60Options,
                 model: Model) -> None:
        super().__init__(spec, ctx)
        self.options = options
        self.model = model
        self._parser = mr60.Parser()
        self._accepted = _ACCEPTED[model]
        self._last: dict[str, tuple[Value, float]] = {}
        self._fallen = False
        self.product: str | None = None


    def open_stream(self) -> ByteStream:
        stream = self.ctx.hw.serial(self.options.port, self.options.baudrate, timeout=0.05)
        return SilenceWatchdog(stream, self.ctx.clock, self.options.silence_timeout)

    def on_open(self, stream: ByteStream) -> None:
        self._parser = mr60.Parser()
        self._last.clear()  # report the state again at once after a reconnect
        queries = mr60.encode(mr60.CTRL_PRODUCT, mr60.PRODUCT_MODEL, mr60.QUERY_DATA)
        queries += mr60.query(mr60.CTRL_HUMAN, 0x01)
        if self.model == "mr60fda1":
            queries += mr60.query(mr60.CTRL_FALL, 0x01)
        stream.write(queries)

    def feed(self, data: bytes) -> Iterable[Sample]:
        out: list[Sample] = []
        for item in self._parser.feed(data):
            if isinstance(item, ProtocolError):
                self.record_error(item.reason, item)
            elif item.name == "product_info" and isinstance(item.value, str):
                if item.value != self.product:
                    self.product = item.value
                    self.log.info("radar %s", item.value)
            elif item.name in self._accepted and item.value is not None:
                out += self._report(item.name, item.value)
        return out

    def _report(self, name: str, value: mr60.Value) -> list[Sample]:
        if name == "fall":
            return self._fall(bool(value))
        if name in _STATES and isinstance(value, (bool, str)):
            return self._limited(_STATES[name], value, None, on_change=True)
        if not isinstance(value, int):
            return []
        if name in ("heart_rate", "respiration_rate"):
            low, high = HEART_RANGE if name == "heart_rate" else RESPIRATION_RANGE
            if value == 0:
                return []
            if not low <= value <= high:
                return self._range(f"{name} {value}/min outside {low}..{high}")
            return self._limited(name, value, "/min")
        if name == "distance":
            if value > MAX_DISTANCE_CM:
                return self._range(f"distance {value} cm outside 0..{MAX_DISTANCE_CM}")
            return self._limited(name, value / 100, "m")
        if value > 100:
            return self._range(f"{name} {value} outside 0..100")
        return self._limited(name, value, None)

    def _fall(self, fall: bool) -> list[Sample]:
        if fall == self._fallen:
            return []
        self._fallen = fall
        if fall:
            return [Sample("fall", True, None, Priority.ALARM)]
        return [Sample("fall", False)]

    def _limited(self, name: str, value: Value, unit: str | None,
                 on_change: bool = False) -> list[Sample]:
        now = self.ctx.clock.monotonic()
        last = self._last.get(name)
        if last is not None and not (on_change and last[0] != value) \
                and now - last[1] < self.options.report_interval:
            return []
        self._last[name] = (value, now)
        return [Sample(name, value, unit)]

    def _range(self, message: str) -> list[Sample]:
        self.record_error("range", ValueOutOfRangeError(message))
        return []


def build_mr60fda1(spec: SensorSpec, options: MR60Options, ctx: SensorContext) -> Sensor:
    return MR60Sensor(spec, ctx, options, "mr60fda1")


def build_mr60bha1(spec: SensorSpec, options: MR60Options, ctx: SensorContext) -> Sensor:
    return MR60Sensor(spec, ctx, options, "mr60bha1")
