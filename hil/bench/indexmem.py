"""Microbenchmark: memory the store keeps per pending record (tracemalloc).

    python -m hil.bench.indexmem [RECORDS] [--store]

Default: ``RECORDS`` one-reading records added to a ``DeliveryIndex`` the way the writer
adds them (segments of 4 MiB of ~110-byte records, i.e. about 38,000 records each); prints
the traced bytes still held after the adds, per record. With ``--store``: a store of
``RECORDS`` one-reading records is written offline, then opened and fully scanned
(``ChannelStore(...)``, which runs ``recover``), and the bytes held by the open store
(index, journals, segments) are divided by its pending records. A microbenchmark of the
index, not of the agent: the agent's VmHWM per drain point is in ``e2e.py``.
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
    seg = Segment(Priority.NORMAL, 1, Path("/nonexistent"), 0)
    for i in range(n):
        if i and i % PER_SEGMENT == 0:
            seg = Segment(Priority.NORMAL, i + 1, Path("/nonexistent"), 0)
        idx.add(RecordRef(Priority.NORMAL, i + 1, 1, 1.7e9 + i, seg,
                          (i % PER_SEGMENT) * RECORD_BYTES, RECORD_BYTES))
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(idx) == n
    return {"records": n, "bytes_per_record": held / n}


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
    emit_json(store_open(n) if "--store" in argv else index_only(n))


if __name__ == "__main__":
    main(sys.argv[1:])
