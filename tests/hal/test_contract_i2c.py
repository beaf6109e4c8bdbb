"""The I2C contract (``Hardware.i2c``), run against every backend available.

Emulated: a BME280 emulator attached to the emulated bus. Real (a rig): set
``EDGE_HIL_I2C_BUS`` and ``EDGE_HIL_I2C_ADDRESS`` (a register-map chip that answers plain
reads, e.g. a BME280 at 0x76); skipped otherwise. ``EDGE_HIL_I2C_ABSENT`` names a free
address (default 0x0B).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from edge_agent.core.clock import ManualClock
from edge_agent.core.errors import DeviceNotFoundError
from edge_agent.devices.bme280.emulator import BME280Device
from edge_agent.hal.backend import RealHardware
from edge_agent.hal.emulated import EmulatedHardware, I2CTarget
from edge_agent.hal.interfaces import I2CBus

REAL_BUS = os.environ.get("EDGE_HIL_I2C_BUS")
REAL_ADDRESS = os.environ.get("EDGE_HIL_I2C_ADDRESS")
ABSENT = int(os.environ.get("EDGE_HIL_I2C_ABSENT", "0x0B"), 0)


@dataclass
class Rig:
    bus: I2CBus
    address: int  # a device that answers


@pytest.fixture(params=["emulated", "real"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    if request.param == "real":
        if not (REAL_BUS and REAL_ADDRESS):
            pytest.skip("real I2C backend: set EDGE_HIL_I2C_BUS and EDGE_HIL_I2C_ADDRESS")
        bus = RealHardware().i2c(int(REAL_BUS, 0))
        try:
            yield Rig(bus, int(REAL_ADDRESS, 0))
        finally:
            bus.close()
        return
    backend = EmulatedHardware(ManualClock())
    hw = backend.device(lambda: I2CTarget(0x76, BME280Device()))
    bus = hw.i2c(1)
    try:
        yield Rig(bus, 0x76)
    finally:
        bus.close()
        backend.close()


def test_read_returns_exactly_the_bytes_asked(rig: Rig) -> None:
    for n in (1, 3, 6):
        assert len(rig.bus.read(rig.address, n)) == n


def test_write_read_returns_exactly_the_bytes_asked(rig: Rig) -> None:
    out = rig.bus.write_read(rig.address, bytes([0xD0]), 3)  # from a register on
    assert isinstance(out, bytes) and len(out) == 3


def test_absent_address_is_device_not_found(rig: Rig) -> None:
    with pytest.raises(DeviceNotFoundError):
        rig.bus.read(ABSENT, 1)
    with pytest.raises(DeviceNotFoundError):
        rig.bus.write(ABSENT, b"\x00")


@pytest.mark.parametrize("address", [0x00, 0x02, 0x78, 0x80])
def test_invalid_address_is_refused_without_a_transfer(rig: Rig, address: int) -> None:
    with pytest.raises(ValueError, match="address"):
        rig.bus.read(address, 1)


def test_the_bus_stays_usable_after_a_nak(rig: Rig) -> None:
    with pytest.raises(DeviceNotFoundError):
        rig.bus.read(ABSENT, 1)
    assert len(rig.bus.read(rig.address, 2)) == 2
