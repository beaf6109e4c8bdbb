"""Which file system a path lives on, from ``/proc/self/mountinfo`` (which
``ProcSubset=pid`` leaves visible): whether what is written there survives a power cut, and
costs the SD card a write."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
VOLATILE_FS = frozenset({"tmpfs", "ramfs"})


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    options: frozenset[str]  # the mount's and the file system's ("commit=30", "noatime")

    def option(self, name: str) -> str | None:
        """The value of ``name=value`` among the options (None when absent)."""
        for opt in self.options:
            key, sep, value = opt.partition("=")
            if sep and key == name:
                return value
        return None


def mount_of(path: Path, mountinfo: Path = MOUNTINFO) -> Mount | None:
    """The mount that holds ``path`` (the most specific; None when unknown)."""
    try:
        lines = mountinfo.read_text().splitlines()
        target = os.path.realpath(path)
    except OSError:
        return None
    best: Mount | None = None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or not tail:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.point)):  # the last one wins
            opts = fields[5].split(",") + (tail[2].split(",") if len(tail) > 2 else [])
            best = Mount(point, tail[0], frozenset(opts))
    return best


def on_volatile_fs(path: Path, mountinfo: Path = MOUNTINFO) -> bool:
    """True if ``path`` lives on tmpfs/ramfs (gone at power-off). False when unsure."""
    m = mount_of(path, mountinfo)
    return m is not None and m.fstype in VOLATILE_FS


def _unescape(s: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        s = s.replace(code, ch)
    return s
