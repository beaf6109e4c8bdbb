"""Bytes skipped between frames, reported as bounded FrameErrors rather than one per byte."""

from __future__ import annotations

from edge_agent.core.errors import FrameError, ProtocolError

NOISE_REPORT = 4096  # a run of noise is reported at least every this many bytes


class NoiseRun:
    """Accumulates a run of skipped bytes; ``flush`` reports it when a frame starts."""

    def __init__(self, report_every: int = NOISE_REPORT) -> None:
        self.report_every = report_every
        self._start = 0
        self._len = 0

    def skip(self, offset: int, count: int) -> list[ProtocolError]:
        """``count`` bytes at stream ``offset`` were noise; full-size runs are reported."""
        if self._len == 0:
            self._start = offset
        self._len += count
        out: list[ProtocolError] = []
        while self._len >= self.report_every:
            out.append(FrameError(f"{self.report_every} bytes of noise skipped", self._start))
            self._start += self.report_every
            self._len -= self.report_every
        return out

    def flush(self) -> list[ProtocolError]:
        if self._len == 0:
            return []
        err = FrameError(f"{self._len} bytes of noise skipped", self._start)
        self._len = 0
        return [err]


class HeaderFramedParser:
    """What the parsers of header-delimited frames (radars) share: buffered bytes and their
    stream offset, noise runs, silent resync after a damaged frame, and ``flush``.

    ``header_len`` is the length of the frame header; fewer bytes left at the end of the
    input are noise, more are a frame cut off.
    """

    header_len = 1

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._noise = NoiseRun()
        self._resync = False  # since a rejected frame, until a well-delimited one
        self._resync_skipped = 0  # further rejected frames while resynchronising
        self._resync_first = 0  # stream offset of the first of them

    def _reject(self, err: ProtocolError) -> list[ProtocolError]:
        """A frame whose end is not where its header says: resync on the next header.
        The first rejection is reported; the ones after it, until a well-delimited frame,
        are counted and reported as one error (a flood of header bytes is two errors,
        not one per header)."""
        if not self._resync:
            self._resync = True
            return [*self._noise.flush(), err]
        if self._resync_skipped == 0:
            self._resync_first = err.offset if err.offset is not None else self._base
        self._resync_skipped += 1
        return []

    def _accept(self, offset: int) -> list[ProtocolError]:
        """A well-delimited frame starts at stream ``offset``: resync ends here."""
        out = [*self._noise.flush(), *self._resync_summary(offset)]
        self._resync = False
        return out

    def _resync_summary(self, offset: int) -> list[ProtocolError]:
        if not self._resync_skipped:
            return []
        err = FrameError(f"{self._resync_skipped} more damaged frames skipped while "
                         f"resynchronising ({offset - self._resync_first} bytes)",
                         self._resync_first)
        self._resync_skipped = 0
        return [err]

    def _skip(self, start: int, count: int) -> list[ProtocolError]:
        return [] if self._resync else self._noise.skip(self._base + start, count)

    def flush(self) -> list[ProtocolError]:
        """End of input: pending noise and a frame cut off at the end are errors."""
        out: list[ProtocolError] = []
        rest = len(self._buf)
        if rest and rest < self.header_len:  # only part of a header: noise after all
            out += self._skip(0, rest)
        out += self._noise.flush()
        out += self._resync_summary(self._base + rest)
        if rest >= self.header_len:
            out.append(FrameError(f"truncated frame ({rest} bytes)", self._base))
        self._buf.clear()
        self._base += rest
        self._resync = False
        return out
