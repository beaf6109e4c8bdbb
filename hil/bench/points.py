"""Single end-to-end points, one at a time (each reports the load average it ran at).

    python -m hil.bench.points drain READINGS PER_RECORD [--cap S] [--pin-core] [--template DIR]
    python -m hil.bench.points alarms [--alarms N] [--rounds N] [--backlog N] [--trace]
                                      [--drain-rate 8MB] [--pin-core]

``drain``: ``e2e.drain_point`` (rate at the subscriber, agent CPU-s per million, the
subscriber's CPU); ``--template DIR`` drains a copy of a backlog written beforehand with
``python -m hil.bench.prefill DIR READINGS PER_RECORD`` (the fill is not timed). Everything
on one core, as on a busy Pi: ``--one-core`` (the agent, the broker and the subscriber
inherit the bench's affinity).

``alarms``: ``e2e.alarms_during_drain``; ``--trace`` runs the agent under
``alarmtrace.py`` and prints where the alarms' time went, stage by stage. Prints a JSON
summary on stdout (``--json FILE``: every raw figure).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hil.bench import alarmstages, e2e
from hil.bench.proc import one_core


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.bench.points", description=__doc__)
    ap.add_argument("what", choices=("drain", "alarms"))
    ap.add_argument("readings", type=int, nargs="?", default=1_000_000)
    ap.add_argument("per_record", type=int, nargs="?", default=100)
    ap.add_argument("--cap", type=float, default=900.0)
    ap.add_argument("--alarms", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--backlog", type=int, default=1_000_000)
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--drain-rate", default="", help="the channel's drain_rate, e.g. 8MB")
    ap.add_argument("--pin-core", action="store_true")
    ap.add_argument("--one-core", action="store_true",
                    help="everything (agent, mosquitto, subscribers) on one core")
    ap.add_argument("--template", type=Path, help="drain: a copy of this prefilled state dir")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.one_core:
        one_core()
    work = Path(tempfile.mkdtemp(prefix="hil-bench-point-", dir="/var/tmp"))
    b = e2e.Bench(work, lambda m: print(m, file=sys.stderr, flush=True),
                  0 if args.pin_core else None, trace=args.trace)
    try:
        raw: dict[str, Any]
        if args.what == "drain":
            raw = e2e.drain_point(b, args.readings, args.per_record, args.cap,
                                  template=args.template, drain_rate=args.drain_rate)
            raw.pop("alarm_samples", None)
            raw.pop("alarm_only_samples", None)
            summary = {k: raw.get(k) for k in ("readings", "per_record", "records", "rate",
                                               "complete", "cpu_per_m", "agent_cpu",
                                               "sub_cpu", "hwm", "ready_s", "duplicates",
                                               "bad")}
        else:
            sizes = e2e.E2ESizes(drain=(), drain_cap=0, paho=0, alarms=args.alarms,
                                 alarm_backlog=args.backlog, alarm_rounds=args.rounds,
                                 block_points=(), block_seconds=0, burst=0, ingest=0,
                                 startup_mib=())
            raw = e2e.alarms_during_drain(b, sizes, args.drain_rate)
            summary = {k: raw[k] for k in ("alarms", "p50_ms", "p99_ms", "max_ms",
                                           "alarm_only", "rounds")}
            if raw["stages"]:
                print(alarmstages.table(raw["stages"]), file=sys.stderr)
                queued = sorted(r["queued_bytes"] for r in raw["traced"] if "queued_bytes" in r)
                if queued:
                    summary["paho_queued_bytes_p50_max"] = [queued[len(queued) // 2],
                                                            queued[-1]]
        summary["drain_rate"] = args.drain_rate
        summary["load"] = os.getloadavg()
        summary["pin_core"] = args.pin_core
        summary["one_core"] = args.one_core
        print(json.dumps(summary, indent=1, default=str))
        if args.json:
            args.json.write_text(json.dumps(raw, indent=1, default=str))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
