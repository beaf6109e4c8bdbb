"""The ``welfare:`` block: rules for a resident living alone, and their cross-checks.

    welfare:
      - subject: resident-1
        activity: [pir-hall, door-front, radar-bed, pendant]
        meter: { sensor: meter-main, step_watts: 150 }
        inactivity: { caution: 8h, alarm: 12h, danger: 24h }
        fall: { confirm: 60s }
        away: { door: door-front, overdue: 12h }
        climate: { sensor: climate-living, heat: 33, cold: 10, for: 30m }
        corroborate: { within: 15m, quiet: 3h, follow: 90m }  # optional (these defaults)

Which sensor types can give which evidence is a table here (``ACTIVITY_TYPES`` and
friends) so the validator and the rules (``edge_agent.welfare``) read the same facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge_agent.config.types import Duration, Token
from edge_agent.config.validate import Validator
from edge_agent.config.yamlsrc import Map, Node, Scalar, Seq, node_at
from edge_agent.core.model import Channel

if TYPE_CHECKING:
    from edge_agent.config.schema import SensorConfig

# Sensor type -> the readings that show a living person moving (see edge_agent.welfare.evidence)
ACTIVITY_TYPES: dict[str, str] = {
    "pir": "motion",
    "door": "open (a change)",
    "button": "pressed, held",
    "ld2410": "target_state moving",
    "mr60fda1": "motion moving, body_movement",
    "mr60bha1": "motion moving, body_movement",
    "mpu6050": "activity above rest",
    "adxl345": "activity above rest",
}
FALL_TYPES = frozenset({"mr60fda1", "mpu6050", "adxl345"})  # report ``fall``
ACCEL_TYPES = frozenset({"mpu6050", "adxl345"})  # activity = a mean over activity_seconds
POWER_TYPES = frozenset({"dsmr-p1", "iec62056-21", "modbus-rtu", "dlms-hdlc"})  # household W
CLIMATE_TYPES = frozenset({"sht31", "bme280"})  # report ``temperature`` (Cel)


@dataclass(frozen=True)
class MeterRule:
    """An appliance switched on (a step in household power) counts as activity."""

    # id of the power meter sensor
    sensor: Token
    # a rise in power at least this big counts as activity (at least 20)
    step_watts: float = 150.0
    reading: str | None = None  # default: power_import (DSMR, DLMS, IEC) or power (Modbus)

    def __post_init__(self) -> None:
        if self.step_watts < 20:
            raise ValueError("step_watts must be at least 20 (below that is meter noise)")


@dataclass(frozen=True)
class InactivityRule:
    # no activity this long: caution event
    caution: Duration = Duration(8 * 3600)
    # no activity this long: alarm (longer than caution)
    alarm: Duration = Duration(12 * 3600)
    # no activity this long: danger (longer than alarm)
    danger: Duration = Duration(24 * 3600)

    def __post_init__(self) -> None:
        if self.caution <= 0:
            raise ValueError("caution must be above 0")
        if self.alarm <= self.caution:
            raise ValueError(f"alarm must be longer than caution (levels are ordered caution "
                             f"< alarm < danger; got {self.caution:g}s, {self.alarm:g}s)")
        if self.danger <= self.alarm:
            raise ValueError(f"danger must be longer than alarm (levels are ordered caution "
                             f"< alarm < danger; got {self.alarm:g}s, {self.danger:g}s)")


@dataclass(frozen=True)
class CorroborateRule:
    """When readings count as activity. Two pieces of evidence within ``within`` count (from
    two sensors, or from one sensor a minute apart; a button press counts alone). After
    ``quiet`` without activity a pair counts only when another piece follows it within
    ``follow``: a person who gets up keeps moving, two noise readings that coincide stay
    alone."""

    # two pieces of evidence within this count as activity (1m .. 1h)
    within: Duration = Duration(15 * 60)
    # after this long without activity a pair alone no longer counts (at least within)
    quiet: Duration = Duration(3 * 3600)
    # ... it needs another piece after it within this (from within .. 4h)
    follow: Duration = Duration(90 * 60)

    def __post_init__(self) -> None:
        if not 60 <= self.within <= 3600:
            raise ValueError("within must be between 1m and 1h")
        if self.quiet < self.within:
            raise ValueError(f"quiet must be at least within ({self.within:g}s)")
        if not self.within <= self.follow <= 4 * 3600:
            raise ValueError(f"follow must be between within ({self.within:g}s) and 4h")


@dataclass(frozen=True)
class FallRule:
    # a fall with no activity after it for this long is confirmed (10s .. 1h)
    confirm: Duration = Duration(60)

    def __post_init__(self) -> None:
        if not 10 <= self.confirm <= 3600:
            raise ValueError("confirm must be between 10s and 1h")


@dataclass(frozen=True)
class AwayRule:
    # id of the front door contact sensor
    door: Token
    # away this long: away-overdue event
    overdue: Duration = Duration(12 * 3600)
    settle: Duration = Duration(15 * 60)  # no sign of anyone home this long after the door: away

    def __post_init__(self) -> None:
        if not 60 <= self.settle < self.overdue:
            raise ValueError("settle must be at least 1m and shorter than overdue")


@dataclass(frozen=True)
class ClimateRule:
    """Room temperature outside [cold, heat] for ``for`` (YAML key ``for``) -> alarm."""

    # id of the room climate sensor (sht31, bme280)
    sensor: Token
    # alarm above this temperature (Cel; null: no heat alarm)
    heat: float | None = 33.0
    # alarm below this temperature (Cel; null: no cold alarm)
    cold: float | None = 10.0
    # how long the temperature stays out of range before the alarm (YAML key for)
    for_: Duration = Duration(30 * 60)

    def __post_init__(self) -> None:
        if self.heat is None and self.cold is None:
            raise ValueError("heat and cold cannot both be null")
        if self.heat is not None and self.cold is not None and self.cold + 2 > self.heat:
            raise ValueError("cold must be at least 2 degrees below heat")
        if self.for_ <= 0:
            raise ValueError("for must be above 0")


@dataclass(frozen=True)
class WelfareSubject:
    subject: str  # resident identifier: published only as its keyed pseudonym
    # ids of the sensors whose readings count as activity (PIR, door, ...)
    activity: list[Token]
    # household power as activity
    meter: MeterRule | None = None
    # inactivity thresholds
    inactivity: InactivityRule = field(default_factory=InactivityRule)
    # fall confirmation
    fall: FallRule = field(default_factory=FallRule)
    # away from home too long
    away: AwayRule | None = None
    # heat-wave and cold risk
    climate: ClimateRule | None = None
    # when readings count as activity (a pair; after a long quiet, a pair and one more)
    corroborate: CorroborateRule = field(default_factory=CorroborateRule)

    def sensors(self) -> set[str]:
        """Every sensor id these rules read."""
        out: set[str] = set(self.activity)
        for extra in (self.meter, self.climate):
            if extra is not None:
                out.add(extra.sensor)
        if self.away is not None:
            out.add(self.away.door)
        return out


def build_welfare(v: Validator, node: Node | None,
                  sensors: Sequence[SensorConfig]) -> list[WelfareSubject]:
    """Validate the ``welfare`` list against the sensors; problems go to ``v``."""
    if node is None or (isinstance(node, Scalar) and node.value is None):
        return []
    if not isinstance(node, Seq):
        if not (isinstance(node, Scalar) and node.bad):
            v.problem(node, "welfare", "expected a list of residents (subject, activity, ...)")
        return []
    by_id = {s.id: s for s in sensors}
    out: list[WelfareSubject] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(node.items):
        path = f"welfare[{i}]"
        rules = _subject(v, item, path)
        if rules is None or not isinstance(item, Map):
            continue
        if rules.subject in seen:
            v.problem(node_at(item, "subject"), f"{path}.subject",
                      f"subject {rules.subject!r} already has rules (line {seen[rules.subject]})")
            continue
        seen[rules.subject] = item.line
        if _cross_check(v, item, path, rules, by_id):
            out.append(rules)
    return out


def _subject(v: Validator, item: Node, path: str) -> WelfareSubject | None:
    """The dataclass, with the ``for`` key (a Python keyword) read as ``for_``."""
    if isinstance(item, Map):
        climate = item.get("climate")
        if isinstance(climate, Map):
            renamed = Map(climate.line, [("for_" if k == "for" else k, ln, n)
                                         for k, ln, n in climate.items])
            item = Map(item.line, [(k, ln, renamed if n is climate else n)
                                   for k, ln, n in item.items])
    mark = len(v.problems)
    rules: WelfareSubject | None = v.dataclass_from(WelfareSubject, item, path)
    for p in v.problems[mark:]:
        p.path = p.path.replace(".for_", ".for")
        p.message = p.message.replace("'for_'", "'for'").replace("for_", "for")
    return rules


def _cross_check(v: Validator, item: Map, path: str, rules: WelfareSubject,
                 by_id: dict[str, SensorConfig]) -> bool:
    mark = len(v.problems)

    def sensor(sid: str, keys: tuple[str | int, ...], types: frozenset[str] | set[str],
               what: str) -> SensorConfig | None:
        where = path + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys)
        s = by_id.get(sid)
        if s is None:
            import difflib

            close = difflib.get_close_matches(sid, list(by_id), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            v.problem(node_at(item, *keys), where, f"no sensor {sid!r} under sensors{hint}")
            return None
        if s.type not in types:
            v.problem(node_at(item, *keys), where,
                      f"sensor {sid!r} is a {s.type}, which gives no {what} "
                      f"(types that do: {', '.join(sorted(types))})")
            return None
        return s

    if not rules.activity:
        v.problem(node_at(item, "activity"), f"{path}.activity", "name at least one sensor")
    for j, sid in enumerate(rules.activity):
        s = sensor(sid, ("activity", j), set(ACTIVITY_TYPES), "activity evidence")
        if s is not None and s.channel is not Channel.IT:
            v.problem(node_at(item, "activity", j), f"{path}.activity[{j}]",
                      f"sensor {sid!r} is on channel {s.channel.value}: activity is welfare "
                      "data and must be on the it channel")
    for j, sid in enumerate(rules.activity):
        s = by_id.get(sid)
        if s is None or s.type not in ACCEL_TYPES:
            continue
        period = getattr(s.options, "activity_seconds", None)
        if period is None:
            v.problem(node_at(item, "activity", j), f"{path}.activity[{j}]",
                      f"sensor {sid!r} has activity_seconds off, so it gives no activity "
                      "evidence (set activity_seconds, e.g. 30)")
        elif rules.fall.confirm <= 2 * period:
            v.problem(node_at(item, "fall", "confirm") if item.get("fall") is not None else item,
                      f"{path}.fall.confirm",
                      f"must be longer than twice the activity_seconds of {sid!r} "
                      f"({float(period):g}s): a recovery after a fall shows only in the "
                      "accelerometer's next mean")
    if rules.meter is not None:
        sensor(rules.meter.sensor, ("meter", "sensor"), POWER_TYPES, "household power")
    if rules.away is not None:
        sensor(rules.away.door, ("away", "door"), frozenset({"door"}), "door events")
        if rules.away.door not in rules.activity:
            v.problem(node_at(item, "away", "door"), f"{path}.away.door",
                      f"{rules.away.door!r} must also be listed under activity")
    if rules.climate is not None:
        sensor(rules.climate.sensor, ("climate", "sensor"), CLIMATE_TYPES, "room temperature")
    if item.get("fall") is not None and not any(
            by_id[s].type in FALL_TYPES for s in rules.activity if s in by_id):
        v.problem(node_at(item, "fall"), f"{path}.fall",
                  f"no sensor under activity reports falls ({', '.join(sorted(FALL_TYPES))})")
    return len(v.problems) == mark
