"""A month in the home of a resident living alone, as the sensors of ``site.yaml`` see it.

Seeded and deterministic. The resident's day is a timeline of places (bed, bedroom, bath,
kitchen, living room, out) with wake and bed times that vary, three meals, naps, night-time
bathroom visits and outings; the sensors render it with their own limits:

- ``pir-hall`` sees every walk between rooms and through the front door, missing 10 %;
- ``door-front`` reports ``open`` True/False when the resident goes out or comes back;
- ``radar-bed`` (MR60FDA1 over the bed) reports presence and body movement every minute
  while someone is in the bedroom: turning over in sleep every 10-50 minutes
  (``body_movement`` 25-70, 15 % missed), otherwise 0-10 (breathing, lying still);
- ``pendant`` (worn accelerometer, worn on 80 % of days from getting up to going to bed):
  the mean activity per minute, 0.1-0.4 m/s2 sitting, 0.6-3 moving, 0.02-0.05 on the table;
- ``meter-main``: household power per minute: standby, a fridge compressor cycling
  (90-110 W, every 40-70 minutes), its defrost heater (250 W, about every 8 h), on half of
  the homes an electric mat cycling on its thermostat all night (180-220 W), and the
  appliances the resident switches on: kettle, microwave, rice cooker, TV (below the step
  threshold), washing machine, vacuum cleaner;
- ``climate-living`` every 5 minutes: a daily curve by season, peaks below 32.5 Cel.

Noise: PIR false triggers (0.5/day), radar false movement (1/day) and presence flicker
(2/day), the pendant knocked on the table (0.2/day), meter noise (+-10 W), and once a month
a reboot without a clock: a few readings marked unsynced.

Incidents (``Incident``): a fall without recovery (found after 1-2 h), a fall with recovery
(up within 15-45 s), no activity from the morning on (found after 30 h), not back from an
outing (back after 16 h), an indoor heat wave (35 Cel for 4 h).
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.welfare.events import Observation

DAY = 86400.0
HOUR = 3600.0
MINUTE = 60.0
T0 = 1_717_167_600.0  # 2024-05-31T15:00:00Z = 2024-06-01 00:00 in Korea (local midnight)

Reading = tuple[float, str, str, float | bool | str, bool]  # t, sensor, name, value, synced


@dataclass
class Segment:
    start: float
    end: float
    place: str  # bed, bedroom, bath, kitchen, living, out, down-living, down-bedroom


@dataclass
class Incident:
    kind: str  # fall, fall_recovered, inactivity, not_back, heat
    start: float  # when it happens
    end: float  # when it is over (found, back, cooled down)
    reference: float  # the time the rule's window starts from (fall, last move, door, heat)
    sensor: str = ""


@dataclass
class Month:
    seed: int
    start: float
    end: float
    readings: list[Reading]
    incidents: list[Incident] = field(default_factory=list)

    def observations(self) -> list[Observation]:
        return [Observation(t, s, n, v, synced) for t, s, n, v, synced in self.readings]


class _Resident:
    """Per-resident habits, drawn once per month."""

    def __init__(self, rng: random.Random) -> None:
        self.wake = rng.gauss(6.5, 0.5)
        self.bed = rng.gauss(22.0, 0.5)
        self.night_visits = rng.uniform(0.5, 2.0)
        self.turn_minutes = rng.uniform(15, 35)
        self.pendant_days = 0.8
        self.out_prob = rng.uniform(0.4, 0.8)
        self.mat = rng.random() < 0.5
        self.season = rng.choice(["summer", "spring", "winter"])


def _clip(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


def plan(rng: random.Random, res: _Resident, start: float, days: int) -> list[Segment]:
    """The resident's places from ``start`` (local midnight) for ``days`` days."""
    segs: list[Segment] = []
    bed_from = start
    for d in range(days):
        day0 = start + d * DAY
        wake = day0 + _clip(rng.gauss(res.wake, 0.6), 4.5, 9.0) * HOUR
        _night(rng, res, segs, bed_from, wake)
        bedtime = day0 + _clip(rng.gauss(res.bed, 0.6), 20.0, 23.9) * HOUR
        _day(rng, res, segs, day0, wake, bedtime)
        bed_from = bedtime
    _night(rng, res, segs, bed_from, start + days * DAY)
    return segs


