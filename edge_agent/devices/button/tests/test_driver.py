"""The emergency button on gpiozero's MockFactory: presses, bounce, hold, shutdown."""

from __future__ import annotations

from typing import Any

import pytest

from edge_agent.core.clock import Clock, ManualClock, SystemClock
from edge_agent.core.model import Channel, Priority
from edge_agent.devices.base import SensorSpec
from edge_agent.devices.button.driver import ButtonSensor
from edge_agent.devices.button.options import ButtonEmulate, ButtonOptions
from edge_agent.hal.emulated import EmulatedDevice, InputEmulation
from tests.device_helpers import build, context, emulated, pin_driver, running


class CountingPins(EmulatedDevice):
    """The emulated hardware of one button, counting the pin factories it hands out."""

    def __init__(self, emulation: InputEmulation) -> None:
        super().__init__(emulation)
        self.factories: list[Any] = []

    def pin_factory(self) -> Any:
        factory = super().pin_factory()
        self.factories.append(factory)
        return factory


def make(options: ButtonOptions | None = None, clock: Clock | None = None,
         ) -> tuple[ButtonSensor, list[Any]]:
    """A button whose pin the test drives (no emulated presses)."""
    options = options or ButtonOptions(pin=17)
    hw = CountingPins(InputEmulation(options.pin, active_low=options.pull_up))
    spec = SensorSpec("sos", "button", Channel.IT, Priority.ALARM, 10.0)
    sensor = ButtonSensor(spec, context(hw, clock or ManualClock()), options)
    return sensor, hw.factories


def test_press_is_one_alarm() -> None:
    sensor, _ = make()
    with running(sensor) as r:
        pin_driver(sensor).activate()
        got = r.next()
        pin_driver(sensor).deactivate()
        assert r.drain() == []
    assert (got.name, got.value, got.priority, got.channel) == (
        "pressed", True, Priority.ALARM, Channel.IT)
    assert got.sensor == "sos"


def test_bouncing_contact_gives_one_press() -> None:
    clock = ManualClock()
    sensor, _ = make(clock=clock)
    with running(sensor) as r:
        pin = pin_driver(sensor)
        pin.activate(bounce_edges=5)
        pin.deactivate(bounce_edges=5)
        assert [x.name for x in r.drain()] == ["pressed"]
        clock.advance(1.0)  # a second, separate press later is reported
        pin.activate(bounce_edges=2)
        assert r.next().name == "pressed"
        pin.deactivate()


def test_presses_closer_than_bounce_time_are_one() -> None:
    clock = ManualClock()
    sensor, _ = make(ButtonOptions(pin=17, bounce_ms=50), clock)
    with running(sensor) as r:
        pin = pin_driver(sensor)
        pin.activate()
        clock.advance(0.01)
        pin.deactivate()
        clock.advance(0.01)
        pin.activate()  # 10 ms after the release: bounce
        clock.advance(0.5)
        pin.deactivate()
        clock.advance(0.5)
        pin.activate()  # quiet for 500 ms: a real press
        assert [x.name for x in r.drain()] == ["pressed", "pressed"]


def test_long_press_is_held_alarm() -> None:
    clock = ManualClock()
    sensor, _ = make(ButtonOptions(pin=17, hold_seconds=3.0), clock)
    with running(sensor) as r:
        pin_driver(sensor).activate()
        first = r.next()
        clock.advance(2.9)
        assert r.drain(0.1) == []
        clock.advance(0.2)
        second = r.next()
        clock.advance(10.0)
        assert r.drain(0.1) == []  # held fires once per press
        pin_driver(sensor).deactivate()
    assert (first.name, second.name) == ("pressed", "held")
    assert second.value == "held" and second.priority is Priority.ALARM


def test_stop_releases_pins_and_factory() -> None:
    sensor, factories = make()
    with running(sensor):
        device = sensor._device
        assert device is not None and not device.closed
    assert device.closed
    assert sensor._device is None and sensor._factory is None
    assert len(factories) == 1


def test_two_sensors_same_pin_have_separate_factories() -> None:
    a, fa = make()
    b, fb = make()
    with running(a) as ra, running(b) as rb:
        pin_driver(b).activate()
        assert rb.next().name == "pressed"
        assert ra.drain(0.05) == []
    assert fa[0] is not fb[0]


def test_pull_down_button_is_active_high() -> None:
    sensor, _ = make(ButtonOptions(pin=5, pull_up=False))
    with running(sensor) as r:
        pin_driver(sensor).drive_high()
        assert r.next().name == "pressed"


def test_emulated_schedule_presses_now_and_then() -> None:
    opts = ButtonOptions(pin=17, hold_seconds=0.03, emulate=ButtonEmulate(
        press_every_seconds=0.05, jitter_seconds=0.01, press_seconds=0.005,
        hold_probability=1.0, bounce_edges=3, seed=1))
    with emulated(SystemClock()) as ctx:
        sensor = build(ctx, "button", opts, 10.0)
        assert isinstance(sensor, ButtonSensor)
        with running(sensor) as r:
            factory = sensor.pin_factory
            names = [r.next().name for _ in range(4)]
        assert names == ["pressed", "held", "pressed", "held"]
        schedule = factory.schedule
        assert schedule is not None and schedule.pulses >= 2
        assert schedule._thread is None  # the schedule thread stopped with the sensor


def test_options_validation() -> None:
    with pytest.raises(ValueError):
        ButtonOptions(pin=40)
    with pytest.raises(ValueError):
        ButtonOptions(pin=17, hold_seconds=0)
    with pytest.raises(ValueError):
        ButtonEmulate(hold_probability=2.0)


def test_emulated_press_right_at_start_is_not_lost() -> None:
    """gpiozero starts listening inside the device's constructor, before the driver wires
    its callbacks: a first press due at once must still arrive (not fall in between)."""
    opts = ButtonOptions(pin=17, emulate=ButtonEmulate(
        first_after_seconds=0.0, press_every_seconds=60.0, jitter_seconds=0.0,
        press_seconds=0.2, hold_probability=0.0, bounce_edges=0, seed=1))
    for _ in range(5):
        with emulated(SystemClock()) as ctx:
            sensor = build(ctx, "button", opts, 10.0)
            with running(sensor) as r:
                assert r.next().name == "pressed"
