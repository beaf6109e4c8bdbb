"""Run an event-driven GPIO sensor in a thread and collect what it emits."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from edge_agent.core.model import Reading
from edge_agent.drivers.base import Sensor


class Running:
    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor
        self.stop = threading.Event()
        self.readings: queue.Queue[Reading] = queue.Queue()
        self.thread = threading.Thread(target=sensor.run, args=(self.emit, self.stop),
                                       daemon=True)

    def emit(self, batch: list[Reading]) -> None:
        for r in batch:
            self.readings.put(r)

    def next(self, timeout: float = 2.0) -> Reading:
        return self.readings.get(timeout=timeout)

    def drain(self, settle: float = 0.15) -> list[Reading]:
        """Everything emitted until nothing came for ``settle`` seconds."""
        out: list[Reading] = []
        while True:
            try:
                out.append(self.readings.get(timeout=settle))
            except queue.Empty:
                return out


@contextmanager
def running(sensor: Sensor, wait_open: bool = True) -> Iterator[Running]:
    r = Running(sensor)
    r.thread.start()
    try:
        if wait_open:
            opened = getattr(sensor, "opened", None)
            assert opened is not None and opened.wait(2.0), "sensor did not open"
        yield r
    finally:
        r.stop.set()
        r.thread.join(timeout=2.0)
        assert not r.thread.is_alive(), "run() did not return after stop"
