"""The welfare rules for one resident: readings in, events out, clock = reading time.

    rules = SubjectRules(cfg.welfare[0], {"pir-hall": "pir", ...})
    events = rules.feed(Observation(t, "pir-hall", "motion", True))
    events += rules.tick(now)            # timers also advance without readings
    json_state = rules.state_json()      # survives a restart: SubjectRules(..., state=...)

Pure: no I/O, no threads, no wall clock. Time only moves forward, to the latest synced
reading time or ``tick`` time; a reading older than that still counts as evidence at its
own time. ``next_deadline()`` is the next time a timer may fire, so a replay can tick
exactly there instead of polling.

Rules (constants below are the tuning, documented in hil/welfare/NOTES.md):

- *Activity* is evidence of a living person moving (``evidence.classify``, door changes,
  appliance switch-ons); a radar's movement counts only while it reports presence. One
  reading alone may be noise, so activity counts once it is *corroborated* (the
  ``corroborate:`` block): another piece within ``within`` from a different sensor, or
  from the same sensor at least SAME_SENSOR_APART later (at night only the bed radar sees
  the resident). After ``quiet`` without activity a pair is not enough: another piece
  must follow it within ``follow`` (a person who gets up keeps moving; two noise
  readings that coincide while a collapsed resident lies still stay alone). To resolve a
  raised inactivity or fall level a pair alone must come from two sensors (or the
  button): one sensor's noise does not clear an alarm; a pair followed by another piece
  may come from one sensor. The clock moves to the piece that was
  confirmed (the newest one before the confirming piece), not to the newest one. A
  button press needs no corroboration.
- *Inactivity*: no corroborated activity for ``caution`` / ``alarm`` / ``danger`` raises
  that level once (``since`` = last activity); activity resolves every raised level.
  Suspended while the resident is away.
- *Fall*: a ``fall`` from an activity sensor that reports falls; any activity after
  FALL_SETTLE and within ``confirm`` is a recovery (a normal reading, no event). The first
  accelerometer ``activity`` after a fall is skipped: it averages in the impact. Otherwise
  ``fall``/``alarm`` at fall + confirm; resolved by corroborated activity.
- *Away*: a change of the ``away.door`` followed by no sign of anyone home (corroborated
  activity from another sensor, or radar presence held PRESENCE_HELD) between DOOR_GRACE
  and ``settle`` after the last door change means away since the first door change.
  Any sign of someone home ends it. Away for ``overdue`` -> ``away_overdue``/``caution``.
- *Climate*: temperature at or above ``heat`` (at or below ``cold``) in every reading for
  ``for`` (counted from the crossing, interpolated between the last two readings)
  -> ``climate``/``alarm``; resolved when back inside by CLIMATE_HYSTERESIS. A
  sensor silent for CLIMATE_STALE stops the count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

from edge_agent.config.welfare import FALL_TYPES, WelfareSubject
from edge_agent.core.errors import EdgeAgentError
from edge_agent.core.model import CLOCK_FLOOR
from edge_agent.welfare.events import LEVELS, Kind, Level, Observation, WelfareEvent
from edge_agent.welfare.evidence import PowerSteps, Sense, classify, power_value

SAME_SENSOR_APART = 60.0
SAME_SENSOR_PIECES = 2  # pieces one sensor needs in the window to corroborate itself
PRESENCE_RECENT = 300.0  # a radar's movement counts this long after it last saw presence
RECENT_MAX = 64
FALL_SETTLE = 10.0
DOOR_GRACE = 60.0
PRESENCE_HELD = 60.0
CLIMATE_STALE = 15 * 60.0
CLIMATE_HYSTERESIS = 0.5

_ACCEL = frozenset({"mpu6050", "adxl345"})
_RADAR = frozenset({"mr60fda1", "mr60bha1"})  # report movement and presence separately
STATE_VERSION = 1


class WelfareStateError(EdgeAgentError, ValueError):
    """Saved welfare state cannot be read (corrupt, or from an incompatible version)."""


class SubjectState(msgspec.Struct):
    """Everything the rules remember; JSON round-trips it. New fields get defaults."""

    version: int = STATE_VERSION
    now: float | None = None  # the rules' clock: latest synced reading or tick time
    last_activity: float | None = None  # latest corroborated activity (or return home)
    seen: dict[str, float] = msgspec.field(default_factory=dict)  # raw evidence per signal
    recent: list[tuple[float, str]] = msgspec.field(default_factory=list)  # for corroboration
    raised: dict[str, float] = msgspec.field(default_factory=dict)  # "kind/level" -> since
    fall_at: float | None = None  # a fall waiting for its confirmation
    fall_skip: list[str] = msgspec.field(default_factory=list)
    doors: dict[str, bool] = msgspec.field(default_factory=dict)
    door_at: float | None = None  # last change of the away door
    depart_at: float | None = None  # first door change of a possible departure
    away_since: float | None = None
    presence_since: dict[str, float] = msgspec.field(default_factory=dict)
    presence_last: dict[str, float] = msgspec.field(default_factory=dict)
    temp: float | None = None
    temp_t: float | None = None
    heat_since: float | None = None
    cold_since: float | None = None
    power: PowerSteps = msgspec.field(default_factory=PowerSteps)
    unsynced: int = 0  # readings ignored because their clock was not set
    falls_recovered: int = 0


def _crossing(prev: float | None, prev_t: float | None, value: float, t: float,
              limit: float | None) -> float:
    """When the temperature crossed ``limit``: between the last reading and this one,
    interpolated (the sensor reads every few minutes), or now if there is no last one."""
    if prev is None or prev_t is None or limit is None or prev == value:
        return t
    f = (limit - prev) / (value - prev)
    return prev_t + (t - prev_t) * f if 0 <= f <= 1 else t


def _key(kind: Kind, level: Level) -> str:
    return f"{kind}/{level}"


_OVERDUE = "away_overdue/caution"
_CLIMATE = "climate/alarm"
_FALL = "fall/alarm"


class SubjectRules:
    def __init__(self, rules: WelfareSubject, sensor_types: Mapping[str, str],
                 state: SubjectState | None = None) -> None:
        self.rules = rules
        # plain str: config ids are Token (a str subclass) and the state is JSON
        self.types = {str(sid): str(sensor_types[sid]) for sid in rules.sensors()
                      if sid in sensor_types}
        self.s = state if state is not None else SubjectState()
        self._door = str(rules.away.door) if rules.away is not None else None
        self._meter = str(rules.meter.sensor) if rules.meter is not None else None
        self._climate = str(rules.climate.sensor) if rules.climate is not None else None
        self._activity = frozenset(str(a) for a in rules.activity)
        self._limits = [(lv, float(getattr(rules.inactivity, lv))) for lv in LEVELS]
        self._inactivity = [(_key("inactivity", lv), lim) for lv, lim in self._limits]
        self._confirm = float(rules.fall.confirm)
        self._settle = float(rules.away.settle) if rules.away is not None else 0.0
        self._overdue = float(rules.away.overdue) if rules.away is not None else 0.0
        self._for = float(rules.climate.for_) if rules.climate is not None else 0.0
        self._within = float(rules.corroborate.within)
        self._quiet = float(rules.corroborate.quiet)
        self._follow = float(rules.corroborate.follow)
        self._span = self._within + self._follow  # how long pieces are remembered

    # -- state ------------------------------------------------------------------------------

    def state_json(self) -> bytes:
        return msgspec.json.encode(self.s)

    @staticmethod
    def load_state(data: bytes | str | object) -> SubjectState:
        """A SubjectState from JSON bytes/str or already-decoded builtins."""
        try:
            if isinstance(data, bytes | str):
                st = msgspec.json.decode(data, type=SubjectState)
            else:
                st = msgspec.convert(data, SubjectState)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise WelfareStateError(f"welfare state unreadable: {exc}") from None
        if st.version != STATE_VERSION:
            raise WelfareStateError(f"welfare state version {st.version} "
                                    f"(this build reads {STATE_VERSION})")
        return st

    # -- inputs -----------------------------------------------------------------------------

    def feed(self, obs: Observation) -> list[WelfareEvent]:
        """Apply one reading; returns the events it (or the time it brings) caused."""
        if obs.sensor not in self.types:
            return []
        if type(obs.sensor) is not str:  # e.g. a config Token: the state holds plain JSON
            obs = msgspec.structs.replace(obs, sensor=str(obs.sensor))
        t = obs.t
        if not obs.synced or not math.isfinite(t) or t < CLOCK_FLOOR:
            self.s.unsynced += 1  # counted; neither evidence nor a clock
            return []
        out = self._advance(t)
        self._apply(obs, out)
        return out

    def tick(self, now: float) -> list[WelfareEvent]:
        """Let timers fire up to ``now`` (a synced clock; an unset one is ignored)."""
        if not math.isfinite(now) or now < CLOCK_FLOOR:
            return []
        return self._advance(now)

    def next_deadline(self) -> float | None:
        """The earliest time a timer may fire (never before the rules' clock), or None.
        Called once per reading by a replay, so it is kept cheap."""
        s, r = self.s, self.rules
        raised = s.raised
        best = math.inf
        if s.fall_at is not None:
            best = s.fall_at + self._confirm
        away = r.away
        if away is not None:
            if s.away_since is None:
                if s.depart_at is not None and s.door_at is not None:
                    best = min(best, s.door_at + self._settle)
            elif _OVERDUE not in raised:
                best = min(best, s.away_since + self._overdue)
        if s.away_since is None and s.last_activity is not None:
            for key, lim in self._inactivity:  # ascending: the first one not raised
                if key not in raised:
                    best = min(best, s.last_activity + lim)
                    break
        if s.temp_t is not None and _CLIMATE not in raised:
            for since in (s.heat_since, s.cold_since):
                if since is not None:
                    best = min(best, since + self._for, s.temp_t + CLIMATE_STALE)
        if best == math.inf:
            return None
        return best if s.now is None or best > s.now else s.now

    # -- timers -----------------------------------------------------------------------------

    def _advance(self, now: float) -> list[WelfareEvent]:
        s = self.s
        out: list[WelfareEvent] = []
        if s.now is None:
            s.now = now
        if s.last_activity is None:
            s.last_activity = now  # a new resident's clock starts at the first reading
        if now < s.now:
            return out
        s.now = now
        r = self.rules
        if s.fall_at is not None and now >= s.fall_at + r.fall.confirm:
            self._raise(out, "fall", "alarm", s.fall_at)
            s.fall_at, s.fall_skip = None, []
        if r.away is not None:
            if s.away_since is None and s.depart_at is not None and s.door_at is not None \
                    and now >= s.door_at + r.away.settle:
                s.away_since, s.depart_at = s.depart_at, None
            if s.away_since is not None and now >= s.away_since + r.away.overdue:
                self._raise(out, "away_overdue", "caution", s.away_since)
        if s.away_since is None:
            idle = now - s.last_activity
            for lv, lim in self._limits:
                if idle >= lim:
                    self._raise(out, "inactivity", lv, s.last_activity)
        if r.climate is not None and s.temp_t is not None:
            if now >= s.temp_t + CLIMATE_STALE:
                s.heat_since = s.cold_since = None  # no readings: the condition is unknown
            for since in (s.heat_since, s.cold_since):
                if since is not None and now >= since + r.climate.for_:
                    self._raise(out, "climate", "alarm", since)
        return out

    # -- readings ---------------------------------------------------------------------------

    def _apply(self, obs: Observation, out: list[WelfareEvent]) -> None:
        s, sid, t = self.s, obs.sensor, obs.t
        if sid == self._meter and self.rules.meter is not None:
            w = power_value(obs.name, obs.value, self.rules.meter.reading)
            if w is not None and s.power.feed(t, w, self.rules.meter.step_watts):
                self._evidence(t, sid, out)
        if sid == self._climate and obs.name == "temperature":
            self._temperature(t, obs.value, out)
        if sid not in self._activity:
            return
        stype = self.types[sid]
        if stype == "door":
            if obs.name == "open" and isinstance(obs.value, bool) \
                    and obs.value != s.doors.get(sid, False):
                s.doors[sid] = obs.value
                if sid == self._door:
                    self._door_change(t)
                self._evidence(t, sid, out)
            return
        if sid in s.fall_skip and s.fall_at is not None and t > s.fall_at \
                and obs.name == "activity":
            s.fall_skip.remove(sid)  # the mean that holds the impact says nothing
            return
        sense = classify(stype, obs.name, obs.value)
        if sense is Sense.ACTIVITY:
            if stype in _RADAR and sid not in s.presence_since \
                    and not t - s.presence_last.get(sid, -math.inf) <= PRESENCE_RECENT:
                return  # movement from a radar that has seen nobody for a while: clutter
            self._evidence(t, sid, out)
        elif sense is Sense.BUTTON:
            self._evidence(t, sid, out, strong=True)
        elif sense is Sense.PRESENCE:
            if t > s.presence_last.get(sid, -math.inf):
                s.presence_last[sid] = t
            since = s.presence_since.setdefault(sid, t)
            if t - since >= PRESENCE_HELD:
                # back home since the presence began (the radar may report it only every
                # few minutes), unless it began before the departure
                away = s.away_since
                self._home(since if away is not None and since > away else t, out)
        elif sense is Sense.ABSENT:
            s.presence_since.pop(sid, None)
        elif sense is Sense.FALL and stype in FALL_TYPES and s.fall_at is None \
                and _key("fall", "alarm") not in s.raised:
            s.fall_at = t
            s.fall_skip = sorted(a for a in self._activity if self.types.get(a) in _ACCEL)

    def _evidence(self, t: float, sid: str, out: list[WelfareEvent],
                  strong: bool = False) -> None:
        """Raw activity evidence from one sensor at ``t``."""
        s = self.s
        if t > s.seen.get(sid, -math.inf):
            s.seen[sid] = t
        if s.fall_at is not None and t > s.fall_at + FALL_SETTLE:
            s.fall_at, s.fall_skip = None, []
            s.falls_recovered += 1
        latest = max(t, s.now or t)
        recent = [(rt, rs) for rt, rs in s.recent if rt >= latest - self._span]
        near = [(rt, rs) for rt, rs in recent if abs(rt - t) <= self._within]
        same = [(rt, rs) for rt, rs in near if rs == sid and abs(rt - t) >= SAME_SENSOR_APART]
        near = [(rt, rs) for rt, rs in near if rs != sid]
        raised = self._raised_inactive()
        if len(same) >= SAME_SENSOR_PIECES - 1 and not raised:
            near += same
        recent.append((t, sid))
        s.recent = recent[-RECENT_MAX:]
        last = s.last_activity if s.last_activity is not None else -math.inf
        if strong:
            confirmed = t
        elif near and max(rt for rt, _ in near) - last < self._quiet:
            # the clock moves to the piece this one confirms, not to this one: a noise blip
            # right after the last real move (a collapse) does not push the alarm back
            confirmed = max(rt for rt, _ in near)
        elif t - last >= self._quiet:
            found = self._followed(t, sid, recent)
            if found is None:
                return
            confirmed = found
        else:
            return
        home = sid != self._door
        if home and s.away_since is None and s.depart_at is not None and s.door_at is not None:
            # a possible departure is cancelled only by evidence from inside, after the door
            after = s.door_at + DOOR_GRACE
            home = t > after and (strong or any(rs != self._door and rt > after
                                                for rt, rs in near))
        self._alive(confirmed, home, out)

    def _followed(self, t: float, sid: str, recent: list[tuple[float, str]]) -> float | None:
        """After ``quiet`` without activity a pair is not enough: another piece must follow
        it within ``follow``. When this piece follows such a pair (it is not part of it),
        returns the time the clock moves to (the newest piece before this one), else None.
        One sensor may confirm itself here even while a level is raised: the piece that
        must follow already keeps its lone noise out (at night only the bed radar sees a
        sleeper, and a false caution must not turn into an alarm for want of a second
        sensor)."""
        within, follow = self._within, self._follow
        before = sorted((rt, rs) for rt, rs in recent
                        if t - follow - within <= rt < t or (rt == t and rs != sid))
        if len(before) < 2:
            return None
        for i, (ta, sa) in enumerate(before):
            for tb, sb in before[i + 1:]:
                if tb - ta > within:
                    break
                if t - tb <= follow and (sa != sb or tb - ta >= SAME_SENSOR_APART):
                    return before[-1][0]
        return None

    def _raised_inactive(self) -> bool:
        raised = self.s.raised
        return (bool(raised) and any(k in raised for k, _ in self._inactivity)) \
            or _FALL in raised

    def _alive(self, t: float, home: bool, out: list[WelfareEvent]) -> None:
        s = self.s
        if s.last_activity is None or t > s.last_activity:
            s.last_activity = t
        self._resolve(out, "inactivity", t)
        self._resolve(out, "fall", t)
        if home:
            self._home(t, out)

    def _home(self, t: float, out: list[WelfareEvent]) -> None:
        """A sign that someone is inside at ``t``."""
        s = self.s
        if s.away_since is not None:
            if t <= s.away_since:
                return
            s.away_since = s.depart_at = None
            if s.last_activity is None or t > s.last_activity:
                s.last_activity = t  # back home: the inactivity clock restarts
            self._resolve(out, "away_overdue", t)
            self._resolve(out, "inactivity", t)
        elif s.depart_at is not None and s.door_at is not None and t > s.door_at + DOOR_GRACE:
            s.depart_at = None

    def _door_change(self, t: float) -> None:
        s = self.s
        s.door_at = t if s.door_at is None else max(s.door_at, t)
        if s.away_since is None and s.depart_at is None:
            s.depart_at = t

    def _temperature(self, t: float, value: object, out: list[WelfareEvent]) -> None:
        c = self.rules.climate
        if c is None or isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or not -60 <= value <= 90:
            return
        s = self.s
        if s.temp_t is not None and t < s.temp_t:
            return  # an older reading does not change the current temperature
        prev, prev_t = s.temp, s.temp_t
        if prev_t is not None and t - prev_t > CLIMATE_STALE:
            prev = prev_t = None
        s.temp, s.temp_t = float(value), t
        hot = c.heat is not None and value >= c.heat
        cold = c.cold is not None and value <= c.cold
        if not hot:
            s.heat_since = None
        elif s.heat_since is None:
            s.heat_since = _crossing(prev, prev_t, value, t, c.heat)
        if not cold:
            s.cold_since = None
        elif s.cold_since is None:
            s.cold_since = _crossing(prev, prev_t, value, t, c.cold)
        inside = (c.heat is None or value < c.heat - CLIMATE_HYSTERESIS) and \
                 (c.cold is None or value > c.cold + CLIMATE_HYSTERESIS)
        if inside:
            self._resolve(out, "climate", t)

    # -- events -----------------------------------------------------------------------------

    def _event(self, t: float, kind: Kind, level: Level, state: str,
               since: float) -> WelfareEvent:
        s = self.s
        watched = [*sorted(self._activity), *([self._meter] if self._meter else [])]
        evidence = {sid: s.seen[sid] for sid in watched if sid in s.seen}
        value = None
        if kind == "climate" and self._climate is not None and s.temp_t is not None:
            evidence[self._climate] = s.temp_t
            value = s.temp
        return WelfareEvent(t=t, subject=str(self.rules.subject), kind=kind, level=level,
                            state="raised" if state == "raised" else "resolved",
                            since=since, evidence=evidence, value=value)

    def _raise(self, out: list[WelfareEvent], kind: Kind, level: Level, since: float) -> None:
        key = _key(kind, level)
        if key in self.s.raised:
            return
        self.s.raised[key] = since
        assert self.s.now is not None
        out.append(self._event(self.s.now, kind, level, "raised", since))

    def _resolve(self, out: list[WelfareEvent], kind: Kind, t: float) -> None:
        for lv in reversed(LEVELS):
            since = self.s.raised.get(_key(kind, lv))
            if since is not None and t > since:
                del self.s.raised[_key(kind, lv)]
                out.append(self._event(max(t, self.s.now or t), kind, lv, "resolved", since))
