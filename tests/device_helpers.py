"""Shared helpers for the device tests (edge_agent/devices/<type>/tests): build a sensor on
the emulated hardware backend, reach its emulator, run it in a thread and collect what it
emits."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge_agent.core.clock import Clock, ManualClock
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.devices.base import Sensor, SensorContext, SensorSpec
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.hal.emulated import EmulatedDevice, EmulatedHardware
from edge_agent.hal.emulated.gpio import PinDriver
from edge_agent.hal.interfaces import Hardware

LOG = logging.getLogger("test")


def context(hw: Hardware, clock: Clock | None = None,
            state_dir: Path | None = None) -> SensorContext:
    return SensorContext(hw, clock or ManualClock(), LOG, state_dir)


@contextmanager
def emulated(clock: Clock | None = None, state_dir: Path | None = None,
             ) -> Iterator[SensorContext]:
    """A context on a fresh emulated backend, closed (emulators stopped) on exit."""
    clock = clock or ManualClock()
    hw = EmulatedHardware(clock)
    try:
        yield context(hw, clock, state_dir)
    finally:
        hw.close()


def spec(type_name: str, interval: float | None = None, sensor_id: str = "dev",
         channel: Channel | None = None, priority: Priority | None = None) -> SensorSpec:
    t = SENSOR_TYPES[type_name]
    return SensorSpec(sensor_id, type_name, channel or t.default_channel,
                      priority if priority is not None else t.default_priority,
                      t.default_interval if interval is None else interval)


def build(ctx: SensorContext, type_name: str, options: Any, interval: float | None = None,
          **kw: Any) -> Any:
    """``type_name``'s sensor, built as the runtime builds it (hardware bound)."""
    return SENSOR_TYPES[type_name].build(spec(type_name, interval, **kw), options, ctx)


def device_hw(sensor: Sensor) -> EmulatedDevice:
    hw = sensor.ctx.hw
    assert isinstance(hw, EmulatedDevice), "the sensor is not on emulated hardware"
    return hw


def emulator(sensor: Sensor) -> Any:
    """The sensor's emulator (None on real hardware)."""
    hw = sensor.ctx.hw
    return hw.emulator if isinstance(hw, EmulatedDevice) else None


def i2c_bus(sensor: Sensor, bus: int = 1) -> Any:
    """The emulated I2C bus the sensor's chip sits on (for NAK / bus error injection)."""
    return device_hw(sensor).i2c(bus)


def pin_driver(sensor: Any, active_low: bool | None = None) -> PinDriver:
    """Drive the open sensor's (mock) pin. ``active_low`` defaults to the emulated wiring."""
    factory = sensor.pin_factory
    assert factory is not None, "the sensor is not open"
    if active_low is None:
        emulation = device_hw(sensor).emulation
        assert emulation is not None and hasattr(emulation, "active_low")
        active_low = bool(emulation.active_low)
    return PinDriver(factory.pin(sensor.pin), active_low=active_low)


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
