"""The end-to-end results as markdown tables (from the raw dict of ``e2e.run``)."""

from __future__ import annotations

import math
from typing import Any

from hil.bench import alarmstages
from hil.common import markdown_table

MB = 1024 * 1024
HEADERS = ["measure (end to end)", "edge-agent", "target", "baseline (same run)", "ratio",
           "verdict"]
DRAIN_HEADERS = ["backlog", "records", "readings/s at subscriber", "x raw paho",
                 "agent CPU-s per M", "subscriber CPU-s", "READY after (s)", "VmHWM (MB)",
                 "complete"]
BLOCK_HEADERS = ["readings/s", "file system", "window (s)", "bytes written", "bytes/reading",
                 "SenML JSON/reading", "x JSON", "long run bytes/reading", "MB/hour",
                 "agent CPU-s/hour", "start + stop bytes"]


def _ok(cond: bool) -> str:
    return "met" if cond else "MISSED"


def _f(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:,.{digits}f}"


def tables(raw: dict[str, Any]) -> str:
    paho = raw["paho"]
    rows: list[list[str]] = []
    drows: list[list[str]] = []
    drains = raw["drain"]
    for r in drains:
        drows.append([f"{r['readings']:,} x {r['per_record']}", f"{r['records']:,}",
                      _f(r["rate"]) + ("" if r["complete"] else " (partial, cap)"),
                      f"{r['rate'] / paho['rate']:.1f}x", _f(r["cpu_per_m"], 1),
                      _f(r.get("sub_cpu"), 1), _f(r["ready_s"], 2), _f(r["hwm"] / MB, 1),
                      "yes" if r["complete"] else "no"])
    worst = min(drains, key=lambda r: r["rate"])
    rows.append(["drain to an independent subscriber, slowest point (readings/s)",
                 f"{worst['rate']:,.0f} ({worst['readings']:,} x {worst['per_record']})",
                 ">= 20x raw paho", f"raw paho 1 msg/reading {_f(paho['rate'])}",
                 f"{worst['rate'] / paho['rate']:.1f}x",
                 _ok(all(r["complete"] and r["rate"] >= 20 * paho["rate"] for r in drains))])
    # flat: the same readings per record drain at the same rate whatever the backlog's size
    by_size: dict[int, list[dict[str, Any]]] = {}
    for r in drains:
        by_size.setdefault(r["per_record"], []).append(r)
    for per, points in sorted(by_size.items()):
        if len(points) < 2:
            continue
        rates = [r["rate"] for r in points]
        records = [r["records"] for r in points]
        rows.append([f"drain flatness, {per} reading(s) per record, backlog "
                     f"{min(records):,} to {max(records):,} records "
                     "(slowest / fastest)", f"{min(rates) / max(rates):.3f}",
                     ">= 0.8 (within 20 %)", f"fastest {_f(max(rates))}", "",
                     _ok(min(rates) >= 0.8 * max(rates))])
    al, pal = raw["alarms"], raw["paho_alarms"]
    rows.append([f"alarm latency p50 / p99 / max during a {al['backlog']:,}-reading drain, "
                 f"data consumer attached (ms), {al['alarms']} alarms in "
                 f"{len(al['rounds'])} drains",
                 f"{_f(al['p50_ms'], 1)} / {_f(al['p99_ms'], 1)} / {_f(al['max_ms'], 1)}",
                 "p99 <= 25 (goal 10)",
                 f"raw paho idle {_f(pal['p50_ms'], 1)} / {_f(pal['p99_ms'], 1)}",
                 f"p99 {al['p99_ms'] / pal['p99_ms']:.1f}x",
                 _ok(al["alarms"] > 0 and al["p99_ms"] <= 25)])
    ao = al.get("alarm_only")
    if ao:
        rows.append(["same alarms at a second subscriber on the alarm topic only (ms)",
                     f"{_f(ao['p50_ms'], 1)} / {_f(ao['p99_ms'], 1)} / {_f(ao['max_ms'], 1)}",
                     "p99 <= 25 (goal 10)", f"{ao['alarms']} alarms", "",
                     _ok(ao["alarms"] > 0 and ao["p99_ms"] <= 25)])
    brows: list[list[str]] = []
    for r in raw.get("block", []):
        bpr = r["bytes_per_reading"]
        fs = f"{(r.get('block_size') or 1024) // 1024} KiB, {r.get('options', 'noatime')}"
        brows.append([str(r["rate"]), fs, _f(r["seconds"], 1), _f(r["steady_bytes"]),
                      _f(bpr, 1), _f(r["json_per_reading"], 1),
                      f"{bpr / r['json_per_reading']:.2f}x" if bpr else "",
                      _f(r.get("long_run_bytes_per_reading"), 1),
                      _f(r["bytes_per_hour"] / MB, 1), _f(r["agent_cpu_per_hour"], 1),
                      _f(r["start_bytes"] + r["stop_bytes"])])
        if r["rate"] == 100:
            rows.append(["bytes at the block layer per reading, 100/s, 1 s commits, "
                         f"everything the agent writes ({fs})",
                         _f(bpr, 1), "<= 1.0 x JSON", f"SenML JSON {_f(r['json_per_reading'], 1)}",
                         f"{bpr / r['json_per_reading']:.2f}x JSON",
                         _ok(bpr <= r["json_per_reading"])])
        if r["rate"] == 0:
            rows.append([f"block-layer bytes per hour, idle site (no readings; {fs})",
                         f"{r['bytes_per_hour'] / MB:,.1f} MB", "", "", "", "info"])
    mem = raw["memory"]
    rows.append([f"memory, ingest burst of {mem['burst']:,} readings: VmHWM / VmRSS "
                 "10 s after (MB)", f"{mem['hwm'] / MB:.1f} / {mem['rss_settled'] / MB:.1f}",
                 "<= 60 peak and after", f"at READY {mem['rss_ready'] / MB:.1f}",
                 f"{mem['hwm'] / mem['rss_ready']:.2f}x",
                 _ok(mem["hwm"] <= 60 * MB and mem["rss_settled"] <= 60 * MB)])
    big = max(drains, key=lambda r: r["hwm"])
    small = min(drains, key=lambda r: r["hwm"])
    rows.append([f"memory during drains: highest VmHWM of the sweep (MB), {big['records']:,} "
                 f"records", f"{big['hwm'] / MB:.1f}", "<= 60, flat",
                 f"lowest: {small['hwm'] / MB:.1f} ({small['records']:,} records)",
                 f"{big['hwm'] / small['hwm']:.2f}x",
                 _ok(big["hwm"] <= 60 * MB and big["hwm"] <= 1.2 * small["hwm"])])
    ing = raw["ingest"]
    rows.append([f"memory, ingest of {ing['readings']:,} readings with the broker down: "
                 "VmHWM / VmRSS after (MB)",
                 f"{ing['hwm'] / MB:.1f} / {ing['rss_after'] / MB:.1f}", "<= 60 peak and after",
                 "", "", _ok(ing["hwm"] <= 60 * MB and ing["rss_after"] <= 60 * MB)])
    rows.append([f"ingest, broker down, {ing['readings']:,} readings from a load sensor: "
                 "agent CPU-s per M", _f(ing["cpu_per_m"], 1), "report", "",
                 f">= {ing['accepted'] / ing['seconds_upper']:,.0f} readings/s", "info"])
    full = [r for r in drains if r["complete"]]
    if full:
        best = max(full, key=lambda r: r["per_record"] * 1e9 + r["readings"])
        rows.append([f"drain CPU-s per M ({best['readings']:,} x {best['per_record']})",
                     _f(best["cpu_per_m"], 1), "report",
                     f"raw paho publisher {_f(paho.get('cpu_per_m'), 1)}",
                     f"{best['cpu_per_m'] / paho['cpu_per_m']:.3f}x"
                     if paho.get("cpu_per_m") else "", "info"])
    srows: list[list[str]] = []
    for s in raw["startup"]:
        srows.append([f"{s['mib']} MiB", _f(s.get("fill", {}).get("readings")),
                      _f(s["cold_s"], 2), _f(s["warm_s"], 2),
                      _f(s.get("cold_cpu_at_ready"), 2), _f(s.get("scanned_s"), 1),
                      _f(s.get("cpu_at_scanned"), 2)])
    worst_start = max(raw["startup"], key=lambda s: s["cold_s"])
    rows.append([f"READY=1 after process start, store {worst_start['mib']} MiB, cold (s)",
                 _f(worst_start["cold_s"], 2), "<= 1",
                 f"empty store {_f(raw['startup'][0]['cold_s'], 2)}",
                 f"{worst_start['cold_s'] / raw['startup'][0]['cold_s']:.1f}x",
                 _ok(all(s["cold_s"] <= 1 and s["warm_s"] <= 1 for s in raw["startup"]))])
    idle = raw["startup"][0]
    if "idle_rss" in idle:
        rows.append(["idle agent, broker down, no sensors: VmRSS (MB), CPU-s per hour",
                     f"{idle['idle_rss'] / MB:.1f}, {idle['idle_cpu_per_hour']:.0f}", "", "",
                     "", "info"])
    out = [markdown_table(HEADERS, rows), "", "Drain sweep (backlog written offline, "
           "then agent + broker + subscriber):", "", markdown_table(DRAIN_HEADERS, drows)]
    if brows:
        out += ["", "Block layer (loop-mounted ext4; the state_dir on it, the metrics textfile "
                "on a tmpfs as the product installs it; broker and subscriber attached):", "",
                markdown_table(BLOCK_HEADERS, brows)]
    elif raw.get("block_skipped"):
        out += ["", f"Block layer: skipped ({raw['block_skipped']})"]
    out += ["", "Startup (process start to READY=1; store of 100-reading records):", "",
            markdown_table(["store", "readings", "cold (s)", "warm (s)", "CPU-s at READY=1",
                            "scan done (s, cold)", "CPU-s at scan done"], srows)]
    if raw["alarms"].get("stages"):
        out += ["", "Where the alarms' time went inside the agent (--trace-alarms, "
                "hil/bench/alarmtrace.py):", "", alarmstages.table(raw["alarms"]["stages"])]
    return "\n".join(out)