def _night(rng: random.Random, res: _Resident, segs: list[Segment], a: float,
           b: float) -> None:
    visits = sorted(rng.uniform(a + HOUR, b - HOUR) for _ in range(_poisson(rng, res.night_visits))
                    if b - a > 2 * HOUR)
    t = a
    for v in visits:
        if v <= t + 20 * MINUTE:
            continue
        segs.append(Segment(t, v, "bed"))
        dur = rng.uniform(3, 9) * MINUTE
        segs.append(Segment(v, v + dur, "bath"))
        t = v + dur
    segs.append(Segment(t, b, "bed"))


def _day(rng: random.Random, res: _Resident, segs: list[Segment], day0: float, wake: float,
         bedtime: float) -> None:
    t = wake
    meals = [day0 + _clip(rng.gauss(h, 0.4), h - 1, h + 1) * HOUR for h in (7.5, 12.5, 18.5)]
    outings: list[tuple[float, float]] = []
    if rng.random() < res.out_prob:
        s = day0 + rng.uniform(9.0, 10.5) * HOUR
        outings.append((s, s + _clip(rng.lognormvariate(math.log(1.5 * HOUR), 0.6),
                                     0.3 * HOUR, 2.0 * HOUR)))
    if rng.random() < res.out_prob * 0.6:
        s = day0 + rng.uniform(14.0, 16.0) * HOUR
        long_trip = rng.random() < 0.05  # a day with the family: up to 10 h
        hi = 10.0 * HOUR if long_trip else 3.0 * HOUR
        med = 6.0 * HOUR if long_trip else 1.5 * HOUR
        outings.append((s, s + _clip(rng.lognormvariate(math.log(med), 0.5), 0.3 * HOUR, hi)))
        outings = [o for o in outings if o[1] < bedtime - 0.5 * HOUR]
    anchors = sorted([(m, "meal") for m in meals] + [(o[0], "out") for o in outings])
    outs = dict(outings)

    def add(place: str, dur: float) -> None:
        nonlocal t
        segs.append(Segment(t, t + dur, place))
        t += dur

    add("bedroom", rng.uniform(4, 10) * MINUTE)
    add("bath", rng.uniform(5, 15) * MINUTE)
    napped = False
    while t < bedtime - 15 * MINUTE:
        nxt = next(((a, k) for a, k in anchors if a >= t - 30 * MINUTE), (bedtime, "bed"))
        if nxt[1] != "bed" and t >= nxt[0]:
            anchors.remove(nxt)
            if nxt[1] == "meal":
                add("kitchen", rng.uniform(20, 45) * MINUTE)
            else:
                add("out", outs[nxt[0]] - nxt[0])
            continue
        room = min(nxt[0], bedtime) - t
        hour = (t - day0) / HOUR
        r = rng.random()
        if 13 <= hour <= 16 and not napped and r < 0.35:
            napped = True
            add("bed", min(rng.uniform(30, 90) * MINUTE, max(room, 5 * MINUTE)))
        elif r < 0.25:
            add("bath", rng.uniform(4, 12) * MINUTE)
        elif r < 0.35:
            add("kitchen", rng.uniform(4, 12) * MINUTE)
        elif r < 0.42:
            add("bedroom", rng.uniform(5, 20) * MINUTE)
        else:
            add("living", min(rng.uniform(15, 100) * MINUTE, max(room, 5 * MINUTE)))
    add("bath", rng.uniform(4, 10) * MINUTE)
    if t < bedtime:
        add("bedroom", bedtime - t)
    else:
        segs[-1].end = max(segs[-1].end, t)


def _poisson(rng: random.Random, lam: float) -> int:
    n, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


