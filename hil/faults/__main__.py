"""``python -m hil.faults [--nightly] [--only NAME] [--out FILE.md]``: every fault scenario,
what was injected, what the consumer saw, one summary table."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hil.common import env_info, markdown_table
from hil.faults import cluster, devices, keyfaults, powerloss, scenarios, storefaults
from hil.faults.rig import HEADERS, Result


def plan(nightly: bool) -> dict[str, Callable[[Path], Result]]:
    return {
        "crash": lambda w: scenarios.crash(w, iterations=200 if nightly else 20),
        "power-loss": lambda w: powerloss.power_loss(w, iterations=2000 if nightly else 200),
        "broker-kill": lambda w: scenarios.broker_kill(w, kills=10 if nightly else 3),
        "broker-refuse": scenarios.broker_refuse,
        "failover": scenarios.failover,
        "network": lambda w: scenarios.network(w, stalls=5 if nightly else 2),
        "disk-full": storefaults.disk_full,
        "disk-full-long": lambda w: storefaults.disk_full_long(
            w, full_for=180.0 if nightly else 20.0),
        "corruption": storefaults.corruption,
        "fsync-failure": storefaults.fsync_failure,
        "clock": storefaults.clock,
        "devices": devices.devices,
        "mqtt3-denial": scenarios.mqtt3_denial,
        "damaged-key": keyfaults.damaged_key,
        "cluster-failover": cluster.cluster_failover,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.faults", description=__doc__)
    ap.add_argument("--nightly", action="store_true", help="many more iterations")
    ap.add_argument("--only", action="append", help="run this scenario (repeatable)")
    ap.add_argument("--out", type=Path, help="also write the summary as markdown here")
    ap.add_argument("--keep", action="store_true", help="keep work directories")
    args = ap.parse_args(argv)
    todo = plan(args.nightly)
    names = args.only or list(todo)
    unknown = [n for n in names if n not in todo]
    if unknown:
        ap.error(f"unknown scenario(s) {unknown}; known: {', '.join(todo)}")
    root = Path(tempfile.mkdtemp(prefix="hil-faults-"))
    logging.basicConfig(filename=root / "rig.log", level=logging.WARNING)
    results: list[Result] = []
    t0 = time.monotonic()
    for name in names:
        t = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            r = todo[name](root / name)
        except Exception as exc:  # a rig failure is a failed scenario, not a crash
            r = Result(name, "?", saw=f"rig error: {exc!r}")
        r.figures["time_s"] = f"{time.monotonic() - t:.0f}"
        results.append(r)
        print(f"   injected: {r.injected}\n   consumer saw: {r.saw}\n   verdict: "
              f"{'PASS' if r.ok else 'FAIL'}", flush=True)
        for n in r.notes:
            print("   note: " + n.replace("\n", "\n         "), flush=True)
    table = markdown_table(HEADERS, [r.row() for r in results])
    head = (f"edge-agent fault injection ({'nightly' if args.nightly else 'default'}), "
            f"{env_info()}, {time.strftime('%Y-%m-%d %H:%M')}, {time.monotonic() - t0:.0f} s")
    print(f"\n{head}\n{table}")
    if args.out:
        args.out.write_text(f"{head}\n\n{table}\n")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"work directories kept in {root}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
