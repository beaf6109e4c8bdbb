"""Microbenchmark: memory the store keeps per pending record (tracemalloc), and the
index's CPU per record.

    python -m hil.bench.indexmem [RECORDS] [--store | --cpu]

Default: ``RECORDS`` one-reading records added to a ``DeliveryIndex`` the way the writer
adds them (segments of 4 MiB of ~110-byte records, i.e. about 38,000 records each); prints
the traced bytes still held after the adds, per record. With ``--store``: a store of
``RECORDS`` one-reading records is written offline, then opened and fully scanned
(``ChannelStore(...)``, which runs ``recover``), and the bytes held by the open store
(index, journals, segments) are divided by its pending records. A microbenchmark of the
index, not of the agent: the agent's VmHWM per drain point is in ``e2e.py``. With
``--cpu``: CPU-us per record to add ``RECORDS`` records, then to lease them in runs (8
runs of up to 500 readings, as the uplink does) and remove each, as acks do (no tracemalloc).
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.store.channel_store import ChannelStore
from edge_agent.store.delivery import DeliveryIndex
from edge_agent.store.segments import RecordRef, Segment
from hil.common import emit_json

RECORD_BYTES = 110  # a sealed one-reading record
PER_SEGMENT = 4 * 1024 * 1024 // RECORD_BYTES


def index_only(n: int) -> dict[str, float]:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    idx = DeliveryIndex()
    _fill(idx, n)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(idx) == n
    return {"records": n, "bytes_per_record": held / n}


def _fill(idx: DeliveryIndex, n: int) -> None:
    seg = Segment(Priority.NORMAL, 1, Path("/nonexistent"), 0)
    for i in range(n):
        if i and i % PER_SEGMENT == 0:
            seg = Segment(Priority.NORMAL, i + 1, Path("/nonexistent"), 0)
        idx.add(RecordRef(Priority.NORMAL, i + 1, 1, 1.7e9 + i, seg,
                          (i % PER_SEGMENT) * RECORD_BYTES, RECORD_BYTES))


def index_cpu(n: int) -> dict[str, float]:
    idx = DeliveryIndex()
    t0 = time.process_time()
    _fill(idx, n)
    t1 = time.process_time()
    while runs := idx.lease_runs(8, (0, 1, 2), 500, 256 * 1024):
        for run in runs:
            for ref in run:
                idx.remove(ref.first)
    t2 = time.process_time()
    assert len(idx) == 0
    return {"records": n, "add_us_per_record": (t1 - t0) / n * 1e6,
            "lease_remove_us_per_record": (t2 - t1) / n * 1e6}


def store_open(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        s = ChannelStore(root, Channel.OT, bytes(32), batch_max=1, max_bytes=4 * 1024**3,
                         reserve_bytes=0)
        for start in range(0, n, 50_000):
            k = min(50_000, n - start)
            s.append([Reading("gen", Channel.OT, Priority.NORMAL, "counter", float(i),
                              1.7e9 + i, "count") for i in range(start, start + k)])
        s.close()
        del s
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        s = ChannelStore(root, Channel.OT, bytes(32), batch_max=1, max_bytes=4 * 1024**3,
                         reserve_bytes=0)
        took = time.perf_counter() - t0
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        records = s.stats().backlog_records
        s.close()
    return {"records": records, "bytes_per_record": (held - base) / records,
            "peak_mb_while_opening": (peak - base) / 1e6,
            "open_s_under_tracemalloc": took}


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    n = int(args[0]) if args else 1_000_000
    if "--store" in argv:
        emit_json(store_open(n))
    elif "--cpu" in argv:
        emit_json(index_cpu(n))
    else:
        emit_json(index_only(n))


if __name__ == "__main__":
    main(sys.argv[1:])