def _times(rng: random.Random, a: float, b: float, per_day: float) -> list[float]:
    n = _poisson(rng, per_day * (b - a) / DAY)
    return sorted(rng.uniform(a, b) for _ in range(n))


# -- incidents ------------------------------------------------------------------------------


def _overlay(segs: list[Segment], a: float, b: float, place: str) -> list[Segment]:
    """``segs`` with [a, b) replaced by one segment at ``place``."""
    out: list[Segment] = []
    for s in segs:
        if s.end <= a or s.start >= b:
            out.append(s)
            continue
        if s.start < a:
            out.append(Segment(s.start, a, s.place))
        if s.end > b:
            out.append(Segment(b, s.end, s.place))
    out.append(Segment(a, b, place))
    out.sort(key=lambda s: s.start)
    return out


def _place_at(segs: list[Segment], t: float) -> Segment:
    i = bisect.bisect_right([s.start for s in segs], t) - 1
    return segs[max(i, 0)]


def _inject(rng: random.Random, segs: list[Segment], start: float, days: int,
            worn: set[int]) -> tuple[list[Segment], list[Incident], list[Reading]]:
    incidents: list[Incident] = []
    extra: list[Reading] = []
    kinds = ["fall", "fall_recovered", "inactivity", "not_back", "heat"]
    rng.shuffle(kinds)
    for i, kind in enumerate(kinds):
        day = 2 + i * 5 + rng.randint(0, 2)  # days 2-24, at least 3 days apart
        day0 = start + day * DAY
        if kind in ("fall", "fall_recovered"):
            t = _home_moment(rng, segs, day0 + 10 * HOUR, day0 + 19 * HOUR)
            in_bedroom = day not in worn or rng.random() < 0.5
            sensor = "radar-bed" if in_bedroom else "pendant"
            if kind == "fall":
                end = t + rng.uniform(1, 2) * HOUR
                segs = _overlay(segs, t, end, "down-bedroom" if in_bedroom else "down-living")
                extra += _rescue(rng, end)
            else:
                up = t + rng.uniform(15, 45)
                end = up + rng.uniform(3, 10) * MINUTE
                segs = _overlay(segs, t, end, "bedroom" if in_bedroom else "up-living")
                if in_bedroom:
                    extra += [(up, "radar-bed", "motion", "moving", True),
                              (up + 1, "radar-bed", "body_movement", rng.uniform(40, 80), True)]
            extra.append((t, sensor, "fall", True, True))
            incidents.append(Incident(kind, t, end, t, sensor))
        elif kind == "inactivity":
            seg = _place_at(segs, day0 + rng.uniform(8, 10) * HOUR)
            while seg.place in ("out", "bed"):
                seg = _place_at(segs, seg.end + 1)
            t = seg.start + rng.uniform(0.2, 0.8) * (seg.end - seg.start)
            end = t + 30 * HOUR
            segs = _overlay(segs, t, end, rng.choice(["down-living", "down-bedroom"]))
            extra += _rescue(rng, end)
            incidents.append(Incident(kind, t, end, t))
        elif kind == "not_back":
            t = _home_moment(rng, segs, day0 + 9 * HOUR, day0 + 11 * HOUR)
            end = t + 16 * HOUR
            segs = _overlay(segs, t, end, "out")
            incidents.append(Incident(kind, t, end, t))
        else:
            t = day0 + 12 * HOUR
            h = Incident("heat", t, t + 8 * HOUR, t)
            h.reference = heat_crossing(h)
            incidents.append(h)
    return segs, incidents, extra


def _home_moment(rng: random.Random, segs: list[Segment], a: float, b: float) -> float:
    for _ in range(100):
        t = rng.uniform(a, b)
        if _place_at(segs, t).place in ("living", "kitchen", "bedroom"):
            return t
    return a


