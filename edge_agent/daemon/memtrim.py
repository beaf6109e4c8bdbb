"""Giving memory back after a burst: glibc's ``malloc_trim(0)``, at most once per interval,
once a burst of readings is over (the ingest queues empty, and fewer than a tenth of
``TRIM_AFTER`` readings accepted since the previous supervision round), or once the store
scan that follows a start is done.

CPython frees small objects into its own arenas and large ones into glibc's heap; glibc
keeps freed heap pages mapped (they count in VmRSS) until it is asked to return them. One
call costs a few milliseconds for a heap of tens of megabytes. Where the C library has no
``malloc_trim`` (musl, macOS) trimming is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

from edge_agent.core.clock import Clock

log = logging.getLogger("edge_agent.daemon.memtrim")

TRIM_INTERVAL = 5.0  # seconds between two trims at least
TRIM_AFTER = 10_000  # readings accepted since the last trim that make it worth one


M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD = 128 * 1024  # glibc's default before it starts moving it


def pin_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Keep glibc's mmap threshold where it starts: blocks of ``size`` and more are mapped
    on their own and unmapped when freed. Left alone, glibc raises the threshold to the
    largest mapped block freed so far (up to 32 MiB), and from then on blocks of that size
    come from the heap, where freed ones stay mapped and fragment it: a drain that thaws
    frozen record tables (buffers of about a megabyte, table.py) peaked 15 MB higher.
    False where the C library has no ``mallopt`` (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        fn = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return bool(fn(M_MMAP_THRESHOLD, size))


def libc_trim() -> Callable[[], None] | None:
    """``malloc_trim(0)`` of the C library, or None where there is none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int

    def trim() -> None:
        gc.collect()  # cycles left by the burst first: their memory is freed before the trim
        fn(0)

    return trim


class Trimmer:
    """Decides when to trim; the runtime calls ``maybe`` from its supervision round."""

    def __init__(self, clock: Clock, trim: Callable[[], None] | None, *,
                 interval: float = TRIM_INTERVAL, after: int = TRIM_AFTER) -> None:
        self._clock = clock
        self._trim = trim
        self._interval = interval
        self._after = after
        self._last = float("-inf")
        self._seen = 0  # readings accepted at the last trim
        self._prev = 0  # readings accepted at the previous call
        self._due = False  # something other than readings asks for a trim (a scan ended)
        self.trims = 0

    def request(self) -> None:
        """Trim at the next chance (a large transient allocation ended)."""
        self._due = True

    def maybe(self, accepted: int, queued: int) -> bool:
        """``accepted``: readings accepted so far (all channels); ``queued``: readings
        in the ingest queues now. Trims when the queues are empty, the interval has passed
        and either a trim was requested or a burst is over: enough readings went through
        since the last trim, and few since the previous call. Returns whether it
        trimmed."""
        prev, self._prev = self._prev, accepted
        if self._trim is None or queued:
            return False
        now = self._clock.monotonic()
        if now - self._last < self._interval:
            return False
        over = (accepted - self._seen >= self._after
                and accepted - prev < self._after // 10)
        if not (self._due or over):
            return False
        self._trim()
        self._last = now
        self._seen = accepted
        self._due = False
        self.trims += 1
        log.debug("heap trimmed after %d readings", accepted)
        return True
