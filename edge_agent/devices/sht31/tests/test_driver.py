"""SHT31 driver against its emulator on an emulated I2C bus."""

from __future__ import annotations

import threading

import pytest

from edge_agent.core.clock import ManualClock
from edge_agent.core.errors import ChecksumError, DeviceNotFoundError, ValueOutOfRangeError
from edge_agent.core.model import Priority, Reading
from edge_agent.devices.sht31 import SHT31
from edge_agent.devices.sht31.driver import SHT31Sensor
from edge_agent.devices.sht31.emulator import SHT31Device
from edge_agent.devices.sht31.options import SHT31Emulate, SHT31Options
from edge_agent.hal.emulated import EmulatedHardware
from edge_agent.hal.emulated.i2c import EmulatedI2CBus
from edge_agent.protocols import sht31
from tests.device_helpers import build, context, emulator, i2c_bus


def make(options: SHT31Options | None = None, interval: float = 60.0,
         ) -> tuple[SHT31Sensor, SHT31Device, EmulatedI2CBus, ManualClock]:
    options = options or SHT31Options(emulate=SHT31Emulate(noise=0.0))
    clock = ManualClock()
    sensor = build(context(EmulatedHardware(clock), clock), "sht31", options, interval)
    return sensor, emulator(sensor), i2c_bus(sensor), clock


def values(samples: object) -> dict[str, object]:
    return {s.name: s.value for s in samples}  # type: ignore[attr-defined]


def test_open_resets_and_clears_status() -> None:
    sensor, dev, _, _ = make()
    sensor.open()
    assert dev.resets == 1
    assert not dev.status & sht31.STATUS_RESET_DETECTED
    sensor.close()


def test_reads_temperature_and_humidity() -> None:
    sensor, dev, _, _ = make()
    dev.temperature, dev.humidity = 21.5, 55.25
    sensor.open()
    got = list(sensor.sample())
    assert values(got) == {"temperature": pytest.approx(21.5, abs=0.01),
                           "humidity": pytest.approx(55.25, abs=0.01)}
    assert {s.unit for s in got} == {"Cel", "%RH"}


def test_bad_crc_is_checksum_error_then_next_is_fine() -> None:
    sensor, dev, _, _ = make()
    sensor.open()
    dev.corrupt_next = 1
    with pytest.raises(ChecksumError):
        sensor.sample()
    assert values(sensor.sample())["temperature"] == pytest.approx(24.0, abs=0.01)


def test_scenario_bad_crc_every() -> None:
    sensor, _, _, _ = make(SHT31Options(emulate=SHT31Emulate(bad_crc_every=2, noise=0.0)))
    sensor.open()
    sensor.sample()
    with pytest.raises(ChecksumError):
        sensor.sample()


def test_nak_is_device_not_found() -> None:
    sensor, _, bus, _ = make()
    sensor.open()
    bus.nak_next(0x44)
    with pytest.raises(DeviceNotFoundError):
        sensor.sample()


def test_scenario_nak_every() -> None:
    sensor, _, _, _ = make(SHT31Options(emulate=SHT31Emulate(nak_every=1)))
    sensor.open()
    with pytest.raises(DeviceNotFoundError):
        sensor.sample()


def test_out_of_range_never_published() -> None:
    sensor, dev, _, _ = make()
    sensor.open()
    dev.temperature = 128.0  # encodable (<= 130) but beyond the sensor's 125 degC
    with pytest.raises(ValueOutOfRangeError):
        sensor.sample()


def test_absent_device_fails_open() -> None:
    sensor, _, bus, _ = make()
    bus.unplug(0x44)
    with pytest.raises(DeviceNotFoundError):
        sensor.open()


def test_heat_alarm_once_per_crossing() -> None:
    opts = SHT31Options(heat_alarm_celsius=30.0, heat_alarm_hysteresis=1.0,
                        emulate=SHT31Emulate(noise=0.0))
    sensor, dev, _, _ = make(opts)
    sensor.open()
    alarms = []
    for t in [25, 29.9, 30.5, 31, 30.2, 29.5, 30.8, 28.5, 30.1, 31]:
        dev.temperature = t
        got = [s for s in sensor.sample() if s.name == "heat_alarm"]
        alarms.append(len(got))
        for s in got:
            assert s.value is True and s.priority is Priority.ALARM
    assert alarms == [0, 0, 1, 0, 0, 0, 0, 0, 1, 0]


def test_heat_wave_ramp_follows_clock() -> None:
    opts = SHT31Options(heat_alarm_celsius=30.0, emulate=SHT31Emulate(
        temperature=25.0, noise=0.0, heat_wave_after_seconds=10.0, heat_wave_rate=1.0,
        heat_wave_peak=35.0))
    sensor, _, _, clock = make(opts)
    sensor.open()
    seen: list[float] = []
    alarms = 0
    for _ in range(30):
        got = values(sensor.sample())
        seen.append(got["temperature"])  # type: ignore[arg-type]
        alarms += "heat_alarm" in got
        clock.advance(1.0)
    assert seen[0] == pytest.approx(25.0, abs=0.01)
    assert max(seen) == pytest.approx(35.0, abs=0.01)
    assert seen == sorted(seen)
    assert alarms == 1


def test_recovers_by_itself_after_unplug() -> None:
    sensor, dev, bus, _ = make(interval=0.001)
    got: list[Reading] = []
    stop = threading.Event()
    plugged_back = threading.Event()

    def emit(batch: list[Reading]) -> None:
        got.extend(batch)
        if len(got) == 2:  # first good sample: pull the device
            bus.unplug(0x44)
        if plugged_back.is_set():
            stop.set()

    t = threading.Thread(target=sensor.run, args=(emit, stop), daemon=True)
    t.start()
    for _ in range(500):
        if sensor.stats.errors:
            break
        stop.wait(0.01)
    assert sensor.stats.errors["DeviceNotFoundError"] >= 1
    resets = dev.resets
    plugged_back.set()
    bus.plug(0x44)
    t.join(timeout=5)
    assert not t.is_alive()
    assert len(got) >= 4
    assert dev.resets > resets  # reopened (soft reset) after it came back


def test_build_emulated_via_registry() -> None:
    from edge_agent.devices.registry import SENSOR_TYPES

    sensor = build(context(EmulatedHardware(ManualClock())), "sht31", SHT31Options())
    assert isinstance(sensor, SHT31Sensor)
    sensor.open()
    assert {s.name for s in sensor.sample()} == {"temperature", "humidity"}
    sensor.close()
    assert SENSOR_TYPES["sht31"] is SHT31 and SHT31.options is SHT31Options


def test_options_validate_address() -> None:
    with pytest.raises(ValueError):
        SHT31Options(address=0x40)
