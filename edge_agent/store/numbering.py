"""Sequence numbers of one channel store: handed out once, never reused, across restarts and
power cuts (docs/design/0002-sequence-numbers-never-reused.md).

    <store>/seq.hwm    reserved high-water mark (fsynced before any number up to it is used)
    <store>/seq.last   last number handed out (a hint, one pwrite per commit, never fsynced)
                       or, under the service, ``$RUNTIME_DIRECTORY/seq.last.<ch>.<id>``

``seq.hwm`` says either ``<n> clean`` (written by close: exactly the last number handed
out) or ``<n> reserved <boot id>`` (numbers up to ``n`` may be in use). At open,
``plan`` decides where numbering resumes: after a clean close or a crash in this same boot
(page cache intact) exactly after the last number used; after a power cut (another or an
unknown boot) after the reservation, reporting the numbers in between as skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.core.fsutil import Write, atomic_write, pwrite_all
from edge_agent.store.bootid import BootIdSource

log = logging.getLogger("edge_agent.store")

HWM_STEP = 100_000
_U64 = struct.Struct("<Q")
_LAST = struct.Struct("<QI")  # seq.last: number, crc32 of the number's 8 bytes


def current_boot_id() -> str | None:
    """This boot's id: a process crash keeps it (and the page cache); a power cut does not.
    The kernel's, or under the systemd sandbox the service's runtime marker (bootid.py)."""
    return BootIdSource.from_env()()


@dataclass(frozen=True)
class HighWater:
    """What ``seq.hwm`` says. ``clean``: ``value`` is exactly the last number handed out
    (written by ``close``). Otherwise ``value`` is a reservation made in boot ``boot``
    (``None``: unknown, e.g. a file from an older version): numbers up to it may be in use."""

    value: int
    clean: bool
    boot: str | None

    def render(self) -> str:
        return f"{self.value} clean\n" if self.clean else f"{self.value} reserved {self.boot}\n"

    @classmethod
    def parse(cls, text: str) -> HighWater:
        parts = text.split()
        if not parts:
            return cls(0, False, None)
        value = int(parts[0])  # ValueError for garbage
        if value < 0:
            raise ValueError("negative high-water mark")
        if len(parts) >= 2 and parts[1] == "clean":
            return cls(value, True, None)
        boot = parts[2] if len(parts) >= 3 and parts[1] == "reserved" else None
        return cls(value, False, boot if boot != "None" else None)


@dataclass(frozen=True)
class Resume:
    """Where numbering resumes at open (``plan``)."""

    next_seq: int
    reserved: int  # numbers up to this are reserved already
    skipped: tuple[int, int] | None  # reserved before an unclean stop: never reused


def plan(mark: HighWater, top: int, boot: str | None) -> Resume:
    """``top``: the highest number the segments, journals and ``seq.last`` show in use."""
    # After close() the mark is exact; after a crash in this same boot the page cache
    # survived, so the hint in ``top`` is exact too. Otherwise (a power cut, an unknown
    # boot) the newest accepted records may be gone without a trace: only the reservation
    # bounds what was handed out.
    exact = mark.clean or (mark.boot is not None and mark.boot == boot)
    if mark.clean:
        top = max(top, mark.value)
    skipped = None
    if not exact and mark.value > top:
        skipped = (top + 1, mark.value)
        top = mark.value
    # a clean mark is not a reservation: the first commit reserves again
    return Resume(top + 1, top if mark.clean else max(mark.value, top), skipped)


def hint_name(directory: Path) -> str:
    """The hint's name in a runtime directory: one per store directory."""
    digest = hashlib.sha256(os.path.realpath(directory).encode()).hexdigest()[:16]
    return f"seq.last.{directory.name}.{digest}"


