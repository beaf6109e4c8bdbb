"""``python -m hil.bench [--quick] [--out FILE.md]``: the in-process microbenchmarks, one table.

``python -m hil.bench --e2e [--quick | --scale] [--pin-core | --one-core] [--json FILE]``:
the end-to-end set instead (the real agent process, a real mosquitto, an independent
subscriber; see ``e2e.py``). ``--all``: both.

Each figure comes from a fresh child process; baselines run in the same invocation against
the same throwaway mosquitto (never port 1883).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.tools.mosquitto import Mosquitto
from hil.bench.proc import one_core
from hil.common import env_info, markdown_table, run_child


@dataclass(frozen=True)
class Sizes:
    ingest_total: int
    ingest_batch: int
    naive: int
    backlog: int
    backlog_small: int
    paho: int
    alarms: int
    disk_seconds: int
    disk_paced_seconds: int


FULL = Sizes(1_000_000, 10_000, 2_000, 1_000_000, 100_000, 20_000, 200, 30, 10)
QUICK = Sizes(200_000, 10_000, 500, 100_000, 20_000, 5_000, 50, 10, 0)
MB = 1024 * 1024


def _f(x: float, digits: int = 0) -> str:
    return f"{float(x):,.{digits}f}"


def _numbers(figures: dict[str, object]) -> dict[str, float]:
    """The numeric figures of a child's JSON result (ints stay ints; nulls are left out)."""
    return {k: v for k, v in figures.items() if isinstance(v, int | float)}


def run(sizes: Sizes, log: Callable[[str], object] = print
        ) -> tuple[list[list[str]], dict[str, dict[str, object]]]:
    work = Path(tempfile.mkdtemp(prefix="hil-bench-", dir="/var/tmp"))
    raw: dict[str, dict[str, object]] = {}
    rows: list[list[str]] = []

    def child(key: str, module: str, *args: str) -> dict[str, float]:
        """Run a measurement child, keep its raw JSON under ``key``, return its numbers."""
        raw[key] = run_child(module, *args)
        return _numbers(raw[key])

    try:
        with Mosquitto(work / "broker") as broker:
            port = str(broker.port)
            log(f"ingest: {sizes.ingest_total} readings in batches of {sizes.ingest_batch}")
            ing = child("ingest", "hil.bench.ingest", str(sizes.ingest_total),
                        str(sizes.ingest_batch), str(sizes.naive))
            rows.append(["ingest into encrypted store (readings/s)", _f(ing["store"]),
                         ">= 100,000", f"raw SQLite batch {_f(ing['sqlite_batched'])}",
                         f"{ing['store'] / ing['sqlite_batched']:.2f}x; "
                         f"vs naive {_f(ing['sqlite_naive'])}/s: "
                         f"{ing['store'] / ing['sqlite_naive']:.0f}x",
                         _ok(ing["store"] >= 100_000)])

            log(f"fill: backlogs of {sizes.backlog} and {sizes.backlog_small} readings")
            big, small = work / "big", work / "small"
            child("fill", "hil.bench.drain", "fill", str(big), str(sizes.backlog))
            run_child("hil.bench.drain", "fill", str(small), str(sizes.backlog_small))
            log("drain (no subscriber attached)")
            shutil.copytree(big, work / "d1")
            dr = child("drain", "hil.bench.drain", "drain", str(work / "d1"), port)
            shutil.copytree(small, work / "d2")
            drs = child("drain_small", "hil.bench.drain", "drain", str(work / "d2"), port)
            log(f"baseline: raw paho, {sizes.paho} messages")
            pa = child("paho", "hil.bench.drain", "paho", port, str(sizes.paho))
            rows.append([f"drain {sizes.backlog:,} backlog, QoS 1 (readings/s)",
                         _f(dr["rate"]), ">= 100,000",
                         f"raw paho 1 msg/reading {_f(pa['rate'])}",
                         f"{dr['rate'] / pa['rate']:.1f}x", _ok(dr["rate"] >= 100_000)])

            log(f"alarms: {sizes.alarms} x 20 ms during the drain")
            al = child("alarms", "hil.bench.drain", "alarms", str(big), port,
                       str(sizes.alarms), "0.02")
            pal = child("paho_alarms", "hil.bench.drain", "paho-alarms", port,
                        str(sizes.alarms), "0.02")
            rows.append([f"alarm latency p50 / p99 during drain (ms), {al['received']}/"
                         f"{al['alarms']} received", f"{al['p50_ms']:.1f} / {al['p99_ms']:.1f}",
                         "p99 <= 25", f"raw paho idle {pal['p50_ms']:.1f} / {pal['p99_ms']:.1f}",
                         f"p99 {al['p99_ms'] / pal['p99_ms']:.1f}x",
                         _ok(al["p99_ms"] <= 25 and al["received"] == al["alarms"])])

            rows.append([f"VmRSS max during drain, {sizes.backlog:,} backlog (MB)",
                         f"{dr['rss_max'] / MB:.1f} (VmHWM {dr['hwm'] / MB:.1f})", "<= 80",
                         f"{sizes.backlog_small:,} backlog: {drs['rss_max'] / MB:.1f} "
                         f"(VmHWM {drs['hwm'] / MB:.1f})",
                         f"{dr['rss_max'] / drs['rss_max']:.2f}x",
                         _ok(dr["hwm"] <= 80 * MB and dr["rss_max"] <= 1.1 * drs["rss_max"])])

            log(f"disk: {sizes.disk_seconds} s at 100 readings/s")
            dk = child("disk", "hil.bench.diskio", str(sizes.disk_seconds), "0")
            rows.append(["bytes written per reading, 100/s, 1 s commit",
                         f"{dk['store_per_reading']:.1f}", "<= 1.0 x JSON",
                         f"JSON {dk['json_per_reading']:.1f}; naive SQLite "
                         f"{dk['naive_per_reading']:,.0f}",
                         f"{dk['store_per_reading'] / dk['json_per_reading']:.2f}x JSON; "
                         f"{dk['naive_per_reading'] / dk['store_per_reading']:.0f}x less than "
                         "naive",
                         _ok(dk["store_per_reading"] <= dk["json_per_reading"])])
            if sizes.disk_paced_seconds:
                log(f"disk, paced: {sizes.disk_paced_seconds} s of real time")
                dp = child("disk_paced", "hil.bench.diskio",
                           str(sizes.disk_paced_seconds), "1")
                rows.append(["same, paced 1 commit per real second",
                             f"{dp['store_per_reading']:.1f}", "<= 1.0 x JSON",
                             f"JSON {dp['json_per_reading']:.1f}",
                             f"{dp['store_per_reading'] / dp['json_per_reading']:.2f}x JSON",
                             _ok(dp["store_per_reading"] <= dp["json_per_reading"])])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows, raw


