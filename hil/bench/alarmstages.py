"""Where an alarm's time goes: the stage timings of ``alarmtrace.py`` joined with the
subscribers' receipt times (same host clock), summarised as percentiles per stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# (name, from, to): each stage is the time between two stamps of one alarm
STAGES = (
    ("emit -> queued", "t", "put"),
    ("queued -> commit starts", "put", "commit0"),
    ("commit: waiting for the store lock", "commit0", "locked0"),
    ("commit: seal + write + fsync", "locked0", "locked1"),
    ("committed -> leased", "commit1", "lease1"),
    ("leased -> handed to paho", "lease1", "pub1"),
    ("paho -> socket", "pub1", "sock"),
    ("socket -> PUBACK", "sock", "puback"),
    ("socket -> alarm-only subscriber", "sock", "rx_only"),
    ("socket -> data consumer", "sock", "rx_data"),
    ("emit -> socket (the agent's part)", "t", "sock"),
    ("emit -> alarm-only subscriber", "t", "rx_only"),
)


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def _by_t(samples: list[list[float]]) -> dict[int, float]:
    """Receipts keyed by the alarm's time in microseconds (the SenML t as sent)."""
    return {round(t * 1e6): rx for t, rx in samples}


def join(trace: Path, data: list[list[float]], alarm_only: list[list[float]],
         window: tuple[float | None, float | None]) -> list[dict[str, Any]]:
    """The traced alarms emitted within ``window``, with their receipt times."""
    try:
        doc = json.loads(trace.read_text())
    except (OSError, ValueError):
        return []
    lo, hi = window
    rx_data, rx_only = _by_t(data), _by_t(alarm_only)
    out = []
    for rec in doc.get("alarms", []):
        t = rec.get("t")
        if t is None or lo is None or hi is None or not lo <= t <= hi:
            continue
        key = round(t * 1e6)
        for k, rx in (("rx_data", rx_data), ("rx_only", rx_only)):
            # the SenML t went through JSON: match within a microsecond
            got = rx.get(key, rx.get(key - 1, rx.get(key + 1)))
            if got is not None:
                rec[k] = got
        out.append(rec)
    return out


def summary(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage: how many alarms had both stamps, p50, p99 and max in ms."""
    rows = []
    for name, a, b in STAGES:
        xs = [(r[b] - r[a]) * 1000 for r in recs if a in r and b in r]
        rows.append({"stage": name, "n": len(xs), "p50_ms": _pct(xs, 50),
                     "p99_ms": _pct(xs, 99), "max_ms": max(xs) if xs else float("nan")})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| stage | alarms | p50 (ms) | p99 (ms) | max (ms) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['n']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['max_ms']:.2f} |")
    return "\n".join(lines)
