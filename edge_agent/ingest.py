"""The bounded hand-off from sensor threads to a channel's writer, with an alarm fast lane.

Sensors ``put`` lists of readings. Normal/bulk readings wait (backpressure) when the queue
holds ``max_readings``; alarms never wait and wake the writer at once.
"""

from __future__ import annotations

import threading
from collections import deque

from .model import Priority, Reading


class IngestQueue:
    def __init__(self, max_readings: int, max_alarms: int = 10_000) -> None:
        self.max_readings = max_readings
        self.max_alarms = max_alarms
        self._cond = threading.Condition()
        self._normal: deque[list[Reading]] = deque()
        self._alarms: deque[Reading] = deque()
        self._count = 0
        self._closed = False
        self.dropped_alarms = 0

    def put(self, readings: list[Reading], stop: threading.Event | None = None) -> bool:
        """Queue readings. Returns False if the queue closed (or stop was set) first."""
        alarms = [r for r in readings if r.priority == Priority.ALARM]
        rest = readings if not alarms else [r for r in readings if r.priority != Priority.ALARM]
        with self._cond:
            if self._closed:
                return False
            if alarms:
                room = self.max_alarms - len(self._alarms)
                self._alarms.extend(alarms[:room])
                self.dropped_alarms += max(0, len(alarms) - room)
                self._cond.notify_all()
            if rest:
                while self._count >= self.max_readings and not self._closed:
                    if stop is not None and stop.is_set():
                        return False
                    self._cond.wait(0.1)
                if self._closed:
                    return False
                self._normal.append(rest)
                self._count += len(rest)
                self._cond.notify_all()
        return True

    def take_alarms(self) -> list[Reading]:
        with self._cond:
            out = list(self._alarms)
            self._alarms.clear()
            return out

    def take_all(self) -> list[Reading]:
        with self._cond:
            out = [r for chunk in self._normal for r in chunk]
            self._normal.clear()
            self._count = 0
            self._cond.notify_all()
            return out

    @property
    def pending(self) -> int:
        with self._cond:
            return self._count

    def wait(self, timeout: float, min_readings: int) -> None:
        """Wait until alarms arrive, ``min_readings`` are queued, closing, or timeout."""
        with self._cond:
            if self._alarms or self._closed or self._count >= min_readings:
                return
            self._cond.wait(timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
