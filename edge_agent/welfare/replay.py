"""Drive welfare rules over a sequence of readings on a simulated clock (pure).

Input lines are JSON objects ``{"t": <epoch s>, "sensor": "<id>", "name": "<reading>",
"v": <value>}``, optionally with ``"clock_": "unsynced"``. Between readings the clock jumps
straight to each timer deadline, so events carry the time they would have fired at.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import msgspec

from edge_agent.core.errors import EdgeAgentError
from edge_agent.core.model import Value
from edge_agent.welfare.engine import Welfare
from edge_agent.welfare.events import Observation, WelfareEvent


class ReplayLineError(EdgeAgentError, ValueError):
    """One input line is not a reading; the message says why."""


class _Line(msgspec.Struct, forbid_unknown_fields=False):
    t: float
    sensor: str
    name: str
    v: Value
    clock_: str | None = None


_decoder = msgspec.json.Decoder(_Line)


def parse_line(line: bytes | str) -> Observation:
    try:
        r = _decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ReplayLineError(str(exc)) from None
    if not math.isfinite(r.t):
        raise ReplayLineError("t must be a finite number of seconds since the epoch")
    if not r.sensor or not r.name:
        raise ReplayLineError("sensor and name must not be empty")
    if isinstance(r.v, float) and not math.isfinite(r.v):
        raise ReplayLineError("v must be finite")
    return Observation(r.t, r.sensor, r.name, r.v, synced=r.clock_ != "unsynced")


def run(welfare: Welfare, readings: Iterable[Observation],
        until: float | None = None) -> Iterator[WelfareEvent]:
    """Feed ``readings`` in order, firing timers at their deadlines in between; then fire
    the timers due up to ``until`` (if given)."""
    for obs in readings:
        if obs.synced:
            yield from _due(welfare, obs.t)
        yield from welfare.feed(obs)
    if until is not None:
        yield from _due(welfare, until)
        yield from welfare.tick(until)


def _due(welfare: Welfare, t: float) -> Iterator[WelfareEvent]:
    last = -math.inf
    while (d := welfare.next_deadline()) is not None and last < d <= t:
        last = d
        yield from welfare.tick(d)
