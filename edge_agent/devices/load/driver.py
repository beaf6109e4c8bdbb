"""``load``: synthetic readings at a fixed rate, through the real pipeline (rigs, benchmarks).

Values are a deterministic counter, so a consumer can check every reading it receives.
"""

from __future__ import annotations

import threading

from edge_agent.core.model import Reading
from edge_agent.devices.base import Emit, Sensor, SensorContext, SensorSpec
from edge_agent.devices.load.options import LoadOptions

# readings per emit at most: a sensor that fell behind (the ingest queue blocked it) catches
# up in pieces of this size, so the backlog it owes never becomes one list in memory
BATCH_MAX = 10_000


class LoadSensor(Sensor):
    def __init__(self, spec: SensorSpec, opts: LoadOptions, ctx: SensorContext) -> None:
        super().__init__(spec, ctx)
        self.opts = opts
        self.sent = 0

    def run(self, emit: Emit, stop: threading.Event) -> None:
        clock = self.ctx.clock
        start = clock.monotonic()
        spec = self.spec
        while not stop.is_set():
            due = int((clock.monotonic() - start) * self.opts.rate)
            if self.opts.total is not None:
                due = min(due, self.opts.total)
            n = min(due - self.sent, BATCH_MAX)
            if n > 0:
                now = clock.time()
                batch = [Reading(spec.id, spec.channel, spec.priority, "counter",
                                 float(self.sent + i + 1), now, "count") for i in range(n)]
                self.sent += n
                self.stats.readings += n
                self.stats.last_value_time = now
                emit(batch)
            if self.opts.total is not None and self.sent >= self.opts.total:
                return
            if n < BATCH_MAX:  # caught up: wait for the next chunk's readings
                stop.wait(self.opts.chunk)


def build(spec: SensorSpec, opts: LoadOptions, ctx: SensorContext) -> Sensor:
    return LoadSensor(spec, opts, ctx)
