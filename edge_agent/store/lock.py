"""One writer per channel store: an exclusive advisory lock on ``<store>/<channel>/lock``.

``flock(LOCK_EX | LOCK_NB)`` on a descriptor opened for this lock alone. The lock belongs to
that open file description, so:

- a second process (a technician's ``edge-agent run`` next to the systemd service) is
  refused at once, before it reads or repairs anything;
- a second open in the *same* process is refused too (it opens the file again, a new open
  file description, and flock does not share between those);
- the kernel drops the lock when the holder dies, however it dies (SIGKILL, OOM, power):
  a stale lock file never blocks a restart. The file itself is left in place on purpose;
  deleting it would let two processes lock two different inodes.

The holder's pid is written into the file for the error message only; it is never trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from edge_agent.core.errors import StoreLockedError
from edge_agent.core.fsutil import pwrite_all

LOCK_NAME = "lock"


class StoreLock:
    """Held from construction until :meth:`release` (or the process ends)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        # os.open descriptors are not inherited across exec (PEP 446): a child process the
        # agent starts never keeps the store locked after the agent is gone.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StoreLockedError(directory, holder) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        with contextlib.suppress(OSError):  # diagnostics only
            os.ftruncate(fd, 0)
            pwrite_all(fd, f"{os.getpid()}\n".encode(), 0)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(fd)


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        return int(text) if text else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None
