"""The real I2C bus: Linux i2c-dev driven with smbus2 (the emulated one is hal.emulated.i2c).

Both implement ``hal.interfaces.I2CBus``: a NAK (absent or busy device) raises
DeviceNotFoundError, any other bus failure HardwareError.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from typing import Any

from edge_agent.core.errors import DeviceNotFoundError, HardwareError

_NAK_ERRNOS = frozenset({errno.ENXIO, errno.EREMOTEIO, errno.EIO, errno.ENODEV, errno.ENOENT})


def check_address(address: int) -> None:
    if not 0x03 <= address <= 0x77:
        raise ValueError(f"invalid 7-bit I2C address 0x{address:02X}")


def map_os_error(exc: OSError, what: str) -> HardwareError:
    """The edge-agent error for an OSError from the i2c-dev driver."""
    if exc.errno in _NAK_ERRNOS:
        return DeviceNotFoundError(exc.errno or errno.ENXIO, f"{what}: no answer (NAK): {exc}")
    return HardwareError(exc.errno or errno.EIO, f"{what}: {exc}")


class SMBus2Bus:
    """A Linux i2c-dev bus (``/dev/i2c-N``) driven with smbus2 plain I2C transfers."""

    def __init__(self, bus_number: int) -> None:
        from smbus2 import SMBus  # imported here: only needed on real hardware

        self.bus_number = bus_number
        self._lock = threading.Lock()
        try:
            self._bus: Any = SMBus(bus_number)
        except OSError as exc:
            raise map_os_error(exc, f"/dev/i2c-{bus_number}") from exc

    def _rdwr(self, address: int, *msgs: Any) -> None:
        check_address(address)
        with self._lock:
            if self._bus is None:
                raise HardwareError(errno.EBADF, f"/dev/i2c-{self.bus_number} is closed")
            try:
                self._bus.i2c_rdwr(*msgs)
            except OSError as exc:
                raise map_os_error(exc, f"i2c-{self.bus_number} 0x{address:02X}") from exc

    def write(self, address: int, data: bytes) -> None:
        from smbus2 import i2c_msg

        self._rdwr(address, i2c_msg.write(address, bytes(data)))

    def read(self, address: int, length: int) -> bytes:
        from smbus2 import i2c_msg

        msg = i2c_msg.read(address, length)
        self._rdwr(address, msg)
        return bytes(msg)

    def write_read(self, address: int, data: bytes, length: int) -> bytes:
        from smbus2 import i2c_msg

        msg = i2c_msg.read(address, length)
        self._rdwr(address, i2c_msg.write(address, bytes(data)), msg)
        return bytes(msg)

    def close(self) -> None:
        with self._lock:
            bus, self._bus = self._bus, None
        if bus is not None:
            with contextlib.suppress(OSError):
                bus.close()
