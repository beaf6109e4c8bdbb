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
    """A Linux i2c-dev bus (``/dev/i2c-N``) driven with smbus2 plain I2C transfers.

    An adapter that cannot do plain I2C (``I2C_FUNC_I2C`` unset: SMBus controllers, some USB
    bridges, the kernel's i2c-stub) gets the same bytes on the wire as SMBus transactions:
    a register read is an SMBus (I2C block) read, a register write a byte or block write.
    Transfers SMBus cannot express (a read without a register, more than 32 bytes) raise
    HardwareError(EOPNOTSUPP) naming the adapter's limit.
    """

    def __init__(self, bus_number: int) -> None:
        from smbus2 import I2cFunc, SMBus  # imported here: only needed on real hardware

        self.bus_number = bus_number
        self._lock = threading.Lock()
        try:
            self._bus: Any = SMBus(bus_number)
        except OSError as exc:
            raise map_os_error(exc, f"/dev/i2c-{bus_number}") from exc
        funcs = int(getattr(self._bus, "funcs", I2cFunc.I2C))
        self.plain_i2c = bool(funcs & I2cFunc.I2C)
        self._block_read = bool(funcs & I2cFunc.SMBUS_READ_I2C_BLOCK)
        self._block_write = bool(funcs & I2cFunc.SMBUS_WRITE_I2C_BLOCK)

    def _smbus(self, address: int, call: Any, *args: Any) -> Any:
        check_address(address)
        with self._lock:
            if self._bus is None:
                raise HardwareError(errno.EBADF, f"/dev/i2c-{self.bus_number} is closed")
            try:
                return call(self._bus, address, *args)
            except OSError as exc:
                raise map_os_error(exc, f"i2c-{self.bus_number} 0x{address:02X}") from exc

    def _unsupported(self, address: int, what: str) -> HardwareError:
        return HardwareError(errno.EOPNOTSUPP,
                             f"i2c-{self.bus_number} 0x{address:02X}: {what}: the adapter "
                             "does SMBus only (no plain I2C transfers)")

    def _smbus_write(self, address: int, data: bytes) -> None:
        if len(data) == 1:
            self._smbus(address, lambda b, a: b.write_byte(a, data[0]))
        elif len(data) == 2:
            self._smbus(address,
                        lambda b, a: b.write_byte_data(a, data[0], data[1]))
        elif 2 < len(data) <= 33 and self._block_write:
            self._smbus(address,
                        lambda b, a: b.write_i2c_block_data(a, data[0], list(data[1:])))
        else:
            raise self._unsupported(address, f"a {len(data)}-byte write")

    def _smbus_register_read(self, address: int, register: int, length: int) -> bytes:
        if length == 1:
            value = self._smbus(address, lambda b, a: b.read_byte_data(a, register))
            return bytes([value])
        if 1 < length <= 32 and self._block_read:
            got = self._smbus(address,
                              lambda b, a: b.read_i2c_block_data(a, register, length))
            return bytes(got)
        raise self._unsupported(address, f"a {length}-byte register read")

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

        if not self.plain_i2c:
            self._smbus_write(address, bytes(data))
            return
        self._rdwr(address, i2c_msg.write(address, bytes(data)))

    def read(self, address: int, length: int) -> bytes:
        from smbus2 import i2c_msg

        if not self.plain_i2c:
            if length != 1:
                raise self._unsupported(address, f"a {length}-byte read without a register")
            return bytes([self._smbus(address, lambda b, a: b.read_byte(a))])
        msg = i2c_msg.read(address, length)
        self._rdwr(address, msg)
        return bytes(msg)

    def write_read(self, address: int, data: bytes, length: int) -> bytes:
        from smbus2 import i2c_msg

        if not self.plain_i2c:
            if len(data) != 1:
                raise self._unsupported(address, f"a {len(data)}-byte command before a read")
            return self._smbus_register_read(address, data[0], length)
        msg = i2c_msg.read(address, length)
        self._rdwr(address, i2c_msg.write(address, bytes(data)), msg)
        return bytes(msg)

    def close(self) -> None:
        with self._lock:
            bus, self._bus = self._bus, None
        if bus is not None:
            with contextlib.suppress(OSError):
                bus.close()
