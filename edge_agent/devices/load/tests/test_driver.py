"""The synthetic load sensor: a counter a consumer can check, stopping at ``total``."""

from __future__ import annotations

import threading

import pytest

from edge_agent.core.clock import SystemClock
from edge_agent.core.model import Reading
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