def _ok(cond: bool) -> str:
    return "met" if cond else "MISSED"


HEADERS = ["measure", "edge-agent", "target", "baseline (same run)", "ratio", "verdict"]


def _micro(args: argparse.Namespace, log: Callable[[str], object]) -> tuple[str, bool]:
    t = time.monotonic()
    rows, _ = run(QUICK if args.quick else FULL, log=log)
    table = markdown_table(HEADERS, rows)
    head = (f"edge-agent microbenchmarks, in process, not end to end "
            f"({'quick' if args.quick else 'full'}), {env_info()}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}, {time.monotonic() - t:.0f} s")
    return f"{head}\n\n{table}\n", all(r[-1] == "met" for r in rows)


def _e2e(args: argparse.Namespace, log: Callable[[str], object]) -> tuple[str, bool]:
    from hil.bench import e2e, e2e_report

    sizes = e2e.SCALE if args.scale else e2e.QUICK if args.quick else e2e.E2E
    t = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="hil-e2e-", dir="/var/tmp"))
    try:
        raw = e2e.run(sizes, work, log, pin_core=0 if args.pin_core else None,
                      trace=args.trace_alarms)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1) + "\n")
    text = e2e_report.tables(raw)
    kind = "scale" if args.scale else "quick" if args.quick else "default"
    pin = ", agent pinned to core 0" if args.pin_core else ""
    if args.one_core:
        pin += ", everything on one core"
    head = (f"edge-agent end-to-end benchmark ({kind}{pin}), {env_info()}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}, {time.monotonic() - t:.0f} s")
    return f"{head}\n\n{text}\n", "MISSED" not in text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--e2e", action="store_true",
                    help="the end-to-end set (real agent process) instead of the microbenchmarks")
    ap.add_argument("--all", action="store_true", help="microbenchmarks and the end-to-end set")
    ap.add_argument("--scale", action="store_true",
                    help="end to end with the long sizes (1M records, 5M and 10M readings; "
                         "implies --e2e; can take hours)")
    ap.add_argument("--pin-core", action="store_true",
                    help="end to end with the agent pinned to core 0 (taskset -c 0)")
    ap.add_argument("--one-core", action="store_true",
                    help="the bench and everything it starts (agent, mosquitto, subscribers) "
                         "on one core, as on a busy Pi; the same conditions for every point "
                         "while other work holds the other cores")
    ap.add_argument("--trace-alarms", action="store_true",
                    help="end to end: run the alarm rounds' agent under hil/bench/alarmtrace.py "
                         "and report where each alarm's time went, stage by stage")
    ap.add_argument("--out", type=Path, help="also write the tables as markdown here")
    ap.add_argument("--json", type=Path, help="end to end: also write every raw figure here")
    args = ap.parse_args(argv)
    if args.one_core:
        one_core()
    t = time.monotonic()

    def log(m: str) -> None:
        print(f"[{time.monotonic() - t:6.1f}s] {m}", file=sys.stderr, flush=True)

    parts: list[str] = []
    ok = True
    if args.all or not (args.e2e or args.scale or args.pin_core):
        text, good = _micro(args, log)
        parts.append(text)
        ok &= good
    if args.all or args.e2e or args.scale or args.pin_core:
        text, good = _e2e(args, log)
        parts.append(text)
        ok &= good
    out = "\n".join(parts)
    print(out)
    if args.out:
        args.out.write_text(out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
