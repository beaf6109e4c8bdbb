"""The I2C backends: the emulated bus's faults and the smbus2 error mapping."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from edge_agent.core.errors import DeviceNotFoundError, HardwareError
from edge_agent.hal import i2c
from edge_agent.hal.emulated.i2c import EmulatedI2CBus
from edge_agent.hal.i2c import SMBus2Bus


class Echo:
    """A device that remembers writes and reads back a fixed pattern."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def read(self, n: int) -> bytes:
        return bytes(range(n))

    def write_read(self, data: bytes, n: int) -> bytes:
        self.written.append(data)
        return bytes([data[0]] * n)


def test_transfers_reach_the_device() -> None:
    bus = EmulatedI2CBus()
    dev = Echo()
    bus.attach(0x44, dev)
    bus.write(0x44, b"\x24\x00")
    assert dev.written == [b"\x24\x00"]
    assert bus.read(0x44, 3) == b"\x00\x01\x02"
    assert bus.write_read(0x44, b"\x07", 2) == b"\x07\x07"
    assert bus.device(0x44) is dev


def test_absent_address_naks() -> None:
    bus = EmulatedI2CBus()
    with pytest.raises(DeviceNotFoundError):
        bus.read(0x40, 1)


def test_nak_next_then_recovers() -> None:
    bus = EmulatedI2CBus()
    bus.attach(0x44, Echo())
    bus.nak_next(0x44, 2)
    for _ in range(2):
        with pytest.raises(DeviceNotFoundError):
            bus.write(0x44, b"\x00")
    bus.write(0x44, b"\x00")


def test_bus_error_is_hardware_error_not_nak() -> None:
    bus = EmulatedI2CBus()
    bus.attach(0x44, Echo())
    bus.bus_error_next(0x44)
    with pytest.raises(HardwareError) as info:
        bus.read(0x44, 1)
    assert not isinstance(info.value, DeviceNotFoundError)
    assert bus.read(0x44, 1) == b"\x00"


def test_unplug_and_plug() -> None:
    bus = EmulatedI2CBus()
    bus.attach(0x44, Echo())
    bus.unplug(0x44)
    with pytest.raises(DeviceNotFoundError):
        bus.read(0x44, 1)
    bus.plug(0x44)
    assert bus.read(0x44, 1) == b"\x00"


def test_short_answer_padded_as_idle_bus() -> None:
    class Short(Echo):
        def read(self, n: int) -> bytes:
            return b"\x01"

    bus = EmulatedI2CBus()
    bus.attach(0x10, Short())
    assert bus.read(0x10, 3) == b"\x01\xff\xff"


def test_invalid_and_duplicate_addresses() -> None:
    bus = EmulatedI2CBus()
    with pytest.raises(ValueError):
        bus.attach(0x80, Echo())
    bus.attach(0x44, Echo())
    with pytest.raises(ValueError):
        bus.attach(0x44, Echo())
    bus.detach(0x44)
    with pytest.raises(DeviceNotFoundError):
        bus.read(0x44, 1)


class FakeSMBus:
    """Stands in for smbus2.SMBus: fails i2c_rdwr with a given errno, or fills reads."""

    fail_errno: int | None = None

    def __init__(self, bus: int) -> None:
        self.bus = bus
        self.closed = False

    def i2c_rdwr(self, *msgs: Any) -> None:
        if self.fail_errno is not None:
            raise OSError(self.fail_errno, "fake")
        for m in msgs:
            if m.flags & 1:  # I2C_M_RD
                for k in range(m.len):
                    m.buf[k] = bytes([0xA0 + k])

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_smbus(monkeypatch: pytest.MonkeyPatch) -> type[FakeSMBus]:
    import smbus2

    monkeypatch.setattr(smbus2, "SMBus", FakeSMBus)
    FakeSMBus.fail_errno = None
    return FakeSMBus


def test_smbus2_read_and_write_read(fake_smbus: type[FakeSMBus]) -> None:
    bus = SMBus2Bus(1)
    assert bus.read(0x44, 2) == b"\xa0\xa1"
    assert bus.write_read(0x44, b"\xd0", 1) == b"\xa0"
    bus.write(0x44, b"\x30\xa2")
    bus.close()
    with pytest.raises(HardwareError):
        bus.read(0x44, 1)


@pytest.mark.parametrize("code", [errno.ENXIO, errno.EREMOTEIO, errno.EIO])
def test_smbus2_nak_errnos(fake_smbus: type[FakeSMBus], code: int) -> None:
    fake_smbus.fail_errno = code
    with pytest.raises(DeviceNotFoundError):
        SMBus2Bus(1).read(0x44, 1)


def test_smbus2_other_errors(fake_smbus: type[FakeSMBus]) -> None:
    fake_smbus.fail_errno = errno.ETIMEDOUT
    with pytest.raises(HardwareError) as info:
        SMBus2Bus(1).write(0x44, b"\x00")
    assert not isinstance(info.value, DeviceNotFoundError)
    assert info.value.errno == errno.ETIMEDOUT


def test_missing_bus_device_is_not_found() -> None:
    with pytest.raises(DeviceNotFoundError):
        SMBus2Bus(250)  # /dev/i2c-250 does not exist


def test_map_os_error() -> None:
    assert isinstance(i2c.map_os_error(OSError(errno.ENXIO, "x"), "w"), DeviceNotFoundError)
    err = i2c.map_os_error(OSError(errno.EBUSY, "x"), "w")
    assert type(err) is HardwareError
