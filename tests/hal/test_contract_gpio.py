"""The GPIO contract (``Hardware.pin_factory``), run against every backend available.

A gpiozero input with the pull-up, driven low and high from outside: emulated, by the
input's emulation on the emulated pin factory; real (a rig), by an output pin wired to the
input: set ``EDGE_HIL_GPIO_PINS=<input>,<output>`` (BCM numbers); skipped otherwise.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from gpiozero import DigitalInputDevice, DigitalOutputDevice

from edge_agent.core.clock import SystemClock
from edge_agent.hal.backend import RealHardware
from edge_agent.hal.emulated import EmulatedHardware, InputEmulation
from edge_agent.hal.emulated.gpio import PinDriver
from edge_agent.hal.interfaces import Hardware

REAL_PINS = os.environ.get("EDGE_HIL_GPIO_PINS")


@dataclass
class Rig:
    hw: Hardware
    pin: int
    wire: Callable[[Any], Callable[[bool], None]]  # factory -> set the wire's level


def _emulated_wire(pin: int) -> Callable[[Any], Callable[[bool], None]]:
    def wire(factory: Any) -> Callable[[bool], None]:
        driver = PinDriver(factory.pin(pin), active_low=True)
        return lambda high: driver.drive_high() if high else driver.drive_low()
    return wire


def _real_wire(output: int, owned: list[Any]) -> Callable[[Any], Callable[[bool], None]]:
    def wire(factory: Any) -> Callable[[bool], None]:
        out = DigitalOutputDevice(output, initial_value=True, pin_factory=factory)
        owned.append(out)
        return lambda high: out.on() if high else out.off()
    return wire


@pytest.fixture(params=["emulated", "real"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    if request.param == "real":
        if not REAL_PINS:
            pytest.skip("real GPIO backend: set EDGE_HIL_GPIO_PINS=<input>,<output> (wired)")
        pin, output = (int(p) for p in REAL_PINS.split(","))
        owned: list[Any] = []
        yield Rig(RealHardware(), pin, _real_wire(output, owned))
        for dev in owned:
            dev.close()
        return
    backend = EmulatedHardware(SystemClock())
    hw = backend.device(lambda: InputEmulation(17, active_low=True))
    try:
        yield Rig(hw, 17, _emulated_wire(17))
    finally:
        backend.close()


def wait_until(pred: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.005)
    return pred()


def test_input_follows_the_wire_and_fires_once_per_edge(rig: Rig) -> None:
    factory = rig.hw.pin_factory()
    try:
        button = DigitalInputDevice(rig.pin, pull_up=True, pin_factory=factory)
        set_wire = rig.wire(factory)
        pressed, released = threading.Event(), threading.Event()
        counts = {"pressed": 0, "released": 0}

        def on_press() -> None:
            counts["pressed"] += 1
            pressed.set()

        def on_release() -> None:
            counts["released"] += 1
            released.set()

        button.when_activated = on_press
        button.when_deactivated = on_release
        set_wire(True)
        assert wait_until(lambda: not button.is_active)  # high = released (pull-up)
        set_wire(False)
        assert pressed.wait(2.0) and wait_until(lambda: button.is_active)
        set_wire(True)
        assert released.wait(2.0) and wait_until(lambda: not button.is_active)
        assert counts == {"pressed": 1, "released": 1}
        button.close()
    finally:
        factory.close()


def test_each_factory_is_separate_and_a_closed_one_frees_the_pin(rig: Rig) -> None:
    first = rig.hw.pin_factory()
    a = DigitalInputDevice(rig.pin, pull_up=True, pin_factory=first)
    a.close()
    first.close()
    second = rig.hw.pin_factory()
    try:
        assert second is not first
        b = DigitalInputDevice(rig.pin, pull_up=True, pin_factory=second)
        b.close()
    finally:
        second.close()