def _rescue(rng: random.Random, t: float) -> list[Reading]:
    """Someone comes in and finds the resident: door, hall, voices and movement."""
    return [(t - 20, "door-front", "open", True, True), (t - 12, "door-front", "open", False, True),
            (t - 8, "pir-hall", "motion", True, True), (t + 30, "pir-hall", "motion", False, True),
            (t + 200, "pir-hall", "motion", True, True),
            (t + 230, "pir-hall", "motion", False, True)]


# -- sensors --------------------------------------------------------------------------------


def render(rng: random.Random, res: _Resident, segs: list[Segment], start: float, end: float,
           worn_days: set[int], heat: list[Incident], period: float = MINUTE) -> list[Reading]:
    out: list[Reading] = []
    add = out.append
    # hall PIR and the door: every change of place passes the hall
    prev = "bed"
    for s in segs:
        p = s.place
        if _room(p) != _room(prev) and not p.startswith("down") \
                and not prev.startswith("down"):
            if p == "out":
                _walk(rng, add, s.start - 15)
                add((s.start, "door-front", "open", True, True))
                add((s.start + rng.uniform(4, 15), "door-front", "open", False, True))
            elif prev == "out":
                add((s.start, "door-front", "open", True, True))
                add((s.start + rng.uniform(4, 15), "door-front", "open", False, True))
                _walk(rng, add, s.start + rng.uniform(5, 30))
            elif prev in ("bed", "bedroom") and p in ("bed", "bedroom"):
                pass
            else:
                _walk(rng, add, s.start)
        prev = p
    _bedroom(rng, res, segs, add, period)
    _pendant(rng, segs, start, end, worn_days, add)
    _meter(rng, res, segs, start, end, add, period)
    _climate(rng, res, start, end, heat, add)
    _noise(rng, start, end, add)
    out.sort(key=lambda r: r[0])
    return out


def _room(place: str) -> str:
    room = place.rsplit("-", 1)[-1]
    return "bedroom" if room == "bed" else room


def _walk(rng: random.Random, add: Callable[[Reading], None], t: float) -> None:
    if rng.random() < 0.9:
        add((t, "pir-hall", "motion", True, True))
        add((t + rng.uniform(10, 40), "pir-hall", "motion", False, True))


def _bedroom(rng: random.Random, res: _Resident, segs: list[Segment],
             add: Callable[[Reading], None], period: float) -> None:
    inside = ("bed", "bedroom", "down-bedroom")
    for k, s in enumerate(segs):
        if s.place not in inside:
            continue
        came = k == 0 or segs[k - 1].place not in inside or segs[k - 1].end < s.start
        leaves = k + 1 == len(segs) or segs[k + 1].place not in inside
        if came:  # staying in the room (into bed, falling) is not entering it
            add((s.start, "radar-bed", "presence", True, True))
        if came and s.place != "down-bedroom":
            add((s.start + 2, "radar-bed", "motion", "moving", True))
        t = s.start + MINUTE
        next_turn = t + rng.expovariate(1 / (res.turn_minutes * MINUTE))
        while t < s.end:
            if s.place == "bedroom":
                v = rng.uniform(30, 80)
            elif s.place == "bed" and t >= next_turn:
                v = rng.uniform(25, 70) if rng.random() > 0.15 else rng.uniform(0, 10)
                next_turn = t + rng.expovariate(1 / (res.turn_minutes * MINUTE))
            else:
                v = rng.uniform(0, 10)
            add((t, "radar-bed", "body_movement", round(v), True))
            if s.place != "bedroom" and (t - s.start) % (10 * MINUTE) < period:
                add((t, "radar-bed", "presence", True, True))
            t += period
        if leaves and s.place != "down-bedroom":
            add((s.end, "radar-bed", "motion", "moving", True))
        if leaves:
            add((s.end + 5, "radar-bed", "presence", False, True))


PENDANT_PERIOD = 25.0  # activity_seconds of the pendant in site.yaml


