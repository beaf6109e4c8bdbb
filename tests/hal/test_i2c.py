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


class FakeStubSMBus:
    """Stands in for smbus2.SMBus on an SMBus-only adapter such as the kernel's i2c-stub:
    plain I2C transfers fail (EOPNOTSUPP), SMBus transactions reach a 256-byte memory."""

    mem: bytearray = bytearray(256)

    def __init__(self, bus: int) -> None:
        from smbus2 import I2cFunc

        self.funcs = (I2cFunc.SMBUS_QUICK | I2cFunc.SMBUS_BYTE | I2cFunc.SMBUS_BYTE_DATA
                      | I2cFunc.SMBUS_WORD_DATA | I2cFunc.SMBUS_I2C_BLOCK)
        self.pointer = 0

    def i2c_rdwr(self, *msgs: Any) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    def write_byte(self, addr: int, value: int) -> None:
        self.pointer = value

    def read_byte(self, addr: int) -> int:
        return self.mem[self.pointer]

    def read_byte_data(self, addr: int, reg: int) -> int:
        return self.mem[reg]

    def write_byte_data(self, addr: int, reg: int, value: int) -> None:
        self.mem[reg] = value

    def read_i2c_block_data(self, addr: int, reg: int, length: int) -> list[int]:
        assert length <= 32
        return list(self.mem[reg:reg + length])

    def write_i2c_block_data(self, addr: int, reg: int, data: list[int]) -> None:
        assert len(data) <= 32
        self.mem[reg:reg + len(data)] = bytes(data)

    def close(self) -> None:
        pass


@pytest.fixture
def stub_smbus(monkeypatch: pytest.MonkeyPatch) -> type[FakeStubSMBus]:
    import smbus2

    monkeypatch.setattr(smbus2, "SMBus", FakeStubSMBus)
    FakeStubSMBus.mem = bytearray(range(256))
    return FakeStubSMBus


def test_smbus_only_adapter_gets_register_transfers(stub_smbus: type[FakeStubSMBus]) -> None:
    bus = SMBus2Bus(0)
    assert not bus.plain_i2c
    assert bus.write_read(0x76, b"\xd0", 1) == b"\xd0"
    assert bus.write_read(0x76, b"\x88", 26) == bytes(range(0x88, 0x88 + 26))
    bus.write(0x76, b"\xe0\xb6")
    assert stub_smbus.mem[0xE0] == 0xB6
    bus.write(0x76, b"\xf2\x01\xf5\x00")
    assert stub_smbus.mem[0xF2:0xF5] == b"\x01\xf5\x00"
    bus.write(0x76, b"\x10")
    assert bus.read(0x76, 1) == b"\x10"


def test_smbus_only_adapter_refuses_what_smbus_cannot_say(
        stub_smbus: type[FakeStubSMBus]) -> None:
    bus = SMBus2Bus(0)
    with pytest.raises(HardwareError) as info:
        bus.read(0x44, 6)  # the SHT31's command-then-read: no register, 6 bytes
    assert info.value.errno == errno.EOPNOTSUPP and "SMBus only" in str(info.value)
    assert not isinstance(info.value, DeviceNotFoundError)
    with pytest.raises(HardwareError):
        bus.write_read(0x57, b"\x07", 33)


def test_bme280_driver_runs_on_an_smbus_only_adapter(stub_smbus: type[FakeStubSMBus]) -> None:
    """The register image of an emulated BME280 in a passive SMBus memory (what the HIL
    VM loads into i2c-stub): the real driver reads it through SMBus2Bus."""
    import logging

    from edge_agent.core.clock import SystemClock
    from edge_agent.core.model import Channel, Priority
    from edge_agent.devices.base import SensorContext, SensorSpec
    from edge_agent.devices.bme280.driver import BME280Sensor
    from edge_agent.devices.bme280.emulator import BME280Device
    from edge_agent.devices.bme280.options import BME280Emulate, BME280Options
    from edge_agent.hal.backend import RealHardware
    from edge_agent.protocols import bme280 as p

    dev = BME280Device(BME280Emulate(temperature=24.5, humidity=40.0, pressure=100_000.0,
                                     noise=0.0))
    dev.write(bytes([p.REG_CTRL_HUM, 1, p.REG_CTRL_MEAS, (1 << 5) | (1 << 2) | 1]))
    mem = bytearray(256)
    for start, n in ((p.REG_CALIB_T_P, p.CALIB_T_P_LEN), (p.REG_CALIB_H, p.CALIB_H_LEN),
                     (p.REG_CHIP_ID, 1), (p.REG_DATA, p.DATA_LEN)):
        mem[start:start + n] = dev.write_read(bytes([start]), n)
    stub_smbus.mem = mem
    ctx = SensorContext(RealHardware(), SystemClock(), logging.getLogger("t"))
    spec = SensorSpec("climate", "bme280", Channel.IT, Priority.NORMAL, 60.0)
    sensor = BME280Sensor(spec, ctx, BME280Options(bus=0))
    got = {s.name: s.value for s in sensor.sample()}
    assert got["temperature"] == pytest.approx(24.5, abs=0.02)
    assert got["humidity"] == pytest.approx(40.0, abs=0.1)
    assert got["pressure"] == pytest.approx(100_000.0, abs=5)
