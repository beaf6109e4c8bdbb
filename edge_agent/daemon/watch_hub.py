"""``edge-agent watch``, daemon side: accepted readings fanned out to the watchers.

The channel writers call :meth:`WatchHub.accepted` with each committed batch and its
sequence ranges. With nobody watching that is one attribute test. With watchers, each one
gets the batch appended to its own bounded queue (``queue_readings`` readings): what does not
fit is dropped and counted for that watcher, never waited for, so a slow watcher loses lines
and the pipeline does not notice. Turning readings into lines happens on the watcher's own
thread (:mod:`edge_agent.daemon.watch_socket`), not on the writer's.

What a line may show (:func:`reading_event`): a reading of the IT channel, or one carrying a
subject's pseudonym on any channel, shows its time, sensor, name, unit, sequence number and
pseudonym, and ``"sealed"`` instead of its value: health values leave the node only inside
the HPKE seal, and the socket is not the seal. OT readings without a subject show their
value.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_agent.core.model import Channel, Reading

QUEUE_READINGS = 2000  # per watcher: readings waiting to be written to its socket
MAX_WATCHERS = 4  # at once; one more is told so and closed


@dataclass
class Batch:
    """Readings of one commit: numbered by ``ranges``, or (``items``) already paired with
    their numbers (a filtered or shortened batch)."""

    channel: Channel
    ranges: Sequence[tuple[int, int]]
    readings: Sequence[Reading]
    items: list[tuple[int | None, Reading]] | None = None

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else len(self.readings)


@dataclass
class Watcher:
    """One connected watcher's bounded queue (filled by writer threads, emptied by its
    sender thread)."""

    sensors: frozenset[str] | None = None  # None = every sensor
    limit: int = QUEUE_READINGS
    queued: int = 0  # readings in ``batches``
    lost: int = 0  # readings dropped because the queue was full (since connected)
    lost_unreported: int = 0
    batches: deque[Batch] = field(default_factory=deque)
    cond: threading.Condition = field(default_factory=threading.Condition)
    closed: bool = False

    def offer(self, batch: Batch) -> None:
        """Never blocks beyond the queue's own lock; what does not fit is counted."""
        if self.sensors is not None:
            wanted = self.sensors
            items = [(s, r) for s, r in numbered(batch) if sensor_id(r.sensor) in wanted]
            if not items:
                return
            batch = Batch(batch.channel, (), (), items)
        with self.cond:
            room = self.limit - self.queued
            n = len(batch)
            if n > room:
                self.lost += n - room
                self.lost_unreported += n - room
                if room <= 0:
                    return
                head = list(itertools.islice(numbered(batch), room))
                batch = Batch(batch.channel, (), (), head)
                n = room
            self.batches.append(batch)
            self.queued += n
            self.cond.notify()

    def take(self, timeout: float) -> tuple[list[Batch], int]:
        """The queued batches and the readings lost since the last call (waits up to
        ``timeout`` for something to arrive)."""
        with self.cond:
            if not self.batches and not self.lost_unreported and not self.closed:
                self.cond.wait(timeout)
            out = list(self.batches)
            self.batches.clear()
            self.queued = 0
            lost, self.lost_unreported = self.lost_unreported, 0
            return out, lost

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class WatchHub:
    """The set of watchers; :meth:`accepted` is called by the writer threads."""

    def __init__(self, max_watchers: int = MAX_WATCHERS) -> None:
        self.max_watchers = max_watchers
        self._lock = threading.Lock()
        self._watchers: tuple[Watcher, ...] = ()  # replaced whole: readers need no lock
        self.refused = 0  # watchers turned away because the limit was reached

    def accepted(self, channel: Channel, ranges: Sequence[tuple[int, int]],
                 readings: Sequence[Reading]) -> None:
        watchers = self._watchers
        if not watchers:
            return
        batch = Batch(channel, ranges, readings)
        for w in watchers:
            w.offer(batch)

    def add(self, watcher: Watcher) -> bool:
        """Register a watcher; False when the limit is reached."""
        with self._lock:
            if len(self._watchers) >= self.max_watchers:
                self.refused += 1
                return False
            self._watchers = (*self._watchers, watcher)
            return True

    def remove(self, watcher: Watcher) -> None:
        with self._lock:
            self._watchers = tuple(w for w in self._watchers if w is not watcher)
        watcher.close()

    def count(self) -> int:
        return len(self._watchers)

    def close_all(self) -> None:
        with self._lock:
            watchers, self._watchers = self._watchers, ()
        for w in watchers:
            w.close()


def sensor_id(published: str) -> str:
    """The configured sensor id of a reading's ``sensor`` (``p-<hmac16>/<id>`` under a
    subject, see :mod:`edge_agent.security.privacy`)."""
    if published.startswith("p-") and "/" in published:
        return published.split("/", 1)[1]
    return published


def pseudonym_of(published: str) -> str | None:
    if published.startswith("p-") and "/" in published:
        return published.split("/", 1)[0]
    return None


def numbered(batch: Batch) -> Iterator[tuple[int | None, Reading]]:
    """The batch's readings with their sequence numbers: the store numbers a batch lane by
    lane (alarms first), in order within a lane (``store.segments.plaintexts``)."""
    if batch.items is not None:
        yield from batch.items
        return
    seqs = (s for first, last in batch.ranges for s in range(first, last + 1))
    for r in sorted(batch.readings, key=lambda r: int(r.priority)):
        yield next(seqs, None), r


def reading_event(channel: Channel, seq: int | None, r: Reading) -> dict[str, Any]:
    """One reading as the watch line shows it (values of IT or subject readings sealed)."""
    pseudo = pseudonym_of(r.sensor)
    ev: dict[str, Any] = {"type": "reading", "time": r.time, "channel": channel.value,
                          "seq": seq, "sensor": sensor_id(r.sensor), "name": r.name,
                          "priority": r.priority.label}
    if channel is Channel.IT or pseudo is not None:
        ev["sealed"] = True
    else:
        ev["value"] = r.value
    if r.unit is not None:
        ev["unit"] = r.unit
    if pseudo is not None:
        ev["pseudonym"] = pseudo
    return ev


SummaryFn = Callable[[], dict[str, Any]]
