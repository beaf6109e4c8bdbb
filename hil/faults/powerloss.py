"""Power loss, in-process: what survives is only what was fsynced.

The store runs with an ``fsync`` hook that records, per file (by inode), the content that
was durable at each successful fsync (or fdatasync). At a random sync the power fails: the
post-crash image of every file = its durable content with a random-length prefix of what
was written since, from the first byte that differs (appended or written in place over a
zero tail; sometimes garbled); a file never synced keeps a random prefix (possibly empty).
Directory operations are taken as durable (the store fsyncs its directories).

A new ChannelStore is opened on the image, as in a new boot (the page cache is gone, so
the store must not trust its unsynced ``seq.last`` hint), and checked: it opens; every
range ``append`` returned before the crash is pending or acknowledged (none evicted, not
even reported); sequence numbers are not reused below the highest returned (numbers that
were reserved and maybe handed out are skipped and reported); a garbled tail is reported.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.core.model import Channel, Priority
from edge_agent.store.channel_store import ChannelStore
from edge_agent.store.ranges import RangeSet
from hil.common import readings
from hil.faults.rig import Result


class PowerFailure(Exception):
    pass


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the longest common prefix of ``a`` and ``b``."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class DurableModel:
    """The fsync hook: keeps what the disk would hold after a power failure."""

    def __init__(self, root: Path, fail_at: int, rng: random.Random) -> None:
        self.root = root
        self.durable: dict[int, bytes] = {}  # inode -> bytes at its last fsync
        self.calls = 0
        self.fail_at = fail_at
        self.rng = rng
        self.image: Path | None = None
        self.garbled: list[str] = []

    def fsync(self, fd: int) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            self.image = self.crash_image()
            raise PowerFailure
        os.fsync(fd)
        st = os.fstat(fd)
        path = os.readlink(f"/proc/self/fd/{fd}")
        with open(path, "rb") as f:
            self.durable[st.st_ino] = f.read()

    def crash_image(self) -> Path:
        dest = self.root.parent / "image"
        for dirpath, _dirs, files in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root)
            (dest / rel).mkdir(parents=True, exist_ok=True)
            for name in files:
                src = Path(dirpath) / name
                data = src.read_bytes()
                durable = self.durable.get(src.stat().st_ino)
                old = b"" if durable is None else durable
                if name == "reserve.bin":
                    old = data  # preallocated, content irrelevant
                # Bytes written since the last fsync start where the file first differs
                # from its durable content: appended, or written in place (a segment's
                # records land on its zero tail). A random prefix of them reached the
                # disk; behind it the file keeps its durable bytes (an unsynced truncate,
                # e.g. of a zero tail, is undone).
                at = _common_prefix(old, data)
                extra = data[at:]
                keep = self.rng.randint(0, len(extra)) if extra else 0
                tail = bytearray(extra[:keep])
                if tail and self.rng.random() < 0.3:
                    for _ in range(self.rng.randint(1, 4)):
                        tail[self.rng.randrange(len(tail))] ^= 1 << self.rng.randrange(8)
                    self.garbled.append(str(rel / name))
                (dest / rel / name).write_bytes(data[:at] + bytes(tail) + old[at + keep:])
        return dest


@dataclass
class Outcome:
    returned: RangeSet = field(default_factory=RangeSet)
    lost: int = 0
    evicted: int = 0
    reused: bool = False
    opened: bool = True
    quarantined: int = 0
    skipped: int = 0
    garbled_segments: int = 0
    error: str = ""


def one(work: Path, rng: random.Random, key: bytes) -> Outcome:
    root = work / "store"
    model = DurableModel(root / "ot", fail_at=rng.randint(3, 60), rng=rng)
    store = ChannelStore(root, Channel.OT, key, fsync=model.fsync, segment_bytes=64 * 1024,
                         max_bytes=16 * 1024**2, reserve_bytes=4096)
    out = Outcome()
    acked = RangeSet()
    n = 0
    try:
        while True:
            size = rng.choice((1, 3, 50, 400, 1200))
            prio = Priority.ALARM if rng.random() < 0.15 else Priority.NORMAL
            batch = readings(size, start=n, t0=1.7e9, priority=prio)
            n += size
            for a, b in store.append(batch):
                out.returned.add(a, b)
            if rng.random() < 0.5:
                for bt in store.lease(rng.randint(1, 4)):
                    if rng.random() < 0.8:
                        store.ack(bt.first)
                        acked.add(bt.first, bt.last)
                store.release()
    except Exception as exc:  # the power failed (PowerFailure, maybe wrapped)
        if model.image is None:
            out.error = f"unexpected {exc!r}"
            return out
    finally:
        # The crash image is already a copy: release this process's descriptors and store
        # lock (a real crash would), or a long run exhausts the file descriptor limit.
        with contextlib.suppress(Exception):
            store.close()
    image = model.image
    assert image is not None
    try:
        s2 = ChannelStore(_as_root(image), Channel.OT, key, reserve_bytes=4096,
                          boot_id="after-the-power-cut")
    except Exception as exc:  # the store must always open
        out.opened = False
        out.error = repr(exc)
        return out
    try:
        have = s2.acked_ranges()
        for ranges in (s2.evicted_ranges(), s2.pending_ranges()):
            for a, b in ranges:
                have.add(a, b)
        for a, b in out.returned:
            for x, y in have.gaps(a, b):
                out.lost += y - x + 1
        out.reused = s2.next_seq <= out.returned.max()
        out.quarantined = s2.quarantined
        out.skipped = s2.stats().evicted["skipped"]
        # every pending record must still decrypt (lease() drops an unreadable one as
        # "corrupt"): no returned range may end up evicted, not even reported
        while batches := s2.lease(1000):
            for bt in batches:
                s2.ack(bt.first)
        for a, b in out.returned:
            for x, y in s2.evicted_ranges():
                if y >= a and x <= b:
                    out.evicted += min(b, y) - max(a, x) + 1
        out.garbled_segments = sum(1 for g in model.garbled if g.endswith(".seg"))
    finally:
        s2.close()
        store.abandon()  # the crashed instance is abandoned, as after a power cut
    return out


def _as_root(image: Path) -> Path:
    """ChannelStore wants <root>/<channel>: put the image there."""
    root = image.parent / "reopened"
    shutil.rmtree(root, ignore_errors=True)
    (root).mkdir()
    image.rename(root / "ot")
    return root


def power_loss(work: Path, iterations: int = 50, seed: int | None = None) -> Result:
    rng = random.Random(seed)
    key = secrets.token_bytes(32)
    res = Result("power-loss", f"power cut at a random fsync x{iterations} "
                                "(unsynced tails cut at random, 30% garbled)")
    t0 = time.monotonic()
    lost = evicted = reused = not_opened = quarantined = garbled = accepted = skipped = 0
    errors: list[str] = []
    for i in range(iterations):
        w = work / f"it{i}"
        w.mkdir(parents=True)
        o = one(w, rng, key)
        accepted += sum(b - a + 1 for a, b in o.returned)
        lost += o.lost
        evicted += o.evicted
        reused += o.reused
        not_opened += not o.opened
        quarantined += o.quarantined > 0
        skipped += o.skipped > 0
        garbled += o.garbled_segments > 0
        if o.error:
            errors.append(o.error)
        shutil.rmtree(w, ignore_errors=True)
    res.accepted = accepted
    res.received = accepted - lost
    res.silent_loss = lost
    res.evicted = evicted
    res.ok = lost == 0 and evicted == 0 and reused == 0 and not_opened == 0 and not errors
    res.figures = {"iterations": iterations, "reopen_failed": not_opened, "seq_reused": reused,
                   "garbled_runs": garbled, "quarantine_reported": quarantined,
                   "skip_reported": skipped,
                   "seconds": f"{time.monotonic() - t0:.1f}"}
    res.saw = (f"{accepted} readings returned by append() before the cut; after reopening "
               f"{lost} missing; store opened {iterations - not_opened}/{iterations}; "
               f"{quarantined} runs reported a damaged tail")
    res.notes += errors[:5]
    return res
