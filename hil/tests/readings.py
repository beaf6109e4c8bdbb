"""What the host subscriber received, read back: SenML values, health, gap checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge_agent.store.ranges import RangeSet
from edge_agent.tools.consumer import Consumer

Value = float | bool | str


def records(c: Consumer, sensor: str, name: str) -> list[dict[str, Any]]:
    """SenML records of ``sensor``'s ``name`` (base names resolved; pseudonyms ignored)."""
    out: list[dict[str, Any]] = []
    for m in c.snapshot().messages:
        base = ""
        for rec in m.msg.get("senml", []):
            base = rec.get("bn", base)
            full = base + rec.get("n", "")
            if full.endswith(f"{sensor}/{name}"):
                out.append(rec)
    return out


def values(c: Consumer, sensor: str, name: str) -> list[Value]:
    out: list[Value] = []
    for rec in records(c, sensor, name):
        for key in ("v", "vb", "vs"):
            if key in rec:
                out.append(rec[key])
                break
    return out


def wait_values(c: Consumer, sensor: str, name: str, count: int = 1,
                timeout: float = 60.0,
                accept: Callable[[Value], bool] = lambda v: True) -> list[Value]:
    """Wait until ``count`` accepted values of ``sensor/name`` arrived; return them all."""
    deadline = time.monotonic() + timeout
    while True:
        got = [v for v in values(c, sensor, name) if accept(v)]
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def reported(c: Consumer) -> RangeSet:
    """Ranges the agent reported in its health messages (evicted, skipped, quarantined...)."""
    out = RangeSet()
    for h in c.snapshot().health:
        for first, last, _why in h.get("store", {}).get("evicted_ranges", []):
            out.add(int(first), int(last))
    return out


def last_health(c: Consumer) -> dict[str, Any] | None:
    health = c.snapshot().health
    return health[-1] if health else None


def missing(c: Consumer, top: int) -> list[tuple[int, int]]:
    """Sequence ranges in 1..top neither received nor reported by the agent."""
    if top < 1:
        return []
    both = c.received()
    for first, last in reported(c):
        both.add(first, last)
    return both.gaps(1, top)


def wait_drained(c: Consumer, timeout: float = 90.0) -> int:
    """Wait for a health message with an empty backlog whose accepted range has all
    arrived (or been reported); return the highest accepted sequence number."""
    deadline = time.monotonic() + timeout
    top = 0
    while time.monotonic() < deadline:
        h = last_health(c)
        if h is not None:
            store = h.get("store", {})
            top = int(store.get("next_seq", 1)) - 1
            backlog = store.get("backlog", {})
            empty = not any(backlog.values()) if isinstance(backlog, dict) else not backlog
            if empty and not missing(c, top):
                return top
        time.sleep(0.5)
    return top
