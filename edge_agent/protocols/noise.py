"""Bytes skipped between frames, reported as bounded FrameErrors rather than one per byte."""

from __future__ import annotations

from ..errors import FrameError, ProtocolError

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
