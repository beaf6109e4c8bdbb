"""Microbenchmark (not end to end): ``ChannelStore.lease``/``ack`` throughput by backlog size.

    python -m hil.bench.lease [--seconds S] [--window W] [N ...]

For each N (default 25k, 100k, 400k, 1M) a fresh store is filled with N one-reading records
(the worst case for the index: one entry per reading; the fill is not timed and does not
fsync), then drained the way the uplink drains it: ``lease(W)``, ``ack`` each batch, again,
for up to S seconds or until the backlog is empty. Meanwhile another thread commits one
alarm every 5 ms and times ``append`` (write + fsync of one record), so a lease that holds
the store lock shows up as alarm commit latency; the baseline is the same alarm commits on
the same store for 1 s before the drain starts. No broker, no network: this isolates the
store's delivery cost from paho and mosquitto (``python -m hil.bench`` measures those).

Prints a table and, with ``--json``, one JSON object per size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.store.channel_store import ChannelStore
from hil.common import markdown_table, readings

DEFAULT_SIZES = (25_000, 100_000, 400_000, 1_000_000)
FILL_CHUNK = 20_000


def _no_fsync(fd: int) -> None:
    pass


def fill(root: Path, n: int) -> None:
    store = ChannelStore(root, Channel.OT, bytes(32), batch_max=1, max_bytes=8 * 1024**3,
                         fsync=_no_fsync, reserve_bytes=0)
    try:
        t0 = time.time()
        for i in range(0, n, FILL_CHUNK):
            store.append(readings(min(FILL_CHUNK, n - i), start=i, t0=t0))
    finally:
        store.close()


def drain(root: Path, seconds: float, window: int) -> dict[str, float]:
    store = ChannelStore(root, Channel.OT, bytes(32), batch_max=1, max_bytes=8 * 1024**3,
                         reserve_bytes=0)
    stop = threading.Event()
    latencies: list[float] = []

    def alarms() -> None:
        i = 0
        while not stop.wait(0.005):
            r = Reading("sos", Channel.OT, Priority.ALARM, "pressed", True, time.time())
            t = time.perf_counter()
            store.append([r])
            latencies.append(time.perf_counter() - t)
            i += 1

    backlog = store.stats().backlog_records
    # baseline, same store, same run: alarm commits while nothing drains
    alarm_thread = threading.Thread(target=alarms, daemon=True)
    alarm_thread.start()
    time.sleep(1.0)
    stop.set()
    alarm_thread.join(5)
    idle = sorted(latencies) or [0.0]
    latencies.clear()
    stop.clear()
    alarm_thread = threading.Thread(target=alarms, daemon=True)
    alarm_thread.start()
    done = 0
    leases = 0
    slowest = 0.0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    deadline = t0 + seconds
    try:
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            batches = store.lease(window, lanes=(Priority.NORMAL, Priority.BULK))
            slowest = max(slowest, time.perf_counter() - t)
            if not batches:
                break
            leases += 1
            for b in batches:
                store.ack(b.first)
            done += len(batches)
    finally:
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        stop.set()
        alarm_thread.join(5)
        store.close()
    lat = sorted(latencies) or [0.0]
    return {"records": backlog, "acked": done, "seconds": round(elapsed, 3),
            "rate": round(done / elapsed, 1), "leases": leases,
            "lease_max_ms": round(slowest * 1000, 2),
            "cpu_us_per_record": round(cpu / max(done, 1) * 1e6, 1),
            "alarm_commits": len(latencies),
            "alarm_p50_ms": round(statistics.median(lat) * 1000, 2),
            "alarm_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 2),
            "alarm_max_ms": round(lat[-1] * 1000, 2),
            "alarm_idle_p99_ms": round(idle[min(len(idle) - 1, int(len(idle) * 0.99))] * 1000,
                                       2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.bench.lease", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sizes", nargs="*", type=int, default=list(DEFAULT_SIZES))
    ap.add_argument("--seconds", type=float, default=5.0, help="drain time per size")
    ap.add_argument("--window", type=int, default=8, help="records per lease")
    ap.add_argument("--json", action="store_true", help="one JSON object per size")
    args = ap.parse_args(argv)
    rows: list[list[str]] = []
    for n in args.sizes:
        work = Path(tempfile.mkdtemp(prefix="hil-lease-", dir="/var/tmp"))
        try:
            fill(work, n)
            res = drain(work, args.seconds, args.window)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if args.json:
            print(json.dumps(res), flush=True)
        rows.append([f"{n:,}", f"{res['rate']:,.0f}", f"{res['acked']:,}",
                     f"{res['lease_max_ms']:.1f}", f"{res['cpu_us_per_record']:.0f}",
                     f"{res['alarm_p99_ms']:.1f} / {res['alarm_max_ms']:.1f}",
                     f"{res['alarm_idle_p99_ms']:.1f}"])
    print(f"lease/ack microbenchmark (store only, no broker), window {args.window}, "
          f"{args.seconds:g} s per size, pid {os.getpid()}")
    print(markdown_table(["records (1 reading each)", "records acked/s", "acked",
                          "slowest lease (ms)", "CPU us/record",
                          "alarm commit p99 / max (ms)", "same, no drain: p99 (ms)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
