"""A dedicated loop-mounted ext4 image (noatime) whose block-layer writes can be counted.

    with LoopFS(Path("/var/tmp/x.img"), Path("/var/tmp/x.mnt"), size_mb=256) as fs:
        before = fs.sectors_written()      # after fs.sync()
        ...                                # the agent's state_dir lives under fs.mount
        fs.sync(); after = fs.sectors_written()

``/sys/block/loopN/stat`` field 7 counts 512-byte sectors written to the device: file data,
metadata, the ext4 journal, everything, whoever wrote it. The image is made with the inode
tables and the journal initialised up front (no ``ext4lazyinit`` writing in the
background while we count). Needs root (mount); ``LoopUnavailable`` says why not.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

SECTOR = 512


class LoopUnavailable(RuntimeError):
    """No loop mount here (not root, no loop devices, no mkfs.ext4)."""


def _run(*cmd: str) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise LoopUnavailable(f"{' '.join(cmd)}: {out.stderr.strip() or out.returncode}")
    return out.stdout


class LoopFS:
    def __init__(self, image: Path, mount: Path, size_mb: int = 256,
                 options: str = "noatime", block_size: int | None = None) -> None:
        self.image, self.mount, self.size_mb = image, mount, size_mb
        self.options = options  # mount options besides ``loop``
        # None: mkfs's choice, 1 KiB below 512 MiB ("small" in mke2fs.conf); an SD card's
        # root file system has 4 KiB blocks
        self.block_size = block_size
        self.device: str | None = None

    def __enter__(self) -> LoopFS:
        if os.geteuid() != 0:
            raise LoopUnavailable("mounting a loop image needs root")
        with open(self.image, "wb") as f:
            f.truncate(self.size_mb * 1024 * 1024)
        size = ["-b", str(self.block_size)] if self.block_size else []
        _run("mkfs.ext4", "-q", "-F", *size, "-E", "lazy_itable_init=0,lazy_journal_init=0",
             str(self.image))
        self.mount.mkdir(parents=True, exist_ok=True)
        _run("mount", "-o", f"loop,{self.options}", str(self.image), str(self.mount))
        self.device = _run("findmnt", "-n", "-o", "SOURCE", str(self.mount)).strip()
        return self

    def sync(self) -> None:
        _run("sync", "-f", str(self.mount))

    def sectors_written(self) -> int:
        assert self.device is not None
        name = Path(self.device).name
        fields = Path(f"/sys/block/{name}/stat").read_text().split()
        return int(fields[6])

    def bytes_written(self) -> int:
        return self.sectors_written() * SECTOR

    def __exit__(self, *exc: object) -> None:
        if self.device is not None:
            for attempt in range(20):  # busy for a moment while another thread forks
                try:
                    _run("umount", str(self.mount))  # the kernel detaches the loop device
                    break
                except LoopUnavailable:
                    if attempt == 19:
                        raise
                    time.sleep(0.25)
            self.device = None
        self.image.unlink(missing_ok=True)
