"""An in-process I2C bus of emulated devices (the register maps in devices/<type>/emulator.py).

It implements ``hal.interfaces.I2CBus`` like the smbus2 bus: a NAK (absent or busy device)
raises DeviceNotFoundError, any other bus failure HardwareError. Faults are injected per
address (NAK, bus error, unplug), so drivers are tested on the error paths a real bus has.
"""

from __future__ import annotations

import errno
import threading
from dataclasses import dataclass
from typing import Protocol

from edge_agent.core.errors import DeviceNotFoundError, HardwareError
from edge_agent.hal.i2c import check_address


class I2CDevice(Protocol):
    """The device side of an emulated I2C slave."""

    def write(self, data: bytes) -> None:
        """Bytes written by the master (START addr+W data STOP)."""
        ...

    def read(self, n: int) -> bytes:
        """``n`` bytes for the master (START addr+R ... STOP)."""
        ...

    def write_read(self, data: bytes, n: int) -> bytes:
        """Write then read with a repeated start."""
        ...


@dataclass
class _Faults:
    nak: int = 0  # NAK this many coming transfers
    bus_error: int = 0  # fail this many coming transfers with EIO-like bus error
    present: bool = True


class EmulatedI2CBus:
    """An in-process I2C bus holding emulated devices by 7-bit address. Thread-safe.

    Fault injection per address: ``nak_next`` (device NAKs), ``bus_error_next`` (a bus
    fault, e.g. arbitration lost), ``unplug``/``plug`` (device vanishes and comes back).
    """

    def __init__(self) -> None:
        self._devices: dict[int, I2CDevice] = {}
        self._faults: dict[int, _Faults] = {}
        self._lock = threading.Lock()
        self.transfers = 0

    def attach(self, address: int, device: I2CDevice) -> None:
        check_address(address)
        with self._lock:
            if address in self._devices:
                raise ValueError(f"address 0x{address:02X} already in use")
            self._devices[address] = device
            self._faults[address] = _Faults()

    def detach(self, address: int) -> None:
        with self._lock:
            self._devices.pop(address, None)
            self._faults.pop(address, None)

    def device(self, address: int) -> I2CDevice:
        with self._lock:
            return self._devices[address]

    def nak_next(self, address: int, count: int = 1) -> None:
        with self._lock:
            self._faults[address].nak += count

    def bus_error_next(self, address: int, count: int = 1) -> None:
        with self._lock:
            self._faults[address].bus_error += count

    def unplug(self, address: int) -> None:
        with self._lock:
            self._faults[address].present = False

    def plug(self, address: int) -> None:
        with self._lock:
            self._faults[address].present = True

    def _target(self, address: int) -> I2CDevice:
        """The device for one transfer, after faults; call with the lock held."""
        check_address(address)
        self.transfers += 1
        dev = self._devices.get(address)
        faults = self._faults.get(address)
        if dev is None or faults is None or not faults.present:
            raise DeviceNotFoundError(errno.ENXIO, f"0x{address:02X}: no answer (NAK)")
        if faults.bus_error:
            faults.bus_error -= 1
            raise HardwareError(errno.EAGAIN, f"0x{address:02X}: bus error (arbitration lost)")
        if faults.nak:
            faults.nak -= 1
            raise DeviceNotFoundError(errno.EREMOTEIO, f"0x{address:02X}: NAK")
        return dev

    def write(self, address: int, data: bytes) -> None:
        with self._lock:
            self._target(address).write(bytes(data))

    def read(self, address: int, length: int) -> bytes:
        with self._lock:
            out = self._target(address).read(length)
        return _exact(out, length)

    def write_read(self, address: int, data: bytes, length: int) -> bytes:
        with self._lock:
            out = self._target(address).write_read(bytes(data), length)
        return _exact(out, length)

    def close(self) -> None:
        """Nothing to release: the emulated bus outlives the drivers that share it."""


def _exact(data: bytes, length: int) -> bytes:
    # A real master clocks exactly ``length`` bytes; an idle bus reads as 0xFF.
    return bytes(data[:length]) + b"\xff" * (length - len(data))


def no_wait(seconds: float) -> None:
    """A conversion wait for emulated devices, which answer at once."""
