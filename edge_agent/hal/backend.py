"""The hardware backend, chosen once from the site's ``hardware:`` (``open_hardware``).

``raspberry-pi``: smbus2 I2C buses, pyserial ports, gpiozero on lgpio, real conversion waits.
``emulated``: every device is its emulator, wired behind the same calls (hal.emulated).
Drivers never learn which one they got.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge_agent.core.clock import Clock
from edge_agent.core.model import HardwareMode
from edge_agent.hal.emulated import EmulatedHardware
from edge_agent.hal.gpio import real_pin_factory
from edge_agent.hal.i2c import SMBus2Bus
from edge_agent.hal.interfaces import Hardware, I2CBus
from edge_agent.hal.serial import SerialPort, open_serial


class RealHardware:
    """The devices wired to this Raspberry Pi. Stateless: every call opens what it names."""

    def i2c(self, bus: int) -> I2CBus:
        return SMBus2Bus(bus)

    def serial(self, port: str, baudrate: int, *, framing: str = "8N1",
               timeout: float = 0.1) -> SerialPort:
        return open_serial(port, baudrate, framing=framing, timeout=timeout)

    def pin_factory(self) -> Any:
        return real_pin_factory()

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def device(self, emulation: Callable[[], object] | None) -> Hardware:
        return self  # a real device needs no emulator

    def close(self) -> None:
        """Nothing to release: drivers close what they open."""


def open_hardware(mode: HardwareMode, clock: Clock) -> Hardware:
    """The backend for ``hardware: <mode>``."""
    if mode == "raspberry-pi":
        return RealHardware()
    if mode == "emulated":
        return EmulatedHardware(clock)
    raise ValueError(f"unknown hardware mode {mode!r} (emulated or raspberry-pi)")
