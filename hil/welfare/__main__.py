"""``python -m hil.welfare [--months N] [--seed S]``: simulated resident-months through the
welfare rules; prints detections, latencies and false cautions/alarms, exit 1 on a miss."""

from __future__ import annotations

import argparse
import sys
import time

from .evaluate import evaluate, table, targets_met


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hil.welfare", description=__doc__)
    p.add_argument("--months", type=int, default=6,
                   help="resident-months with incidents, and as many without (default 6)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
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
