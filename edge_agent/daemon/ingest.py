"""The bounded hand-off from sensor threads to a channel's writer, with an alarm fast lane.

Sensors ``put`` lists of readings. Normal/bulk readings wait (backpressure) when the queue
holds ``max_readings`` or ``max_bytes`` (an estimate of the memory the readings hold:
``reading_bytes``; text values count their length); alarms never wait and wake the
writer at once. ``half_full`` tells the writer to commit early.

Alarms have a lane of ``max_alarms``. Beyond it they borrow the normal lane's free room,
and when that is taken too the oldest queued normal readings are dropped to make room
(``displaced_readings``). Only when no normal reading is left to displace is an alarm
dropped (``dropped_alarms``). Both are counted for the health message and ``edge-agent
status`` and logged, at most one line per cause per minute. The queue's memory bound is
``max_readings + max_alarms`` readings whatever arrives, and the normal lane's about
``max_bytes`` plus one ``put``.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from edge_agent.core.clock import Clock, SystemClock
from edge_agent.core.model import Priority, Reading
from edge_agent.core.ratelog import RateLimitedLog

LOG_INTERVAL = 60.0
READING_BYTES = 128  # a queued Reading: the struct, its value and time floats, a list slot


def reading_bytes(readings: list[Reading]) -> int:
    """What ``readings`` hold in memory, about: a fixed size each, plus text values."""
    return READING_BYTES * len(readings) + sum(
        len(r.value) for r in readings if isinstance(r.value, str))


class IngestQueue:
    def __init__(self, max_readings: int, max_alarms: int = 10_000, *, name: str = "",
                 max_bytes: int | None = None, clock: Clock | None = None,
                 log: logging.Logger | None = None) -> None:
        self.max_readings = max_readings
        self.max_bytes = max_bytes if max_bytes is not None else max_readings * READING_BYTES
        self.max_alarms = max_alarms
        self.name = name
        self._cond = threading.Condition()
        self._normal: deque[list[Reading]] = deque()
        self._alarms: deque[Reading] = deque()
        self._count = 0
        self._bytes = 0  # reading_bytes of the normal lane
        self._closed = False
        self.dropped_alarms = 0  # alarms lost: the whole queue held alarms only
        self.displaced_readings = 0  # normal/bulk readings dropped to make room for alarms
        self._log = RateLimitedLog(log or logging.getLogger("edge_agent.daemon.ingest"),
                                   clock or SystemClock(), LOG_INTERVAL)

    def put(self, readings: list[Reading], stop: threading.Event | None = None) -> bool:
        """Queue readings. Returns False if the queue closed (or stop was set) first."""
        alarms = [r for r in readings if r.priority == Priority.ALARM]
        rest = readings if not alarms else [r for r in readings if r.priority != Priority.ALARM]
        with self._cond:
            if self._closed:
                return False
            if alarms:
                self._put_alarms(alarms)
                self._cond.notify_all()
            if rest:
                while self._normal_full() and not self._closed:
                    if stop is not None and stop.is_set():
                        return False
                    self._cond.wait(0.1)
                if self._closed:
                    return False
                self._normal.append(rest)
                self._count += len(rest)
                self._bytes += reading_bytes(rest)
                self._cond.notify_all()
        return True

    def _normal_full(self) -> bool:
        borrowed = max(0, len(self._alarms) - self.max_alarms)
        return (self._count + borrowed >= self.max_readings
                or (self._count > 0 and self._bytes >= self.max_bytes))

    def half_full(self) -> bool:
        """At least half of either bound is queued: time to commit early."""
        with self._cond:
            return self._half()

    def _half(self) -> bool:
        return (self._count >= self.max_readings // 2
                or (self._count > 0 and self._bytes >= self.max_bytes // 2))

    def _put_alarms(self, alarms: list[Reading]) -> None:
        """Queue alarms: their own lane, then the normal lane's free room, then the room of
        the oldest queued normal readings (dropped, counted). Called with the lock held."""
        cap = self.max_alarms + self.max_readings
        need = len(self._alarms) + len(alarms) + self._count - cap
        displaced = 0
        while need > 0 and self._normal:
            chunk = self._normal[0]
            n = min(need, len(chunk))
            if n == len(chunk):
                self._normal.popleft()
            else:
                self._normal[0] = chunk[n:]
            self._count -= n
            self._bytes = max(0, self._bytes - reading_bytes(chunk[:n]))
            need -= n
            displaced += n
        room = max(0, cap - len(self._alarms) - self._count)
        self._alarms.extend(alarms[:room])
        dropped = len(alarms) - min(room, len(alarms))
        if displaced:
            self.displaced_readings += displaced
            self._log.log(logging.WARNING, "displaced",
                          "ingest %s: alarm queue full; dropped %d queued normal readings to "
                          "make room for alarms (%d in all)", self.name, displaced,
                          self.displaced_readings)
        if dropped:
            self.dropped_alarms += dropped
            self._log.log(logging.ERROR, "dropped",
                          "ingest %s: %d ALARMS DROPPED: the queue holds %d alarms and "
                          "nothing else to displace (%d dropped in all)", self.name, dropped,
                          len(self._alarms), self.dropped_alarms)

    def flush_log(self) -> None:
        """Write the counts of log lines held back by the rate limit (call periodically)."""
        self._log.flush()

    def take_alarms(self) -> list[Reading]:
        with self._cond:
            out = list(self._alarms)
            self._alarms.clear()
            self._cond.notify_all()  # room borrowed from the normal lane is free again
            return out

    def take_all(self) -> list[Reading]:
        with self._cond:
            out = [r for chunk in self._normal for r in chunk]
            self._normal.clear()
            self._count = 0
            self._bytes = 0
            self._cond.notify_all()
            return out

    def counters(self) -> dict[str, int]:
        """What the health message and ``edge-agent status`` report."""
        with self._cond:
            return {"dropped_alarms": self.dropped_alarms,
                    "displaced_readings": self.displaced_readings,
                    "queued_alarms": len(self._alarms), "queued_readings": self._count}

    @property
    def pending(self) -> int:
        with self._cond:
            return self._count

    def wait(self, timeout: float, min_readings: int | None = None) -> None:
        """Wait until alarms arrive, ``min_readings`` are queued (default: ``half_full``),
        closing, or timeout."""
        with self._cond:
            enough = self._half() if min_readings is None else self._count >= min_readings
            if self._alarms or self._closed or enough:
                return
            self._cond.wait(timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
