"""The emulated hardware backend (``hardware: emulated``): every device is its emulator.

``EmulatedHardware.device(emulation)`` builds one sensor's emulator (the SensorType's
emulator factory bound to the sensor's options) and answers the driver's calls with it:

- a ``PtyDevice`` (a serial device): ``serial()`` starts it on first use and opens its pty
  through the same ``hal.serial.open_serial`` (pyserial ``serial_for_url``) the real backend
  uses, so the driver's bytes, line settings and unplug errors are real;
- an ``I2CTarget``: ``i2c()`` returns one EmulatedI2CBus with the chip attached at its
  address (the same bus on every open: fault injection persists across reopens);
- an ``InputEmulation``: ``pin_factory()`` returns a new EmulatedPinFactory driving the pin;
- None: a device with no emulator (every call finds nothing, as on an empty bus).

Emulators run until ``close()`` (the agent's shutdown): a device stays plugged in while its
driver reopens it. See docs/design/0010-emulated-hardware-backend.md for why a pty.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_agent.core.clock import Clock
from edge_agent.core.errors import DeviceNotFoundError
from edge_agent.hal.emulated.gpio import EmulatedPinFactory, InputEmulation
from edge_agent.hal.emulated.i2c import EmulatedI2CBus, I2CDevice
from edge_agent.hal.emulated.pty import PtyDevice
from edge_agent.hal.interfaces import Hardware, I2CBus
from edge_agent.hal.serial import SerialPort, open_serial

__all__ = ["EmulatedDevice", "EmulatedHardware", "Emulation", "I2CTarget", "InputEmulation"]


@dataclass(frozen=True)
class I2CTarget:
    """An emulated I2C chip and the address it answers at."""

    address: int
    device: I2CDevice


Emulation = PtyDevice | I2CTarget | InputEmulation
"""What an emulator factory returns: the kind says how the backend wires it."""


class EmulatedHardware:
    """The emulated backend of one agent: builds, wires and finally stops the emulators."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._devices: list[EmulatedDevice] = []
        self._closed = False

    def device(self, emulation: Callable[[], object] | None) -> Hardware:
        built = emulation() if emulation is not None else None
        if built is not None and not isinstance(built, PtyDevice | I2CTarget | InputEmulation):
            raise TypeError(f"an emulator factory returned {type(built).__name__}, not a "
                            "PtyDevice, I2CTarget or InputEmulation")
        dev = EmulatedDevice(built)
        with self._lock:
            if self._closed:
                raise RuntimeError("the emulated hardware is closed")
            self._devices.append(dev)
        return dev

    def i2c(self, bus: int) -> I2CBus:
        return EmulatedI2CBus()  # no sensor bound: an empty bus, every address NAKs

    def serial(self, port: str, baudrate: int, *, framing: str = "8N1",
               timeout: float = 0.1) -> SerialPort:
        raise DeviceNotFoundError(errno.ENOENT, f"{port}: no emulated device (not bound)")

    def pin_factory(self) -> Any:
        return EmulatedPinFactory()

    def wait(self, seconds: float) -> None:
        """Emulated devices answer at once."""

    def close(self) -> None:
        with self._lock:
            self._closed = True
            devices, self._devices = self._devices, []
        for d in devices:
            d.close()


class EmulatedDevice:
    """One sensor's view of the emulated hardware (``ctx.hw`` of that sensor)."""

    def __init__(self, emulation: Emulation | None) -> None:
        self.emulation = emulation
        self._lock = threading.Lock()
        self._started = False
        self._bus: EmulatedI2CBus | None = None
        if isinstance(emulation, I2CTarget):
            self._bus = EmulatedI2CBus()
            self._bus.attach(emulation.address, emulation.device)
        self.factory: EmulatedPinFactory | None = None  # the last pin factory handed out

    @property
    def emulator(self) -> Any:
        """The device's emulator (tests and rigs inject faults through it), or None."""
        e = self.emulation
        if isinstance(e, I2CTarget):
            return e.device
        return e

    def i2c(self, bus: int) -> I2CBus:
        if self._bus is None:
            self._bus = EmulatedI2CBus()
        return self._bus

    def serial(self, port: str, baudrate: int, *, framing: str = "8N1",
               timeout: float = 0.1) -> SerialPort:
        pty = self.emulation
        if not isinstance(pty, PtyDevice):
            raise DeviceNotFoundError(errno.ENOENT, f"{port}: no emulated serial device")
        with self._lock:
            if not self._started:
                pty.start()
                self._started = True
        return open_serial(pty.path, baudrate, framing=framing, timeout=timeout)

    def pin_factory(self) -> Any:
        e = self.emulation
        factory = EmulatedPinFactory(e if isinstance(e, InputEmulation) else None)
        self.factory = factory
        return factory

    def wait(self, seconds: float) -> None:
        """Emulated devices answer at once."""

    def device(self, emulation: Callable[[], object] | None) -> Hardware:
        raise RuntimeError("already the hardware of one device")

    def close(self) -> None:
        with self._lock:
            started, self._started = self._started, False
        if started and isinstance(self.emulation, PtyDevice):
            self.emulation.stop()
