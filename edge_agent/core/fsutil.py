"""Complete and atomic file writes: the only way the agent writes state it must trust.

``os.write`` may write fewer bytes than asked (a nearly full disk, a signal, a quota) and
says so only in its return value. Every write of the store, its journals, key files and
other state files goes through here, so a write is either complete or an
``IncompleteWriteError`` (an ``OSError`` with the cause's errno, ENOSPC for a write that
made no progress) saying how many bytes did land, for the caller to cut back off.

``atomic_write`` replaces or creates a whole file so that a reader (or the next start
after a power cut) sees the old file, no file, or the whole new one: never an empty or
half-written key. Imports nothing above ``errors``.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path

from edge_agent.core.errors import IncompleteWriteError

Write = Callable[[int, bytes], int]
Fsync = Callable[[int], None]

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def no_space(exc: BaseException) -> bool:
    """True for the errors a full disk (or quota, or file size limit) gives."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE


def write_all(fd: int, data: bytes, *, write: Write = os.write,
              what: object = None) -> None:
    """Write every byte of ``data`` at ``fd``'s position, looping over short writes.

    Raises IncompleteWriteError (``written`` = bytes that did reach the file) when a write
    fails or makes no progress; an error before any byte was written is raised the same
    way with ``written`` 0, so callers need to handle one type."""
    raw = data
    done = 0
    total = len(raw)
    while done < total:
        try:
            n = write(fd, raw if done == 0 else raw[done:])
        except InterruptedError:
            continue
        except OSError as exc:
            raise IncompleteWriteError(
                exc.errno or errno.EIO,
                f"{_name(fd, what)}: write failed after {done} of {total} bytes: "
                f"{exc.strerror or exc}", done) from exc
        if n <= 0:
            raise IncompleteWriteError(
                errno.ENOSPC, f"{_name(fd, what)}: write made no progress after {done} of "
                f"{total} bytes", done)
        done += n


def pwrite_all(fd: int, data: bytes, offset: int, *, what: object = None) -> None:
    """``os.pwrite`` every byte of ``data`` at ``offset`` (same errors as ``write_all``)."""
    done = 0
    while done < len(data):
        try:
            n = os.pwrite(fd, data[done:], offset + done)
        except InterruptedError:
            continue
        except OSError as exc:
            raise IncompleteWriteError(exc.errno or errno.EIO,
                                       f"{_name(fd, what)}: pwrite failed: {exc.strerror}",
                                       done) from exc
        if n <= 0:
            raise IncompleteWriteError(errno.ENOSPC, f"{_name(fd, what)}: pwrite made no "
                                       "progress", done)
        done += n


def fsync_dir(path: Path) -> None:
    """Make a rename, create or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, exclusive: bool = False,
                 durable: bool = True, fsync: Fsync = os.fsync,
                 write: Write = os.write) -> None:
    """Write ``data`` to ``path`` all or nothing: a temporary file in the same directory
    (created with ``mode``, so a secret is never readable by others even for a moment),
    written completely, fsynced, then renamed over ``path`` and the directory fsynced.

    ``exclusive``: never replace an existing ``path`` (FileExistsError); the new file is
    linked into place, so it appears whole or not at all. On any error the temporary file
    is removed and ``path`` is as it was. ``durable=False`` skips both fsyncs: still whole
    or absent for readers, but a power cut may take it (files rewritten every few seconds,
    where syncing would only wear the SD card)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask must not widen or narrow what was asked
            write_all(fd, data, write=write, what=tmp)
            if durable:
                fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            _link_new(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def _link_new(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)  # FileExistsError if it is there: never overwrites
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # a file system without hard links: check, then rename (a narrow race only)
        if path.exists():
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.rename(tmp, path)
        return
    tmp.unlink()


def _name(fd: int, what: object) -> str:
    if what is not None:
        return str(what)
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd {fd}"
