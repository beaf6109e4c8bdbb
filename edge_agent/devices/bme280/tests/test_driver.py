"""BME280 driver against its register-level emulator."""

from __future__ import annotations

import pytest

from edge_agent.core.clock import ManualClock
from edge_agent.core.errors import DeviceNotFoundError, HardwareError, ValueOutOfRangeError
from edge_agent.devices.bme280.driver import BME280Sensor
from edge_agent.devices.bme280.emulator import BME280Device
from edge_agent.devices.bme280.options import BME280Emulate, BME280Options
from edge_agent.hal.emulated import EmulatedHardware
from edge_agent.hal.emulated.i2c import EmulatedI2CBus
from edge_agent.protocols import bme280 as p
from tests.device_helpers import build, context, emulator, i2c_bus


def make(emulate: BME280Emulate | None = None, oversampling: int = 1,
         ) -> tuple[BME280Sensor, BME280Device, EmulatedI2CBus]:
    opts = BME280Options(oversampling=oversampling,
                         emulate=emulate or BME280Emulate(noise=0.0))
    sensor = build(context(EmulatedHardware(ManualClock())), "bme280", opts)
    return sensor, emulator(sensor), i2c_bus(sensor)


def test_reads_all_three() -> None:
    sensor, dev, _ = make(oversampling=4)
    dev.temperature, dev.humidity, dev.pressure = 27.3, 61.0, 99800.0
    sensor.open()
    got = {s.name: s for s in sensor.sample()}
    assert got["temperature"].value == pytest.approx(27.3, abs=0.01)
    assert got["humidity"].value == pytest.approx(61.0, abs=0.05)
    assert got["pressure"].value == pytest.approx(99800.0, abs=3)
    assert [got[k].unit for k in ("temperature", "humidity", "pressure")] == ["Cel", "%RH", "Pa"]
    assert dev.resets == 1 and dev.measurements == 1
    assert sensor.calibration == p.TYPICAL


def test_wrong_chip_id_is_refused() -> None:
    sensor, _, _ = make(BME280Emulate(chip_id=0x58))
    with pytest.raises(DeviceNotFoundError, match="chip id 0x58"):
        sensor.open()


def test_nak_and_bus_error() -> None:
    sensor, _, bus = make()
    sensor.open()
    bus.nak_next(0x76)
    with pytest.raises(DeviceNotFoundError):
        sensor.sample()
    bus.bus_error_next(0x76)
    with pytest.raises(HardwareError):
        sensor.sample()
    assert len(list(sensor.sample())) == 3


def test_out_of_range_never_published() -> None:
    sensor, dev, _ = make()
    sensor.open()
    dev.pressure = 20000.0
    with pytest.raises(ValueOutOfRangeError, match="pressure"):
        sensor.sample()


def test_device_vanishes_and_returns() -> None:
    sensor, dev, bus = make()
    sensor.open()
    bus.unplug(0x76)
    with pytest.raises(DeviceNotFoundError):
        sensor.sample()
    sensor.close()
    bus.plug(0x76)
    assert len(list(sensor.sample())) == 3  # reopens (reset + trim) by itself
    assert dev.resets == 2


def test_build_emulated() -> None:
    sensor = build(context(EmulatedHardware(ManualClock())), "bme280", BME280Options())
    assert isinstance(sensor, BME280Sensor)
    assert {s.name for s in sensor.sample()} == {"temperature", "humidity", "pressure"}


def test_options_validation() -> None:
    with pytest.raises(ValueError):
        BME280Options(oversampling=3)
    with pytest.raises(ValueError):
        BME280Options(address=0x44)
