"""The hardware interfaces drivers are written against.

- ``Hardware``: what a driver asks for (``ctx.hw``): an I2C bus, a serial port, a GPIO pin
  factory, a conversion wait. One backend is chosen once from the site's ``hardware:``
  (hal.backend.open_hardware): the real one (smbus2, pyserial, gpiozero on lgpio) or the
  emulated one (hal.emulated), which wires each device's emulator behind the same calls.
- ``I2CBus``: raw transfers on one I2C bus (smbus2 on a Pi, a register-map emulator here).
- ``ByteStream``: a serial port (pyserial ``serial_for_url`` for both: a real tty, the pty of
  an emulated device, ``socket://`` to a TCP serial server, ``loop://``).
- GPIO: gpiozero devices with an injected ``pin_factory`` (lgpio, or a MockFactory whose
  pin is driven by the emulated input).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from edge_agent.hal.serial import SerialPort


class I2CBus(Protocol):
    """One I2C bus. Every method raises DeviceNotFoundError on a NAK, HardwareError otherwise."""

    def write(self, address: int, data: bytes) -> None:
        """Write ``data`` to the device (START addr+W data STOP)."""
        ...

    def read(self, address: int, length: int) -> bytes:
        """Read ``length`` bytes (START addr+R ... STOP)."""
        ...

    def write_read(self, address: int, data: bytes, length: int) -> bytes:
        """Write then read with a repeated start (register reads: ``data = bytes([reg])``)."""
        ...

    def close(self) -> None: ...


class ByteStream(Protocol):
    """The subset of ``serial.Serial`` drivers use."""

    @property
    def baudrate(self) -> int: ...

    @baudrate.setter
    def baudrate(self, value: int) -> None: ...

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes; fewer (possibly none) when the port's timeout expires."""
        ...

    def write(self, data: bytes) -> int | None: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


class Hardware(Protocol):
    """The hardware backend, as a driver sees it through ``ctx.hw``.

    ``device(emulation)`` gives the view of one sensor: the real backend returns itself; the
    emulated one builds the sensor's emulator with ``emulation`` (the SensorType's emulator
    factory, bound to the sensor's options) and answers the calls below with it. ``close``
    releases what the backend started (emulator threads and ptys); drivers never call it.
    """

    def i2c(self, bus: int) -> I2CBus:
        """I2C bus ``bus`` (``/dev/i2c-<bus>``). Closing it is the caller's job."""
        ...

    def serial(self, port: str, baudrate: int, *, framing: str = "8N1",
               timeout: float = 0.1) -> SerialPort:
        """Open ``port`` (a path or pyserial URL); DeviceNotFoundError if it is absent."""
        ...

    def pin_factory(self) -> Any:
        """A new gpiozero pin factory for this sensor's pins. Closing it is the caller's job."""
        ...

    def wait(self, seconds: float) -> None:
        """Wait for a device to finish a conversion (emulated devices answer at once)."""
        ...

    def device(self, emulation: Callable[[], object] | None) -> Hardware:
        """This backend as seen by one sensor whose emulator ``emulation`` builds."""
        ...

    def close(self) -> None:
        """Stop what the backend started. Idempotent."""
        ...