def _pendant(rng: random.Random, segs: list[Segment], start: float, end: float,
             worn_days: set[int], add: Callable[[Reading], None]) -> None:
    """One mean per period; a period that spans a change of place mixes both (by time)."""
    i = 0
    t = start + rng.uniform(0, PENDANT_PERIOD)
    while t < end:
        while i + 1 < len(segs) and segs[i].end <= t:
            i += 1
        s = segs[i]
        hour = (t - start) % DAY / HOUR
        worn = int((t - start) // DAY) in worn_days and 7 <= hour < 21.5 and s.place != "out"
        if not worn:
            v = rng.uniform(0.02, 0.05)
        else:
            since = t - s.start
            v = _moving(rng, s.place, since)
            if since < PENDANT_PERIOD and i > 0:
                f = since / PENDANT_PERIOD
                v = f * v + (1 - f) * _moving(rng, segs[i - 1].place, 1e9)
                if s.place.startswith("down") or s.place == "up-living":
                    v += rng.uniform(0.5, 1.2) * 60 / PENDANT_PERIOD / 2  # the impact
        add((t, "pendant", "activity", round(v, 3), True))
        t += PENDANT_PERIOD


def _moving(rng: random.Random, place: str, since: float) -> float:
    """A minute's mean activity of the wearer (m/s2) at ``place``, ``since`` s into it."""
    if place == "living":
        return rng.uniform(0.6, 1.5) if rng.random() < 0.1 else rng.uniform(0.1, 0.4)
    if place in ("kitchen", "bath", "bedroom"):
        return rng.uniform(0.8, 2.5)
    if place == "up-living":  # lies 15-45 s after the fall, then gets up and walks about
        return rng.uniform(1.2, 2.5) if since > 45 else rng.uniform(0.6, 1.6)
    return rng.uniform(0.05, 0.2)  # down, bed


_APPLIANCES = {  # name: (watts, minutes lo, minutes hi)
    "kettle": (1800.0, 2.0, 4.0),
    "microwave": (1100.0, 2.0, 5.0),
    "rice": (650.0, 20.0, 35.0),
    "tv": (110.0, 30.0, 150.0),
    "washer": (500.0, 40.0, 70.0),
    "vacuum": (1200.0, 8.0, 20.0),
}


def _meter(rng: random.Random, res: _Resident, segs: list[Segment], start: float,
           end: float, add: Callable[[Reading], None], period: float) -> None:
    loads: list[tuple[float, float, float]] = []  # start, end, watts
    # the fridge compressor, then its defrost heater
    t = start + rng.uniform(0, 3600)
    while t < end:
        on = rng.gauss(20, 3) * MINUTE
        loads.append((t, t + on, rng.uniform(90, 110)))
        t += on + rng.gauss(35, 6) * MINUTE
    t = start + rng.uniform(0, 8 * HOUR)
    while t < end:
        loads.append((t, t + 20 * MINUTE, 250.0))
        t += rng.gauss(8, 0.5) * HOUR
    for s in segs:
        if res.mat and s.place == "bed" and s.end - s.start > HOUR:
            t = s.start
            while t < s.end:
                on = rng.uniform(8, 12) * MINUTE
                loads.append((t, min(t + on, s.end), rng.uniform(180, 220)))
                t += on + rng.uniform(15, 25) * MINUTE
        if s.place == "kitchen":
            for name in ("kettle", "microwave", "rice"):
                if rng.random() < 0.5:
                    w, lo, hi = _APPLIANCES[name]
                    a = s.start + rng.uniform(0, 0.5) * (s.end - s.start)
                    loads.append((a, a + rng.uniform(lo, hi) * MINUTE, w))
        if s.place.endswith("living") and rng.random() < 0.6:
            w, lo, hi = _APPLIANCES["tv"]
            loads.append((s.start + 30, min(s.end, s.start + rng.uniform(lo, hi) * MINUTE), w))
        if s.place == "living" and rng.random() < 0.05:
            for name in ("washer", "vacuum"):
                w, lo, hi = _APPLIANCES[name]
                loads.append((s.start + 60, s.start + 60 + rng.uniform(lo, hi) * MINUTE, w))
    # per-minute power: sweep the load edges
    edges = sorted([(a, w) for a, _, w in loads] + [(b, -w) for _, b, w in loads])
    base = rng.uniform(60, 90)
    level = 0.0
    j = 0
    t = start + rng.uniform(0, MINUTE)
    while t < end:
        while j < len(edges) and edges[j][0] <= t:
            level += edges[j][1]
            j += 1
        add((t, "meter-main", "power_import", round(base + level + rng.gauss(0, 5)), True))
        t += period


def _climate(rng: random.Random, res: _Resident, start: float, end: float,
             heat: list[Incident], add: Callable[[Reading], None]) -> None:
    mean = {"summer": 27.0, "spring": 22.0, "winter": 19.0}[res.season]
    day_mean = mean
    t = start + rng.uniform(0, 300)
    day = -1
    while t < end:
        d = int((t - start) // DAY)
        if d != day:
            day, day_mean = d, mean + rng.uniform(-1.5, 1.5)
        hour = (t - start) % DAY / HOUR
        v = day_mean + 2.5 * math.sin((hour - 9) / 24 * 2 * math.pi) + rng.gauss(0, 0.2)
        for h in heat:
            if h.start - 2 * HOUR <= t < h.end:
                v = max(v, _heat_curve(t, h))
        add((t, "climate-living", "temperature", round(v, 2), True))
        t += 300


def _heat_curve(t: float, h: Incident) -> float:
    """35 Cel from ``h.start`` for 4 h, ramps of 2 h each side (crossing 33 at start - 24m)."""
    if t < h.start:
        return 35.0 - 12.0 * (h.start - t) / (2 * HOUR)
    if t < h.start + 4 * HOUR:
        return 35.0
    return 35.0 - 12.0 * (t - h.start - 4 * HOUR) / (2 * HOUR)


def heat_crossing(h: Incident) -> float:
    return h.start - 2 * HOUR * (35.0 - 33.0) / 12.0


def _noise(rng: random.Random, start: float, end: float,
           add: Callable[[Reading], None]) -> None:
    for t in _times(rng, start, end, 0.5):
        add((t, "pir-hall", "motion", True, True))
        add((t + rng.uniform(5, 20), "pir-hall", "motion", False, True))
    for t in _times(rng, start, end, 1.0):
        add((t, "radar-bed", "body_movement", rng.randint(25, 40), True))
    for t in _times(rng, start, end, 2.0):
        add((t, "radar-bed", "presence", True, True))
        add((t + rng.uniform(5, 30), "radar-bed", "presence", False, True))
    for t in _times(rng, start, end, 0.2):
        add((t, "pendant", "activity", rng.uniform(0.6, 1.0), True))
    boot = rng.uniform(start, end)  # a reboot before NTP: a minute of unsynced readings
    for k in range(10):
        add((boot + k * 6, "pir-hall", "motion", k % 2 == 0, False))
        add((boot + k * 6 + 1, "radar-bed", "body_movement", 60, False))


def month(seed: int, incidents: bool, days: int = 30, period: float = MINUTE) -> Month:
    """One resident-month. ``period``: how often the meter and the bed radar report
    (60 s for the evaluation; 5 s, as the devices can, for a busy replay file)."""
    rng = random.Random(seed)
    res = _Resident(rng)
    start = T0 + (seed % 12) * days * DAY
    end = start + days * DAY
    segs = plan(rng, res, start, days)
    worn = {d for d in range(days) if rng.random() < res.pendant_days}
    found: list[Incident] = []
    extra: list[Reading] = []
    if incidents:
        segs, found, extra = _inject(rng, segs, start, days, worn)
    readings = render(rng, res, segs, start, end, worn, [i for i in found if i.kind == "heat"],
                      period)
    readings.extend(extra)
    readings.sort(key=lambda r: r[0])
    # unsynced readings carry a 1970 time: move them to where they were received
    return Month(seed, start, end, [_unsynced(r) for r in readings], found)


def _unsynced(r: Reading) -> Reading:
    return (r[0] - T0 + 3600.0, *r[1:]) if not r[4] else r
