"""How many bytes reach the block device per durable commit, for each way of writing a
segment: a microbenchmark of the file system alone (no agent, no store code).

    python -m hil.bench.segwrite [--commits 30] [--interval 1.0] [--write 1500] [--size-mib 4]

Each variant gets its own fresh loop-mounted ext4 image (``loopfs.py``, noatime; all run at
the same time, so they share the machine's load) and writes ``--write`` bytes per commit,
``--interval`` seconds apart, as a lane's writer does at one commit per interval:

- ``append+fsync``: ``O_APPEND`` write + fsync (the segment format before 0014);
- ``append+fdatasync``: the same with fdatasync (the size still changes every commit);
- ``zeros+fdatasync``: the file written full of zeros when created (fdatasync), then each
  commit a pwrite at the end of the data + fdatasync (what the store does now);
  ``zeros+fsync`` the same with fsync (which also writes the inode's new mtime);
- ``posix_fallocate+fdatasync``: the file allocated with ``posix_fallocate`` (unwritten
  extents on ext4), then pwrite + fdatasync;
- ``zero_range+fdatasync``: allocated with ``fallocate(FALLOC_FL_ZERO_RANGE)``, then the same;
- ``zeros +seq.last``, ``zeros +seq.last +acked.log``: ``zeros+fdatasync`` and, per commit,
  what the store writes beside it without a sync: the 12-byte ``seq.last`` hint (pwrite at
  0) and a 21-byte ``acked.log`` entry (append; the uplink's ack of the previous commit);
- ``... lazytime``: the same with the file system mounted ``noatime,lazytime`` (timestamps
  kept in memory: an overwrite no longer dirties the inode);
- ``zeros+sectors+fdatasync``: ``zeros+fdatasync`` with each commit written as whole
  sectors with ``O_DIRECT`` by the store's own ``SectorWriter`` (docs/design/0018).

Reported per variant: bytes written to the device by creating the file (after a sync), and
per commit in the steady part (sectors of ``/sys/block/loopN/stat`` over the commits, with a
final ``sync -f``), and the creation cost spread over the commits a segment holds.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.store.sectors import SectorWriter, tail_after
from hil.bench.loopfs import LoopFS

FALLOC_FL_ZERO_RANGE = 0x10
CHUNK = 1024 * 1024


def _fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fn = libc.fallocate
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    if fn(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _zeros(fd: int, size: int) -> None:
    zero = bytes(CHUNK)
    for off in range(0, size, CHUNK):
        os.pwrite(fd, zero[:min(CHUNK, size - off)], off)
    os.fdatasync(fd)


def _create(kind: str, path: Path, size: int) -> tuple[int, bool]:
    """(fd, in place) for a new segment file of this kind."""
    if kind.startswith("append"):
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                       0o600), False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    if kind.startswith("zeros"):
        _zeros(fd, size)
    elif kind.startswith("posix_fallocate"):
        os.posix_fallocate(fd, 0, size)
        os.fsync(fd)
    elif kind.startswith("zero_range"):
        _fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, size)
        os.fsync(fd)
    return fd, True


VARIANTS = ("append+fsync", "append+fdatasync", "zeros+fsync", "zeros+fdatasync",
            "posix_fallocate+fdatasync", "zero_range+fdatasync", "zeros +seq.last",
            "zeros +seq.last +acked.log", "zeros+fdatasync lazytime",
            "zeros +seq.last +acked.log lazytime", "zeros+sectors+fdatasync")


def measure(kind: str, work: Path, commits: int, interval: float, write: int,
            size: int, block_size: int | None = None) -> dict[str, Any]:
    d = work / kind.replace("+", "_").replace(" ", "_")
    d.mkdir()
    opts = "noatime,lazytime" if kind.endswith("lazytime") else "noatime"
    with LoopFS(d / "fs.img", d / "mnt", size_mb=256, options=opts,
                block_size=block_size) as fs:
        hint = os.open(fs.mount / "seq.last", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        acks = os.open(fs.mount / "acked.log",
                       os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fs.sync()
        b0 = fs.bytes_written()
        fd, in_place = _create(kind, fs.mount / "seg", size)
        fs.sync()
        b1 = fs.bytes_written()
        sync: Callable[[int], None] = os.fsync if "+fsync" in kind else os.fdatasync
        payload = os.urandom(write)  # records are ciphertext: incompressible
        sectors = SectorWriter(fs.mount, "sectors" in kind)
        dfd = sectors.open(fs.mount / "seg")
        off, tail = 0, b""
        t0 = time.monotonic()
        for i in range(commits):
            done = sectors.put(dfd, off, tail, payload, size) if dfd is not None else 0
            tail = tail_after(tail, payload, off + write)
            if in_place and done < write:
                os.pwrite(fd, payload[done:], off + done)
            elif not in_place:
                os.write(fd, payload)
            off += write
            sync(fd)
            if "seq.last" in kind:
                os.pwrite(hint, i.to_bytes(8, "little") + bytes(4), 0)
            if "acked.log" in kind:
                os.write(acks, os.urandom(21))
            time.sleep(max(0.0, t0 + (i + 1) * interval - time.monotonic()))
        os.close(fd)
        if dfd is not None:
            os.close(dfd)
        sectors.close()
        os.close(hint)
        os.close(acks)
        fs.sync()
        b2 = fs.bytes_written()
    per_commit = (b2 - b1) / commits
    per_segment = size // write
    return {"variant": kind, "create_bytes": b1 - b0, "bytes_per_commit": per_commit,
            "commits_per_segment": per_segment,
            "with_creation": per_commit + (b1 - b0) / per_segment}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.bench.segwrite", description=__doc__)
    ap.add_argument("--commits", type=int, default=30)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--write", type=int, default=1500, help="bytes per commit")
    ap.add_argument("--size-mib", type=int, default=4, help="segment size")
    ap.add_argument("--only", action="append", choices=VARIANTS)
    ap.add_argument("--block-size", type=int, choices=(1024, 2048, 4096),
                    help="file-system block size (default: mkfs's, 1 KiB for this image)")
    args = ap.parse_args(argv)
    size = args.size_mib * 1024 * 1024
    results: dict[str, dict[str, Any] | str] = {}
    with tempfile.TemporaryDirectory(prefix="segwrite-", dir="/var/tmp") as tmp:
        def run(kind: str) -> None:
            try:
                results[kind] = measure(kind, Path(tmp), args.commits, args.interval,
                                        args.write, size, args.block_size)
            except OSError as exc:
                results[kind] = f"failed: {exc}"

        threads = [threading.Thread(target=run, args=(k,)) for k in args.only or VARIANTS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    print(f"load average {os.getloadavg()[0]:.1f}; {args.commits} commits of {args.write} "
          f"bytes, {args.interval} s apart; segment {args.size_mib} MiB; block size "
          f"{args.block_size or 'default'}", file=sys.stderr)
    print(f"{'variant':36} {'create (bytes)':>15} {'per commit':>11} {'incl. creation':>15}")
    for kind in args.only or VARIANTS:
        r = results[kind]
        if isinstance(r, str):
            print(f"{kind:36} {r}")
            continue
        print(f"{kind:36} {r['create_bytes']:>15,} {r['bytes_per_commit']:>11,.0f} "
              f"{r['with_creation']:>15,.0f}")
    print(json.dumps(results), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
