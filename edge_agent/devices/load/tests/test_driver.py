"""The synthetic load sensor: a counter a consumer can check, stopping at ``total``."""

from __future__ import annotations

import threading

import pytest

from edge_agent.core.clock import ManualClock, SystemClock
from edge_agent.core.model import Reading
from edge_agent.devices.load.driver import BATCH_MAX
from edge_agent.devices.load.options import LoadOptions
from edge_agent.hal.backend import RealHardware
from tests.device_helpers import build, context


def test_counter_runs_to_total_and_stops() -> None:
    sensor = build(context(RealHardware(), SystemClock()), "load",
                   LoadOptions(rate=20_000, chunk=0.01, total=300))
    got: list[Reading] = []
    stop = threading.Event()
    t = threading.Thread(target=sensor.run, args=(got.extend, stop), daemon=True)
    t.start()
    t.join(10)
    stop.set()
    assert not t.is_alive(), "run() returns once total readings were sent"
    assert [r.value for r in got] == [float(i) for i in range(1, 301)]
    assert {(r.name, r.unit, r.sensor) for r in got} == {("counter", "count", "dev")}
    assert sensor.stats.readings == 300


@pytest.mark.parametrize("kw", [{"rate": 0}, {"rate": 2_000_000}, {"chunk": 0.0001},
                                {"chunk": 11}])
def test_bad_options(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LoadOptions(**kw)


def test_a_sensor_that_fell_behind_catches_up_in_bounded_pieces() -> None:
    """Blocked for a while (a full ingest queue), the sensor owes many readings: it emits
    them at most BATCH_MAX at a time, never as one list the size of what it owes."""
    clock = ManualClock(1_700_000_000.0)
    sensor = build(context(RealHardware(), clock), "load",
                   LoadOptions(rate=1_000_000, chunk=0.01, total=25_000))
    sizes: list[int] = []
    values: list[float] = []

    def emit(batch: list[Reading]) -> None:
        sizes.append(len(batch))
        values.extend(float(r.value) for r in batch)

    t = threading.Thread(target=sensor.run, args=(emit, threading.Event()), daemon=True)
    t.start()
    for _ in range(200):  # 5 s behind at 1M/s: 25,000 owed at once (again, should the
        clock.advance(5.0)  # first step come before run() read its start)
        t.join(0.05)
        if not t.is_alive():
            break
    assert not t.is_alive()
    assert sizes == [BATCH_MAX, BATCH_MAX, 25_000 - 2 * BATCH_MAX]
    assert values == [float(i) for i in range(1, 25_001)]
