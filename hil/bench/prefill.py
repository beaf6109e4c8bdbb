"""Write a backlog into an agent's state dir offline (the agent is not running).

    python -m hil.bench.prefill STATE_DIR READINGS PER_RECORD [SEGMENT_BYTES]
    python -m hil.bench.prefill --bytes STATE_DIR BYTES PER_RECORD [SEGMENT_BYTES]

Readings look like the ``load`` sensor's (``gen/counter``, a counter value, unit count),
times spread over the past. The store is opened the way the fault rig opens it
(``ChannelStore(<state>/store, ot, <state>/keys/ot.key)``); the channel key is created
first if absent, mode 0600, as the agent would. ``PER_RECORD`` is the store's ``batch_max``
here: each stored record holds that many readings, as ``rate x commit_interval`` would
give in the agent. Prints one JSON line: readings, records, bytes on disk, seconds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.security.keys import load_key, load_or_create_key
from edge_agent.store.channel_store import ChannelStore
from hil.common import emit_json

CHUNK = 50_000  # readings per append (one write + fsync each)
MAX_BYTES = 4 * 1024**3


def _readings(start: int, n: int, t0: float) -> list[Reading]:
    return [Reading("gen", Channel.OT, Priority.NORMAL, "counter", float(i), round(
        t0 + i * 0.01, 3), "count") for i in range(start + 1, start + n + 1)]


def fill(state: Path, readings: int | None, per_record: int, segment_bytes: int,
         target_bytes: int | None = None) -> dict[str, float]:
    key_path = state / "keys" / "ot.key"
    key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    load_or_create_key(key_path)
    store = ChannelStore(state / "store", Channel.OT, load_key(key_path), max_bytes=MAX_BYTES,
                         segment_bytes=segment_bytes, batch_max=per_record)
    chunk = max(per_record, CHUNK - CHUNK % per_record)
    t0 = time.time() - 86_400.0
    done = 0
    start = time.perf_counter()
    try:
        while True:
            if readings is not None:
                n = min(chunk, readings - done)
            else:
                assert target_bytes is not None
                n = chunk if store.stats().bytes_on_disk < target_bytes else 0
            if n <= 0:
                break
            store.append(_readings(done, n, t0))
            done += n
        size = store.stats().bytes_on_disk
    finally:
        store.close()
    return {"readings": done, "records": -(-done // per_record), "per_record": per_record,
            "bytes": size, "seconds": time.perf_counter() - start}


def main(argv: list[str]) -> None:
    by_bytes = argv[:1] == ["--bytes"]
    if by_bytes:
        argv = argv[1:]
    state, amount, per_record = Path(argv[0]), int(argv[1]), int(argv[2])
    segment = int(argv[3]) if len(argv) > 3 else 4 * 1024**2
    if by_bytes:
        emit_json(fill(state, None, per_record, segment, target_bytes=amount))
    else:
        emit_json(fill(state, amount, per_record, segment))


if __name__ == "__main__":
    main(sys.argv[1:])
