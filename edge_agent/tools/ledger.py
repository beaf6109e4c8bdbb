"""What the platform has received, per node and channel: delivered sequence ranges, the
ranges the node explained in its health messages, and the gaps that are left.

No I/O: the ingest process (ingest.py) feeds it envelopes and health messages; several
ingest processes sharing one subscription each keep their own ledger and the reports are
merged (``Ledger.merge``), since each process sees only its share of every node's messages.

A gap is classified as

- ``evicted:<reason>`` — the node reported it evicted by policy (size, retention, corrupt,
  skipped, shredded, rejected) in ``store.evicted_ranges``, or dropped from its
  dead letters (``store.dead_dropped_ranges``, reason ``dead-dropped``);
- ``pending`` — not received yet, but the node's last health message (or none yet) says it
  still holds a backlog, or that health message is older than the gap: it may still come;
- ``loss`` — not received and not explained, although a health message sent after the gap
  was first seen says the node's backlog is empty. This is what the platform alarms on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge_agent.store.ranges import RangeSet

Key = str  # a channel's topic prefix (edge/<site>/<node>/<channel>): one per node channel


@dataclass
class Gap:
    first: int
    last: int
    kind: str  # "evicted:<reason>" | "pending" | "loss"
    since: float | None = None  # pending/loss: when first seen missing (ledger time)

    def to_json(self) -> list[Any]:
        return [self.first, self.last, self.kind, self.since]


@dataclass
class Stream:
    """One node's channel, as seen by this ledger."""

    delivered: RangeSet = field(default_factory=RangeSet)
    explained: dict[str, RangeSet] = field(default_factory=dict)  # reason -> ranges
    readings: int = 0  # new readings (duplicates not counted)
    duplicates: int = 0  # readings delivered again (at-least-once)
    messages: int = 0
    backlog: int | None = None  # readings the node still holds, from its last health
    health_time: float | None = None  # node clock of that health message
    top: int = 0  # highest accepted seq the node reported (next_seq - 1)
    # unexplained gaps and when they were first seen missing: (first, last, since)
    seen_missing: list[tuple[int, int, float]] = field(default_factory=list)


class LedgerError(ValueError):
    """A report to merge is not a ledger report (the message says where)."""


