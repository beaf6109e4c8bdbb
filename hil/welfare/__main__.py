"""``python -m hil.welfare [--months N] [--seed S]``: simulated resident-months through the
welfare rules; prints detections, latencies and false cautions/alarms, exit 1 on a miss."""

from __future__ import annotations

import argparse
import sys
import time

import msgspec

from .evaluate import evaluate, table, targets_met
from .household import month


def write_jsonl(path: str, seed: int) -> int:
    m = month(seed, incidents=True, period=5.0)
    enc = msgspec.json.Encoder()
    with open(path, "wb") as f:
        for t, sensor, name, v, synced in m.readings:
            rec: dict[str, object] = {"t": round(t, 3), "sensor": sensor, "name": name, "v": v}
            if not synced:
                rec["clock_"] = "unsynced"
            f.write(enc.encode(rec) + b"\n")
    print(f"{path}: {len(m.readings):,} readings, 30 days; incidents:")
    for i in m.incidents:
        print(f"  {i.kind} at {i.start:.0f} (window from {i.reference:.0f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hil.welfare", description=__doc__)
    p.add_argument("--months", type=int, default=6,
                   help="resident-months with incidents, and as many without (default 6)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jsonl", metavar="FILE", default=None,
                   help="instead: write one busy month (meter and bed radar every 5 s, with "
                        "incidents) as edge-agent replay input, and exit")
    args = p.parse_args(argv)
    if args.jsonl:
        return write_jsonl(args.jsonl, args.seed)
    started = time.perf_counter()
    sc = evaluate(args.months, args.seed)
    took = time.perf_counter() - started
    print(table(sc))
    print(f"\n{2 * args.months} resident-months (seed {args.seed}) in {took:.1f}s")
    missed = targets_met(sc)
    for m in missed:
        print(f"MISSED: {m}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
