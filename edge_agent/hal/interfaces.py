"""The hardware interfaces drivers are written against.

- ``I2CBus``: raw transfers on one I2C bus (smbus2 on a Pi, a register-map emulator here).
- ``ByteStream``: a serial port (pyserial ``serial_for_url`` for both: a real tty, a pty wired
  to an emulator, ``socket://`` to a TCP serial server, ``loop://``).
- GPIO: gpiozero devices with an injected ``pin_factory`` (real, or gpiozero's MockFactory).
"""

from __future__ import annotations

from typing import Protocol


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
