"""Which period keys a channel store still needs: the key ids in its segment files.

``edge-agent keys prune`` keeps every period key a buffered record was sealed with.
Only record headers are read (no key needed); a damaged header is skipped to the next
record magic.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.store import record as rec


def key_ids_in_use(store_dir: Path) -> set[int]:
    """Key ids of every record still in a channel store's segment files (headers only)."""
    used: set[int] = set()
    for seg in store_dir.glob("lane-*/*.seg"):
        try:
            with open(seg, "rb") as f:
                data = f.read()
        except OSError:
            continue
        off = 0
        while off + rec.HEAD_SIZE <= len(data):
            try:
                head = rec.parse_header(data[off:off + rec.HEAD_SIZE])
            except rec.RecordCorrupt:
                nxt = data.find(rec.MAGIC, off + 1)
                if nxt < 0:
                    break
                off = nxt
                continue
            used.add(head.key_id)
            off += head.size
    return used
