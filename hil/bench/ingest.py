"""Ingest throughput: ChannelStore.append vs a raw SQLite insert vs a naive row-per-commit buffer.

Readings are created before the timed loop (the figure is the store's cost, not the cost of
building Reading objects). Each batch is one ``append`` = one durable commit (write + fsync).

    python -m hil.bench.ingest TOTAL BATCH NAIVE_COUNT   (prints one JSON line)

``store_cpu_s_per_m`` is the process's CPU time (user + system) over the store's timed
loop, per million readings: the figure to compare between machines (docs: NOTES.md, "A Pi
3/4 figure from CPU-seconds"), since the readings/s figure also holds the fsync waits.
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from edge_agent.core.model import Channel
from edge_agent.store.channel_store import ChannelStore
from hil.common import emit_json, readings


def store_ingest(workdir: Path, total: int, batch: int) -> tuple[float, float]:
    """Readings/s through ``ChannelStore.append``, and CPU-s per million readings."""
    batches = [readings(batch, start=i * batch) for i in range(total // batch)]
    store = ChannelStore(workdir / "store", Channel.OT, secrets.token_bytes(32),
                         max_bytes=4 * 1024**3, segment_bytes=16 * 1024**2)
    try:
        store.append(readings(10))  # warm-up: directories, reserve file, first hwm
        t = time.perf_counter()
        cpu = time.process_time()
        for b in batches:
            store.append(b)
        dt = time.perf_counter() - t
        dcpu = time.process_time() - cpu
    finally:
        store.close()
    n = sum(len(b) for b in batches)
    return n / dt, dcpu / n * 1e6


def _sqlite(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE buf (seq INTEGER PRIMARY KEY, sensor TEXT, name TEXT, "
               "value REAL, time REAL, unit TEXT)")
    return db


def sqlite_batched(workdir: Path, total: int, batch: int) -> float:
    """One executemany + one commit per batch, typed columns (no JSON, no crypto)."""
    rows = [[(r.sensor, r.name, r.value, r.time, r.unit) for r in readings(batch, i * batch)]
            for i in range(total // batch)]
    db = _sqlite(workdir / "batched.db")
    try:
        t = time.perf_counter()
        for b in rows:
            db.execute("BEGIN")
            db.executemany("INSERT INTO buf (sensor, name, value, time, unit) "
                           "VALUES (?, ?, ?, ?, ?)", b)
            db.execute("COMMIT")
        dt = time.perf_counter() - t
    finally:
        db.close()
    return sum(len(b) for b in rows) / dt


def sqlite_naive(workdir: Path, count: int) -> float:
    """One row and one commit per reading."""
    rows = [(r.sensor, r.name, r.value, r.time, r.unit) for r in readings(count)]
    db = _sqlite(workdir / "naive.db")
    try:
        t = time.perf_counter()
        for row in rows:
            db.execute("INSERT INTO buf (sensor, name, value, time, unit) "
                       "VALUES (?, ?, ?, ?, ?)", row)
        dt = time.perf_counter() - t
    finally:
        db.close()
    return count / dt


def main(argv: list[str]) -> None:
    total, batch, naive = (int(a) for a in argv[:3])
    workdir = Path(tempfile.mkdtemp(prefix="hil-ingest-"))
    try:
        rate, cpu_per_m = store_ingest(workdir, total, batch)
        emit_json({"store": rate, "store_cpu_s_per_m": cpu_per_m,
                   "sqlite_batched": sqlite_batched(workdir, total, batch),
                   "sqlite_naive": sqlite_naive(workdir, naive),
                   "total": total, "batch": batch, "naive_count": naive})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