class Ledger:
    def __init__(self) -> None:
        self.streams: dict[Key, Stream] = {}

    def stream(self, key: Key) -> Stream:
        st = self.streams.get(key)
        if st is None:
            st = self.streams[key] = Stream()
        return st

    # ------------------------------------------------------------------ feeding

    def deliver(self, key: Key, first: int, last: int) -> bool:
        """A data message with seq ``first..last``. False when every reading in it was
        delivered before (a duplicate the consumer should drop)."""
        if last < first or first < 1:
            raise ValueError(f"seq [{first}, {last}] is not a range of sequence numbers")
        st = self.stream(key)
        st.messages += 1
        n = last - first + 1
        if st.delivered.covers(first, last):
            st.duplicates += n
            return False
        new = _count_new(st.delivered, first, last)
        st.duplicates += n - new
        st.readings += new
        st.delivered.add(first, last)
        return True

    def health(self, key: Key, msg: dict[str, Any]) -> None:
        """A node's health message: its evicted ranges, its backlog, its top."""
        st = self.stream(key)
        store = msg.get("store") or {}
        for a, b, why in store.get("evicted_ranges") or []:
            st.explained.setdefault(str(why), RangeSet()).add(int(a), int(b))
        for a, b in store.get("dead_dropped_ranges") or []:
            st.explained.setdefault("dead-dropped", RangeSet()).add(int(a), int(b))
        backlog = store.get("backlog")
        if isinstance(backlog, dict):
            st.backlog = sum(int(v) for v in backlog.values())
        if isinstance(store.get("next_seq"), int):
            st.top = max(st.top, int(store["next_seq"]) - 1)
        t = msg.get("time")
        st.health_time = float(t) if isinstance(t, int | float) else st.health_time

    # ------------------------------------------------------------------ judging

    def gaps(self, key: Key, now: float) -> list[Gap]:
        """Gaps in ``1..top`` (top: the node's own count, or the highest received), each
        split into explained and unexplained parts. ``now`` is the node-clock time of this
        judgement's view (the caller's wall time); it dates newly seen gaps."""
        st = self.stream(key)
        top = max(st.top, st.delivered.max())
        out: list[Gap] = []
        still: list[tuple[int, int, float]] = []
        for a, b in st.delivered.gaps(1, top) if top else []:
            rest = RangeSet([(a, b)])
            for why, rs in sorted(st.explained.items()):
                for x, y in rs:
                    lo, hi = max(a, x), min(b, y)
                    if lo <= hi:
                        out.append(Gap(lo, hi, f"evicted:{why}"))
                        rest = _subtract(rest, lo, hi)
            for x, y in rest:
                # a gap that shrank as data came in keeps the date it was first seen
                since = min((s for a2, b2, s in st.seen_missing if a2 <= y and x <= b2),
                            default=now)
                still.append((x, y, since))
                lost = (st.backlog == 0 and st.health_time is not None
                        and st.health_time > since)
                out.append(Gap(x, y, "loss" if lost else "pending", since))
        st.seen_missing = still
        return sorted(out, key=lambda g: g.first)

    def report(self, now: float) -> dict[str, Any]:
        """Everything, JSON-ready: what one process saw (merge several with ``merge``)."""
        out: dict[str, Any] = {}
        for key, st in sorted(self.streams.items()):
            out[key] = {
                "delivered": [list(r) for r in st.delivered],
                "explained": {k: [list(r) for r in v] for k, v in st.explained.items()},
                "readings": st.readings, "duplicates": st.duplicates,
                "messages": st.messages, "backlog": st.backlog,
                "health_time": st.health_time, "top": st.top,
                "gaps": [g.to_json() for g in self.gaps(key, now)]}
        return out

    @classmethod
    def merge(cls, reports: list[dict[str, Any]]) -> Ledger:
        """One ledger from the reports of every process sharing a subscription."""
        led = cls()
        for i, rep in enumerate(reports):
            if not isinstance(rep, dict):
                raise LedgerError(f"report {i}: not a JSON object")
            for name, s in rep.items():
                if not isinstance(s, dict):
                    raise LedgerError(f"report {i}: {name!r} is not a stream's record")
                st = led.stream(name)
                for a, b in s.get("delivered", []):
                    st.duplicates += _overlap(st.delivered, a, b)
                    st.delivered.add(a, b)
                for why, rs in (s.get("explained") or {}).items():
                    for a, b in rs:
                        st.explained.setdefault(why, RangeSet()).add(a, b)
                st.duplicates += int(s.get("duplicates", 0))
                st.messages += int(s.get("messages", 0))
                st.top = max(st.top, int(s.get("top", 0)))
                ht = s.get("health_time")
                if ht is not None and (st.health_time is None or ht >= st.health_time):
                    st.health_time, st.backlog = float(ht), s.get("backlog")
                for g in s.get("gaps", []):
                    if len(g) == 4 and g[2] in ("pending", "loss") and g[3] is not None:
                        st.seen_missing.append((int(g[0]), int(g[1]), float(g[3])))
        for st in led.streams.values():
            st.readings = st.delivered.count()
        return led


def _count_new(rs: RangeSet, first: int, last: int) -> int:
    return sum(b - a + 1 for a, b in rs.gaps(first, last))


def _overlap(rs: RangeSet, first: int, last: int) -> int:
    return (last - first + 1) - _count_new(rs, first, last)


def _subtract(rs: RangeSet, lo: int, hi: int) -> RangeSet:
    out = RangeSet()
    for a, b in rs:
        if b < lo or a > hi:
            out.add(a, b)
            continue
        out.add(a, lo - 1)
        out.add(hi + 1, b)
    return out
