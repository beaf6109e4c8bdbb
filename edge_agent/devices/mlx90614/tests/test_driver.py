"""MLX90614 driver against its emulator: PEC, error flag, presence, fever alarm."""

from __future__ import annotations

import pytest

from edge_agent.core.clock import ManualClock
from edge_agent.core.errors import (
    ChecksumError,
    DeviceNotFoundError,
    FrameError,
    ValueOutOfRangeError,
)
from edge_agent.core.model import Priority
from edge_agent.devices.mlx90614.driver import MLX90614Sensor
from edge_agent.devices.mlx90614.emulator import MLX90614Device
from edge_agent.devices.mlx90614.options import MLX90614Emulate, MLX90614Options
from edge_agent.hal.emulated import EmulatedHardware
from edge_agent.hal.emulated.i2c import EmulatedI2CBus
from tests.device_helpers import build, context, emulator, i2c_bus


def make(opts: MLX90614Options | None = None,
         ) -> tuple[MLX90614Sensor, MLX90614Device, EmulatedI2CBus, ManualClock]:
    opts = opts or MLX90614Options(emulate=MLX90614Emulate(noise=0.0))
    clock = ManualClock()
    sensor = build(context(EmulatedHardware(clock), clock), "mlx90614", opts)
    return sensor, emulator(sensor), i2c_bus(sensor), clock


def test_body_temperature() -> None:
    sensor, _, _, _ = make()
    sensor.open()
    (s,) = sensor.sample()
    assert (s.name, s.unit) == ("body_temperature", "Cel")
    assert s.value == pytest.approx(36.6, abs=0.02)


def test_nobody_in_front_gives_no_reading() -> None:
    sensor, dev, _, _ = make()
    sensor.open()
    dev.object_temperature = 22.0
    assert list(sensor.sample()) == []


def test_bad_pec_and_error_flag() -> None:
    sensor, dev, _, _ = make()
    sensor.open()
    dev.corrupt_next = 1
    with pytest.raises(ChecksumError):
        sensor.sample()
    dev.error_flag = True
    with pytest.raises(FrameError):
        sensor.sample()
    dev.error_flag = False
    assert len(list(sensor.sample())) == 1


def test_out_of_range() -> None:
    sensor, dev, _, _ = make()
    sensor.open()
    dev.object_temperature = 400.0
    with pytest.raises(ValueOutOfRangeError):
        sensor.sample()


def test_nak_then_recovers_after_replug() -> None:
    sensor, _, bus, _ = make()
    bus.unplug(0x5A)
    with pytest.raises(DeviceNotFoundError):
        sensor.open()
    bus.plug(0x5A)
    assert len(list(sensor.sample())) == 1
    bus.nak_next(0x5A)
    with pytest.raises(DeviceNotFoundError):
        sensor.sample()


def test_fever_alarm_once_via_scenario() -> None:
    opts = MLX90614Options(fever_alarm_celsius=38.0, emulate=MLX90614Emulate(
        noise=0.0, fever_after_seconds=30.0))
    sensor, _, _, clock = make(opts)
    sensor.open()
    alarms = 0
    temps = []
    for _ in range(10):
        for s in sensor.sample():
            if s.name == "fever_alarm":
                alarms += 1
                assert s.priority is Priority.ALARM and s.value is True
            else:
                temps.append(s.value)
        clock.advance(10.0)
    assert alarms == 1
    assert temps[0] == pytest.approx(36.6, abs=0.02)
    assert temps[-1] == pytest.approx(38.6, abs=0.02)


def test_build_emulated() -> None:
    sensor = build(context(EmulatedHardware(ManualClock())), "mlx90614", MLX90614Options())
    assert [s.name for s in sensor.sample()] == ["body_temperature"]  # type: ignore[attr-defined]
