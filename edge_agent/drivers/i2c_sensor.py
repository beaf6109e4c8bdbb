"""The common shape of a polled I2C sensor: one bus, set up on open, measured each poll.

A subclass implements ``setup(bus)`` (probe the chip, reset it, read its calibration) and
``measure(bus)`` (one reading); opening, closing and the error path live here once.
``bus_opener`` gives the real smbus2 bus on a Pi and an emulated register-level bus with the
chip's emulator attached otherwise, so the same driver code runs on both.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterable

from edge_agent.drivers.base import PollingSensor, Sample, SensorContext, SensorSpec
from edge_agent.hal.i2c import EmulatedI2CBus, I2CDevice, SMBus2Bus, no_wait
from edge_agent.hal.interfaces import I2CBus

Wait = Callable[[float], None]


class I2CSensor(PollingSensor):
    """open(): bus + ``setup``; sample(): ``measure``; close(): release the bus."""

    def __init__(self, spec: SensorSpec, ctx: SensorContext, open_bus: Callable[[], I2CBus],
                 wait: Wait = time.sleep) -> None:
        super().__init__(spec, ctx)
        self._open_bus = open_bus
        self._wait = wait
        self._bus: I2CBus | None = None

    def setup(self, bus: I2CBus) -> None:
        """Probe and initialise the chip; raise HardwareError/ProtocolError if it is wrong."""

    @abc.abstractmethod
    def measure(self, bus: I2CBus) -> Iterable[Sample]:
        """One measurement: validated samples, or an error (never an invented value)."""

    def open(self) -> None:
        bus = self._open_bus()
        try:
            self.setup(bus)
        except BaseException:
            bus.close()
            raise
        self._bus = bus

    def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.close()

    def sample(self) -> Iterable[Sample]:
        if self._bus is None:
            self.open()
        assert self._bus is not None
        return self.measure(self._bus)


def bus_opener(ctx: SensorContext, bus_number: int, address: int,
               device: I2CDevice | None) -> tuple[Callable[[], I2CBus], Wait]:
    """How to open the bus, and how to wait for a conversion, for this hardware mode.

    ``device``, the chip's emulator, is attached at ``address`` to an emulated bus when the
    site runs on emulated hardware; on a Pi the real ``/dev/i2c-<bus_number>`` is opened.
    """
    if ctx.hardware == "emulated":
        if device is None:
            raise ValueError("an emulated I2C bus needs the chip's emulator")
        bus = EmulatedI2CBus()
        bus.attach(address, device)
        return (lambda: bus), no_wait
    return (lambda: SMBus2Bus(bus_number)), time.sleep
