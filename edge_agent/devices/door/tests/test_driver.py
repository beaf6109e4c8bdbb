"""Door contact (reed switch) on gpiozero's MockFactory (the emulated backend's)."""

from __future__ import annotations

import pytest

from edge_agent.core.clock import ManualClock, SystemClock
from edge_agent.core.model import Channel, Priority
from edge_agent.devices.base import SensorSpec
from edge_agent.devices.door.driver import DoorSensor
from edge_agent.devices.door.options import DoorEmulate, DoorOptions
from edge_agent.hal.emulated import EmulatedDevice, InputEmulation
from tests.device_helpers import build, context, emulated, pin_driver, running


def make(options: DoorOptions, clock: ManualClock) -> DoorSensor:
    """A door contact whose pin the test drives (nothing wired: the pin floats at its pull)."""
    hw = EmulatedDevice(InputEmulation(options.pin, active_low=not options.pull_up))
    spec = SensorSpec("door", "door", Channel.IT, Priority.NORMAL, 10.0)
    return DoorSensor(spec, context(hw, clock), options)


def test_door_open_and_close() -> None:
    clock = ManualClock()
    sensor = make(DoorOptions(pin=22), clock)
    with running(sensor) as r:
        first = r.next()
        pin = pin_driver(sensor)
        clock.advance(1)
        pin.deactivate()  # contact closes: door shut
        clock.advance(1)
        pin.activate(bounce_edges=3)  # opened, with reed bounce
        got = [x.value for x in r.drain()]
    assert (first.name, first.value) == ("open", True)  # pull-up idle: contact open
    assert got == [False, True]


def test_emulated_door_schedule() -> None:
    opts = DoorOptions(pin=22, emulate=DoorEmulate(every_seconds=0.08, jitter_seconds=0.0,
                                                   open_seconds=0.08, seed=3))
    with emulated(SystemClock()) as ctx:
        sensor = build(ctx, "door", opts, 10.0)
        with running(sensor) as r:
            first = r.next()  # the emulator keeps the door shut between openings
            values = [r.next().value for _ in range(3)]
    assert first.value is False
    assert values == [True, False, True]


def test_options_validation() -> None:
    with pytest.raises(ValueError):
        DoorOptions(pin=4, bounce_ms=-1)
