"""Bytes written to disk per accepted reading at 100 readings/s with a 1 s commit interval.

The store gets one 100-reading batch per simulated second (one append = one write + fsync),
as the writer does at that rate. /proc/self/io ``write_bytes`` counts pages this process
dirties in the page cache; after each fsync the tail page is clean again and the next
commit dirties it anew. So the count depends on the sequence of commits, not on the wall
time between them: driving the commits back to back (``pace`` = 0) gives the same figure as
one per real second (``pace`` = 1), which is what ``python -m hil.bench.diskio SECONDS 1``
shows. The baseline is a naive SQLite buffer (WAL, synchronous=FULL, one row + one commit
per reading) fed the same readings.

    python -m hil.bench.diskio SECONDS PACE   (prints one JSON line)
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from edge_agent.core.model import Channel
from edge_agent.store.channel_store import ChannelStore
from hil.common import emit_json, readings, write_bytes

RATE = 100


def main(argv: list[str]) -> None:
    seconds, pace = int(argv[0]), float(argv[1])
    workdir = Path(tempfile.mkdtemp(prefix="hil-diskio-", dir="/var/tmp"))
    try:
        t0 = time.time()
        batches = [readings(RATE, start=i * RATE, t0=t0) for i in range(seconds)]
        json_size = sum(len(msgspec.json.encode(r.senml())) for b in batches for r in b)
        n = seconds * RATE
        store = ChannelStore(workdir / "store", Channel.OT, secrets.token_bytes(32))
        store.append(readings(1))  # directories, reserve file, seq.hwm: one-off set-up
        before = write_bytes()
        start = time.monotonic()
        for i, b in enumerate(batches):
            store.append(b)
            if pace:
                time.sleep(max(0.0, start + (i + 1) * pace - time.monotonic()))
        store_bytes = write_bytes() - before
        on_disk = store.stats().bytes_on_disk
        store.close()

        db = sqlite3.connect(workdir / "naive.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE buf (seq INTEGER PRIMARY KEY, sensor TEXT, name TEXT, "
                   "value REAL, time REAL, unit TEXT)")
        before = write_bytes()
        for b in batches:
            for r in b:
                db.execute("INSERT INTO buf (sensor, name, value, time, unit) "
                           "VALUES (?, ?, ?, ?, ?)", (r.sensor, r.name, r.value, r.time, r.unit))
        naive_bytes = write_bytes() - before
        db.close()
        emit_json({"readings": n, "json_per_reading": json_size / n,
                   "store_per_reading": store_bytes / n, "store_file_bytes_per_reading":
                   on_disk / n, "naive_per_reading": naive_bytes / n, "pace": pace})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