class Numbering:
    """The two files and the counters; the owning store calls it under its lock.

    ``hint_dir``: the service's runtime directory (``/run/edge-agent``, a tmpfs), where the
    hint is kept instead of the store directory. The hint is worth something only while
    this boot lasts (``plan``), which is exactly as long as a tmpfs keeps it, and on the
    SD card it costs a block write and a journaled inode per commit (docs/design/0018). A
    hint left in the store directory by an earlier version is read once and removed."""

    def __init__(self, directory: Path, boot: str | None, fsync: Callable[[int], None],
                 write: Write, hint_dir: Path | None = None) -> None:
        self.hwm_path = directory / "seq.hwm"
        self.boot = boot
        self._fsync = fsync
        self._write = write
        card = directory / "seq.last"
        self._old: Path | None = None
        fd = None
        if hint_dir is not None:
            try:
                fd = os.open(hint_dir / hint_name(directory), os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                log.warning("store %s: cannot keep the sequence hint in %s (%s); kept in "
                            "the store directory", directory.name, hint_dir, exc)
            else:
                self._old = card if card.exists() else None
        self._last_fd = fd if fd is not None else os.open(card, os.O_RDWR | os.O_CREAT,
                                                          0o600)
        self.next_seq = 1
        self._reserved = 0

    def read_mark(self) -> HighWater:
        """Raises ValueError/UnicodeDecodeError for a damaged file (the caller reports it)."""
        try:
            return HighWater.parse(self.hwm_path.read_text())
        except FileNotFoundError:
            return HighWater(0, False, None)

    def read_hint(self) -> int:
        """The last number handed out per ``seq.last`` (0 when absent or torn); the
        store directory's, left by an earlier version, when the runtime one has none."""
        value = _read_hint(self._last_fd)
        if value or self._old is None:
            return value
        try:
            fd = os.open(self._old, os.O_RDONLY)
        except OSError:
            return 0
        try:
            return _read_hint(fd)
        finally:
            os.close(fd)

    def resume(self, r: Resume) -> None:
        self.next_seq = r.next_seq
        self._reserved = r.reserved
        if self._old is not None:  # the runtime hint takes over from the card's
            self._write_hint(r.next_seq - 1)
            with contextlib.suppress(OSError):
                self._old.unlink()
            self._old = None

    def reserve(self, upto: int) -> None:
        """Make ``upto`` durable as reserved *before* any number up to it is handed out."""
        if upto <= self._reserved:
            return
        new = upto + HWM_STEP
        self._write_mark(HighWater(new, False, self.boot))
        self._reserved = new

    def handed_out(self, count: int) -> None:
        """``count`` numbers from ``next_seq`` on were used by a committed batch. The hint:
        one small pwrite, no fsync (exact while the page cache lives, i.e. across a
        process crash; a lower bound after a power cut)."""
        self.next_seq += count
        self._write_hint(self.next_seq - 1)

    def _write_hint(self, last: int) -> None:
        with contextlib.suppress(OSError):  # a torn hint fails its CRC: the mark decides
            pwrite_all(self._last_fd, _LAST.pack(last, zlib.crc32(_U64.pack(last))), 0)

    def close(self) -> None:
        """Mark exactly the last number handed out (the next start skips nothing). Raises
        OSError when that cannot be written (full disk): the reservation stays, which is
        safe. The hint's fd is closed either way."""
        try:
            self._write_mark(HighWater(self.next_seq - 1, True, None))
        finally:
            with contextlib.suppress(OSError):
                os.close(self._last_fd)

    def _write_mark(self, mark: HighWater) -> None:
        """Replace seq.hwm atomically and durably (tmp, fsync, rename, fsync dir)."""
        atomic_write(self.hwm_path, mark.render().encode(), 0o600, fsync=self._fsync,
                     write=self._write)


def _read_hint(fd: int) -> int:
    try:
        data = os.pread(fd, _LAST.size, 0)
    except OSError:
        return 0
    if len(data) < _LAST.size:
        return 0
    value, crc = _LAST.unpack(data)
    return value if zlib.crc32(_U64.pack(value)) == crc else 0
