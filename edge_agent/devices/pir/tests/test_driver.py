"""PIR motion on gpiozero's MockFactory (the emulated backend's pin factory)."""

from __future__ import annotations

import pytest

from edge_agent.core.clock import ManualClock, SystemClock
from edge_agent.core.model import Channel, Priority
from edge_agent.devices.base import SensorSpec
from edge_agent.devices.pir.driver import PirSensor
from edge_agent.devices.pir.options import PirEmulate, PirOptions
from edge_agent.hal.emulated import EmulatedDevice, InputEmulation
from tests.device_helpers import build, context, emulated, pin_driver, running


def make(options: PirOptions, clock: ManualClock) -> PirSensor:
    """A PIR whose pin the test drives (no emulated motion)."""
    hw = EmulatedDevice(InputEmulation(options.pin, active_low=options.pull_up))
    spec = SensorSpec("pir", "pir", Channel.IT, Priority.NORMAL, 10.0)
    return PirSensor(spec, context(hw, clock), options)


def test_pir_reports_initial_state_and_changes() -> None:
    clock = ManualClock()
    sensor = make(PirOptions(pin=4), clock)
    with running(sensor) as r:
        initial = r.next()
        assert (initial.name, initial.value) == ("motion", False)
        pin = pin_driver(sensor)
        clock.advance(1)
        pin.activate()
        clock.advance(1)
        pin.deactivate()
        got = [(x.name, x.value) for x in r.drain()]
    assert got == [("motion", True), ("motion", False)]


def test_pir_bounce_is_one_change_and_settles() -> None:
    clock = ManualClock()
    sensor = make(PirOptions(pin=4), clock)
    with running(sensor) as r:
        r.next()  # initial False
        clock.advance(1)
        pin_driver(sensor).activate(bounce_edges=4)
        assert [(x.name, x.value) for x in r.drain()] == [("motion", True)]
        # a genuine change hidden in a bounce window is reported once the input settles
        pin_driver(sensor).deactivate()
        assert r.drain(0.1) == []
        clock.advance(1)
        assert (r.next().value) is False


def test_pir_counts_per_period() -> None:
    clock = ManualClock()
    opts = PirOptions(pin=4, count_seconds=60.0)
    sensor = make(opts, clock)
    with running(sensor) as r:
        r.next()
        pin = pin_driver(sensor)
        for _ in range(3):
            clock.advance(1)
            pin.activate()
            clock.advance(1)
            pin.deactivate()
        assert all(x.name == "motion" for x in r.drain())
        clock.advance(60)
        count = r.next()
    assert (count.name, count.value, count.unit) == ("motion_count", 3, "count")


def test_emulated_pir_schedule() -> None:
    opts = PirOptions(pin=4, emulate=PirEmulate(every_seconds=0.03, jitter_seconds=0.0,
                                                motion_seconds=0.03))
    with emulated(SystemClock()) as ctx:
        sensor = build(ctx, "pir", opts, 10.0)
        with running(sensor) as r:
            assert r.next().value is False
            assert r.next().value is True


def test_options_validation() -> None:
    with pytest.raises(ValueError):
        PirOptions(pin=99)
    with pytest.raises(ValueError):
        PirOptions(pin=4, count_seconds=0)
