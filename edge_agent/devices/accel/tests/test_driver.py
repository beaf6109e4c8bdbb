"""Accelerometer fall detection against emulated MPU6050/ADXL345 with a ManualClock."""

from __future__ import annotations

import pytest

from edge_agent.core.clock import ManualClock
from edge_agent.core.errors import DeviceNotFoundError
from edge_agent.core.model import Channel, Priority
from edge_agent.devices.accel.driver import ADXL345, MPU6050, AccelSensor
from edge_agent.devices.accel.options import AccelEmulate, AccelOptions
from edge_agent.devices.base import Sample, SensorSpec
from edge_agent.hal.emulated import EmulatedDevice, EmulatedHardware, I2CTarget
from edge_agent.hal.emulated.i2c import EmulatedI2CBus
from tests.device_helpers import build, context, emulator


def make(chip: type[MPU6050] | type[ADXL345], **kw: object,
         ) -> tuple[AccelSensor, ManualClock]:
    clock = ManualClock()
    opts = AccelOptions(**kw)  # type: ignore[arg-type]
    sensor = build(context(EmulatedHardware(clock), clock), chip.name.lower(), opts, 10.0)
    assert isinstance(sensor, AccelSensor)
    return sensor, clock


def run_for(sensor: AccelSensor, clock: ManualClock, seconds: float) -> list[Sample]:
    out: list[Sample] = []
    step = sensor.spec.interval
    for _ in range(round(seconds / step)):
        out.extend(sensor.sample())
        clock.advance(step)
    return out


@pytest.mark.parametrize("chip", [MPU6050, ADXL345])
def test_fall_scenario_gives_exactly_one_alarm(chip: type[MPU6050] | type[ADXL345]) -> None:
    sensor, clock = make(chip, activity_seconds=None,
                         emulate=AccelEmulate(fall_at_seconds=5.0, seed=1))
    sensor.open()
    got = run_for(sensor, clock, 30.0)
    assert [(s.name, s.value, s.priority) for s in got] == [("fall", True, Priority.ALARM)]


@pytest.mark.parametrize("chip", [MPU6050, ADXL345])
def test_no_fall_no_alarm_and_activity_summary(chip: type[MPU6050] | type[ADXL345]) -> None:
    sensor, clock = make(chip, activity_seconds=10.0, emulate=AccelEmulate(seed=2))
    sensor.open()
    got = run_for(sensor, clock, 31.0)
    assert [s.name for s in got] == ["activity"] * 3
    assert all(s.unit == "m/s2" and 0 <= float(s.value) < 0.5 for s in got)


def test_repeated_falls() -> None:
    sensor, clock = make(MPU6050, activity_seconds=None, sample_rate_hz=100.0,
                         emulate=AccelEmulate(fall_at_seconds=1.0, fall_every_seconds=20.0,
                                              lie_seconds=5.0, seed=3))
    sensor.open()
    assert [s.name for s in run_for(sensor, clock, 60.0)] == ["fall"] * 3


def test_wrong_chip_is_refused_and_nak_is_not_found() -> None:
    clock = ManualClock()
    spec = SensorSpec("fall", "adxl345", Channel.IT, Priority.NORMAL, 10.0)
    mpu, _ = make(MPU6050)
    assert emulator(mpu) is not None
    hw = EmulatedDevice(I2CTarget(0x53, emulator(mpu)))  # an MPU6050 where an ADXL345 is
    bus = hw.i2c(1)
    sensor = AccelSensor(spec, context(hw, clock), AccelOptions(), ADXL345())
    with pytest.raises(DeviceNotFoundError, match="not a ADXL345"):
        sensor.open()
    bus.detach(0x53)
    with pytest.raises(DeviceNotFoundError):
        sensor.open()


def test_vanishes_mid_fall_then_recovers() -> None:
    sensor, clock = make(ADXL345, activity_seconds=None,
                         emulate=AccelEmulate(fall_at_seconds=1.0, seed=4))
    sensor.open()
    bus = sensor._bus
    assert isinstance(bus, EmulatedI2CBus)
    run_for(sensor, clock, 1.2)  # in free fall
    bus.unplug(0x53)
    with pytest.raises(DeviceNotFoundError):
        sensor.sample()
    sensor.close()
    clock.advance(0.5)  # the impact happens while the sensor is away
    bus.plug(0x53)
    # reopened: the half-seen fall is forgotten (no alarm from stale state)
    assert run_for(sensor, clock, 10.0) == []
    assert emulator(sensor) is not None and emulator(sensor).samples > 0


def test_options_validation() -> None:
    with pytest.raises(ValueError):
        AccelOptions(range_g=2)
    with pytest.raises(ValueError):
        AccelOptions(sample_rate_hz=1000)


def test_default_address_per_chip() -> None:
    """Each chip type's options default to that chip's address (doctor probes it)."""
    from edge_agent.devices.registry import SENSOR_TYPES

    assert SENSOR_TYPES["mpu6050"].i2c_address == 0x68
    assert SENSOR_TYPES["adxl345"].i2c_address == 0x53
    for chip in (MPU6050, ADXL345):
        sensor, _ = make(chip)
        assert sensor.address == chip.default_address
