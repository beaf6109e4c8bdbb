"""The common shape of a polled I2C sensor: one bus, set up on open, measured each poll.

A subclass implements ``setup(bus)`` (probe the chip, reset it, read its calibration) and
``measure(bus)`` (one reading); opening, closing and the error path live here once. The bus
comes from ``ctx.hw.i2c(bus_number)`` (smbus2 on a Pi, the emulated bus with the chip's
emulator attached otherwise) and conversion times are waited with ``ctx.hw.wait``, so the
same driver code runs on both.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable

from edge_agent.devices.base import PollingSensor, Sample, SensorContext, SensorSpec
from edge_agent.hal.interfaces import I2CBus


class I2CSensor(PollingSensor):
    """open(): bus + ``setup``; sample(): ``measure``; close(): release the bus."""

    def __init__(self, spec: SensorSpec, ctx: SensorContext, bus_number: int) -> None:
        super().__init__(spec, ctx)
        self.bus_number = bus_number
        self._bus: I2CBus | None = None

    def _wait(self, seconds: float) -> None:
        self.ctx.hw.wait(seconds)

    def setup(self, bus: I2CBus) -> None:
        """Probe and initialise the chip; raise HardwareError/ProtocolError if it is wrong."""

    @abc.abstractmethod
    def measure(self, bus: I2CBus) -> Iterable[Sample]:
        """One measurement: validated samples, or an error (never an invented value)."""

    def open(self) -> None:
        bus = self.ctx.hw.i2c(self.bus_number)
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
