"""Shared helpers for the device tests (edge_agent/devices/<type>/tests): build a sensor on
the emulated hardware backend, reach its emulator, run it in a thread and collect what it
emits."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

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


class Collector:
    """What a running sensor emitted, safe to read while its thread appends."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self._lock = threading.Lock()

    def emit(self, batch: list[Reading]) -> None:
        with self._lock:
            self.readings += batch

    def named(self, name: str) -> list[Reading]:
        with self._lock:
            return [r for r in self.readings if r.name == name]

    def wait(self, pred: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``pred()`` holds; AssertionError after ``timeout`` seconds."""
        ev = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if pred():
                return
            ev.wait(0.01)
        raise AssertionError("condition not met in time")


S = TypeVar("S", bound=Sensor)
D = TypeVar("D")


class EmulatorRig(Collector, Generic[S, D]):
    """A sensor running in its own thread against its emulator, readings collected."""

    def __init__(self, device: D, make_sensor: Callable[[SensorContext], S],
                 clock: Clock) -> None:
        super().__init__()
        self.device = device
        self.hw = EmulatedDevice(device)
        self.sensor = make_sensor(context(self.hw, clock))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sensor.run, args=(self.emit, self.stop))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.hw.close()
        assert not self.thread.is_alive(), "run() did not return after stop"


@contextmanager
def rigs() -> Iterator[list[EmulatorRig[Any, Any]]]:
    """A list to start rigs into; each is stopped and its emulator closed on exit."""
    started: list[EmulatorRig[Any, Any]] = []
    try:
        yield started
    finally:
        for rig in started:
            rig.close()
