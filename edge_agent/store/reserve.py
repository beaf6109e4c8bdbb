"""Disk kept free for alarms: ``<store>/reserve.bin``, allocated while there is room.

When the disk fills, the store evicts by policy first; an alarm that still does not fit
spends the reserve a step at a time (a disk that something else keeps filling takes what is
freed at once; alarms keep the rest). The reserve is allocated again when space is freed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("edge_agent.store")

RESERVE_BYTES = 1024 * 1024  # kept free for alarms when the disk fills
RESERVE_STEP_MIN = 16 * 1024  # released at least this much at a time


class AlarmReserve:
    def __init__(self, path: Path, size: int, channel: str) -> None:
        self.path = path
        self.size = size
        self._channel = channel

    def ensure(self) -> None:
        """Allocate the reserve if it is missing or short (no room yet: tried again later)."""
        if self.size <= 0:
            return
        try:
            if self.path.exists() and self.path.stat().st_size >= self.size:
                return
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError:
            pass  # no room yet; tried again after space is freed

    def release_step(self) -> bool:
        """Give alarms room: shrink the reserve by a sixteenth. False when nothing is left
        of it."""
        try:
            size = self.path.stat().st_size
            left = max(0, size - max(RESERVE_STEP_MIN, self.size // 16))
            if left:
                os.truncate(self.path, left)
            else:
                self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("store %s: cannot release the alarm reserve: %s", self._channel, exc)
            return False
        log.warning("store %s: disk full, alarm reserve down to %d bytes", self._channel,
                    left)
        return True
