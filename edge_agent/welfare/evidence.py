"""What a reading says about the resident: activity, presence, a fall, power, temperature.

Pure functions and one small learner (``PowerSteps``); no clock, no I/O. The facts per
sensor type follow the drivers (README device table):

| type | activity evidence | presence only (not activity) |
| --- | --- | --- |
| pir | ``motion`` True | |
| door | ``open`` changes (tracked by the rules, which know the previous state) | |
| button | ``pressed``, ``held`` | |
| ld2410 | ``target_state`` moving / both | ``presence`` True, target stationary |
| mr60fda1, mr60bha1 | ``motion`` moving, ``body_movement`` >= BODY_MOVEMENT_MIN | ``presence`` |
| mpu6050, adxl345 | ``activity`` >= ACCEL_REST m/s2 | |

A radar's ``presence`` alone is never activity: a person lying still on the floor is present.
"""

from __future__ import annotations

import enum
import math

import msgspec

from edge_agent.core.model import Value

BODY_MOVEMENT_MIN = 20.0
"""MR60 ``body_movement`` (0..100) at or above this is a body moving (turning over in bed,
getting up). Below it: breathing, twitches, a person lying still (and radar clutter)."""

ACCEL_REST = 0.5
"""Worn accelerometer ``activity`` (mean deviation from 1 g, m/s2) at or above this is the
wearer moving; a pendant on a table or a person lying still reads 0.0-0.2."""


class Sense(enum.Enum):
    NONE = 0
    ACTIVITY = 1  # a living person moving
    PRESENCE = 2  # someone is there, maybe still
    ABSENT = 3  # a presence sensor says nobody is there
    FALL = 4
    BUTTON = 5  # a deliberate press: activity that needs no corroboration


_PRESSES = frozenset({"pressed", "held"})


def _number(v: Value) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def classify(stype: str, name: str, value: Value) -> Sense:
    """The meaning of one reading from an activity sensor (doors are handled by the rules)."""
    if stype == "pir":
        return Sense.ACTIVITY if name == "motion" and value is True else Sense.NONE
    if stype == "button":
        return Sense.BUTTON if name in _PRESSES and value not in (False, None) else Sense.NONE
    if stype in ("mpu6050", "adxl345"):
        if name == "fall":
            return Sense.FALL if value is True else Sense.NONE
        n = _number(value) if name == "activity" else None
        return Sense.ACTIVITY if n is not None and n >= ACCEL_REST else Sense.NONE
    if stype == "ld2410":
        if name == "target_state":
            if value in ("moving", "both"):
                return Sense.ACTIVITY
            if value == "stationary":
                return Sense.PRESENCE
            return Sense.ABSENT if value == "none" else Sense.NONE
        if name == "presence":
            return _presence(value)
        return Sense.NONE
    if stype in ("mr60fda1", "mr60bha1"):
        if name == "fall":
            return Sense.FALL if value is True else Sense.NONE
        if name == "motion":
            if value == "moving":
                return Sense.ACTIVITY
            return Sense.PRESENCE if value == "stationary" else Sense.NONE
        if name == "body_movement":
            n = _number(value)
            return Sense.ACTIVITY if n is not None and n >= BODY_MOVEMENT_MIN else Sense.NONE
        if name == "presence":
            return _presence(value)
    return Sense.NONE


def _presence(value: Value) -> Sense:
    if value is True:
        return Sense.PRESENCE
    return Sense.ABSENT if value is False else Sense.NONE


def power_value(name: str, value: Value, wanted: str | None) -> float | None:
    """Household import power in W from a meter reading, or None if this is not it."""
    if wanted is not None:
        if name != wanted:
            return None
    elif name not in ("power_import", "power"):
        return None
    n = _number(value)
    return n if n is not None and 0 <= n < 1_000_000 else None


# -- appliance switch-ons ------------------------------------------------------------------

STEP_MAX_GAP = 300.0  # s: readings further apart than this do not make a step
SAME_SIZE = 0.2  # steps within 20 % (or 40 W) of each other may be the same appliance
PERIOD_MIN = 300.0  # s: cycles of automatic loads: compressors, heaters on thermostats...
PERIOD_MAX = 16 * 3600.0  # ... defrost heaters; a person's daily routine is ~24 h: not a cycle
PERIOD_JITTER = 0.25  # thermostats and defrost timers wander by up to a quarter period
CYCLES_SEEN = 3  # earlier cycles needed: meals (about 6 h apart, 3 a day) are not a cycle
HISTORY_SPAN = (CYCLES_SEEN + 1) * PERIOD_MAX
HISTORY_MAX = 256


class PowerSteps(msgspec.Struct):
    """Switch-ons in household power that a person made, told apart from automatic cycles.

    A *step* is a rise of at least ``step_watts`` between two consecutive readings (at most
    STEP_MAX_GAP apart). A fridge compressor (80-150 W, every 30-90 min), its defrost heater
    (200-400 W every 6-12 h), a water heater or an electric mat on its thermostat all switch
    on by themselves with the *same size* at *regular intervals*; a person switching on a
    kettle, a TV, a rice cooker or a microwave does so at irregular times within the day.
    So a step is an automatic cycle, not activity, when CYCLES_SEEN steps of the same size
    (within SAME_SIZE) came before it one period p apart each (within PERIOD_JITTER of p),
    for a period between PERIOD_MIN and PERIOD_MAX. Other loads' steps in between do not
    hide a cycle. Daily habits (p about 24 h) are not cycles, nor are three meals a day.
    Compressor steps below ``step_watts`` are never steps at all. The first CYCLES_SEEN
    cycles of a load count as activity (nothing to compare with yet). Serialisable
    (msgspec) for restarts.
    """

    last_t: float | None = None
    last_w: float | None = None
    history: list[tuple[float, float]] = msgspec.field(default_factory=list)  # (t, size)
    automatic: int = 0  # steps classified as cycles (diagnostics)

    def feed(self, t: float, watts: float, step_watts: float) -> bool:
        """Add one reading; True when it shows an appliance switched on by a person."""
        prev_t, prev_w = self.last_t, self.last_w
        if prev_t is not None and t < prev_t:
            return False  # out of order: a step against a later reading means nothing
        self.last_t, self.last_w = t, watts
        if prev_t is None or prev_w is None or t - prev_t > STEP_MAX_GAP:
            return False
        size = watts - prev_w
        if size < step_watts:
            return False
        periodic = self._periodic(t, size)
        self.history.append((t, size))
        cutoff = t - HISTORY_SPAN
        if len(self.history) > HISTORY_MAX or self.history[0][0] < cutoff:
            self.history = [h for h in self.history[-HISTORY_MAX:] if h[0] >= cutoff]
        if periodic:
            self.automatic += 1
        return not periodic

    def _periodic(self, t: float, size: float) -> bool:
        """Same-size steps at about t - p, t - 2p, t - 3p (each one period from the next,
        so a wandering cycle still counts): a cycle."""
        tol = max(SAME_SIZE * size, 40.0)
        times = [ht for ht, hs in self.history if abs(hs - size) <= tol]
        for t1 in reversed(times):
            p = t - t1
            if p < PERIOD_MIN:
                continue
            if p > PERIOD_MAX:
                break
            slack, prev, found = PERIOD_JITTER * p, t1, 1
            while found < CYCLES_SEEN:
                nxt = next((x for x in times if abs(x - (prev - p)) <= slack), None)
                if nxt is None:
                    break
                prev, found = nxt, found + 1
            if found >= CYCLES_SEEN:
                return True
        return False
