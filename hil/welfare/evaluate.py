"""Replay simulated resident-months through the welfare rules and score them.

Each resident-month runs through ``edge_agent.welfare.replay.run`` (what ``edge-agent
replay`` runs) with the rules of ``site.yaml``. Months with incidents give detections and
latencies; incident-free months give false cautions and false alarms.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.config import SiteConfig, load_config
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.welfare.engine import Welfare
from edge_agent.welfare.events import WelfareEvent
from edge_agent.welfare.replay import run

from .household import Incident, Month, month

SITE = Path(__file__).resolve().parent / "site.yaml"
SLACK = 300.0  # detected within the rule's window + 5 minutes
HOUR = 3600.0


def site() -> SiteConfig:
    return load_config(SITE, SENSOR_TYPES, env={})


def replay_month(cfg: SiteConfig, m: Month) -> list[WelfareEvent]:
    w = Welfare(cfg.welfare, {s.id: s.type for s in cfg.sensors})
    return list(run(w, m.observations(), until=m.end))


@dataclass
class Outcome:
    kind: str  # the incident kind, or "inactivity/alarm" etc. for the higher levels
    detected: bool
    latency: float | None  # seconds past the rule's window (negative: earlier)
    other: list[str] = field(default_factory=list)  # other raises during the incident


@dataclass
class Score:
    months_with_incidents: int = 0
    months_free: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    false_caution: int = 0  # in incident-free months
    false_alarm: int = 0  # alarm or danger, in incident-free months
    stray_caution: int = 0  # in months with incidents, outside every incident
    stray_alarm: int = 0
    readings: int = 0
    unsynced_months_clean: int = 0


def _windows(cfg: SiteConfig) -> dict[str, list[tuple[str, str, float]]]:
    r = cfg.welfare[0]
    assert r.away is not None and r.climate is not None
    return {
        "fall": [("fall", "alarm", float(r.fall.confirm))],
        "inactivity": [("inactivity", lv, float(getattr(r.inactivity, lv)))
                       for lv in ("caution", "alarm", "danger")],
        "not_back": [("away_overdue", "caution", float(r.away.overdue))],
        "heat": [("climate", "alarm", float(r.climate.for_))],
    }


def score_incident(cfg: SiteConfig, inc: Incident, raised: list[WelfareEvent]) -> list[Outcome]:
    during = [e for e in raised if inc.start - 1 <= e.t <= inc.end + 60]
    if inc.kind == "fall_recovered":
        bad = [e for e in during if e.kind == "fall"]
        return [Outcome("fall_recovered", not bad, None,
                        [f"{e.kind}/{e.level}" for e in during if e.kind != "fall"])]
    out = []
    for kind, level, window in _windows(cfg)[inc.kind]:
        hit = next((e for e in during if e.kind == kind and e.level == level), None)
        label = inc.kind if level in ("caution", "alarm") and kind != "inactivity" \
            else f"{inc.kind}/{level}"
        others = [f"{e.kind}/{e.level}" for e in during if e.kind != kind]
        if hit is None:
            out.append(Outcome(label, False, None, others))
        else:
            lat = hit.t - (inc.reference + window)
            out.append(Outcome(label, lat <= SLACK, lat, others))
    return out


def evaluate(months: int, seed: int = 1) -> Score:
    cfg = site()
    sc = Score()
    for i in range(months):
        m = month(seed * 100_003 + i, incidents=True)
        sc.readings += len(m.readings)
        sc.months_with_incidents += 1
        raised = [e for e in replay_month(cfg, m) if e.state == "raised"]
        for inc in m.incidents:
            sc.outcomes.extend(score_incident(cfg, inc, raised))
        for e in raised:
            if any(inc.start - 1 <= e.t <= inc.end + HOUR for inc in m.incidents):
                continue
            if e.level == "caution":
                sc.stray_caution += 1
            else:
                sc.stray_alarm += 1
        free = month(seed * 100_003 + 50_000 + i, incidents=False)
        sc.readings += len(free.readings)
        sc.months_free += 1
        for e in replay_month(cfg, free):
            if e.state != "raised":
                continue
            if e.level == "caution":
                sc.false_caution += 1
            else:
                sc.false_alarm += 1
    return sc


def table(sc: Score) -> str:
    kinds: dict[str, list[Outcome]] = {}
    for o in sc.outcomes:
        kinds.setdefault(o.kind, []).append(o)
    lines = ["| incident | injected | detected in window + 5 min | latency past window: "
             "median / max (s) | other raises during it |",
             "| --- | --- | --- | --- | --- |"]
    for kind, os_ in kinds.items():
        lats = [o.latency for o in os_ if o.latency is not None]
        lat = (f"{statistics.median(lats):.0f} / {max(lats):.0f}" if lats else "-")
        other: dict[str, int] = {}
        for o in os_:
            for x in o.other:
                other[x] = other.get(x, 0) + 1
        det = sum(o.detected for o in os_)
        word = "no fall alarm" if kind == "fall_recovered" else "detected"
        lines.append(f"| {kind} | {len(os_)} | {det} ({word}) | {lat} | "
                     f"{', '.join(f'{k} x{v}' for k, v in sorted(other.items())) or '-'} |")
    n = max(sc.months_free, 1)
    lines += ["",
              "| incident-free resident-months | false cautions | per month | "
              "false alarms + dangers |",
              "| --- | --- | --- | --- |",
              f"| {sc.months_free} | {sc.false_caution} | {sc.false_caution / n:.3f} | "
              f"{sc.false_alarm} |",
              "",
              f"Outside incidents in the {sc.months_with_incidents} months with incidents: "
              f"{sc.stray_caution} cautions, {sc.stray_alarm} alarms/dangers. "
              f"Readings replayed: {sc.readings:,}."]
    return "\n".join(lines)


def targets_met(sc: Score) -> list[str]:
    """The targets that were missed (empty when all are met)."""
    missed = [f"{o.kind}: not detected within window + 5 min (latency {o.latency})"
              for o in sc.outcomes if not o.detected]
    if sc.false_alarm:
        missed.append(f"{sc.false_alarm} false alarm/danger in {sc.months_free} months")
    if sc.false_caution > sc.months_free:
        missed.append(f"{sc.false_caution} false cautions in {sc.months_free} months")
    return missed


def summary(outcomes: Iterable[Outcome]) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in outcomes:
        out[o.kind] = out.get(o.kind, 0) + o.detected
    return out
