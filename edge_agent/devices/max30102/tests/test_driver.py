"""MAX30102 driver against its PPG-synthesizing emulator, driven by a ManualClock."""

from __future__ import annotations

import pytest

from edge_agent.core.clock import ManualClock
from edge_agent.core.errors import DeviceNotFoundError
from edge_agent.core.model import Channel, Priority
from edge_agent.devices.base import Sample, SensorSpec
from edge_agent.devices.max30102.driver import MAX30102Sensor
from edge_agent.devices.max30102.options import MAX30102Emulate, MAX30102Options
from edge_agent.hal.emulated import EmulatedDevice, EmulatedHardware
from tests.device_helpers import build, context, emulator


def make(**kw: object) -> tuple[MAX30102Sensor, ManualClock]:
    clock = ManualClock()
    sensor = build(context(EmulatedHardware(clock), clock), "max30102",
                   MAX30102Options(**kw))  # type: ignore[arg-type]
    assert isinstance(sensor, MAX30102Sensor)
    return sensor, clock


def run_for(sensor: MAX30102Sensor, clock: ManualClock, seconds: float,
            step: float = 0.25) -> list[Sample]:
    out: list[Sample] = []
    for _ in range(round(seconds / step)):
        clock.advance(step)
        out.extend(sensor.sample())
    return out


def by_name(samples: list[Sample]) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for s in samples:
        out.setdefault(s.name, []).append(s.value)
    return out


@pytest.mark.parametrize(("hr", "spo2"), [(72, 97), (55, 92), (130, 99)])
def test_heart_rate_and_spo2(hr: float, spo2: float) -> None:
    sensor, clock = make(emulate=MAX30102Emulate(heart_rate=hr, spo2=spo2, seed=1))
    sensor.open()
    got = by_name(run_for(sensor, clock, 30.0))
    assert len(got["heart_rate"]) == 3 and len(got["spo2"]) == 3
    assert all(v == pytest.approx(hr, abs=2.0) for v in got["heart_rate"])
    assert all(v == pytest.approx(spo2, abs=1.0) for v in got["spo2"])
    assert set(got) == {"heart_rate", "spo2"}  # the waveform never leaves


def test_no_finger_gives_no_reading() -> None:
    sensor, clock = make(emulate=MAX30102Emulate(finger=False, seed=2))
    sensor.open()
    assert run_for(sensor, clock, 30.0) == []
    assert sensor.last_estimate is not None and sensor.last_estimate.reason == "no finger"


def test_low_perfusion_gives_no_reading() -> None:
    sensor, clock = make(emulate=MAX30102Emulate(perfusion=0.0002, seed=3))
    sensor.open()
    assert run_for(sensor, clock, 20.0) == []
    assert sensor.stats.errors["low perfusion"] == 2


def test_finger_removed_mid_way() -> None:
    sensor, clock = make(emulate=MAX30102Emulate(finger_off_after_seconds=12.0, seed=4))
    sensor.open()
    got = run_for(sensor, clock, 40.0)
    assert [s.name for s in got] == ["heart_rate", "spo2"]  # at 10 s; none after 12 s


def test_low_spo2_alarm_once() -> None:
    sensor, clock = make(spo2_alarm_percent=90.0, emulate=MAX30102Emulate(
        spo2=97, desaturation_after_seconds=15.0, desaturated_spo2=85.0, seed=5))
    sensor.open()
    got = run_for(sensor, clock, 60.0)
    alarms = [s for s in got if s.name == "spo2_alarm"]
    assert len(alarms) == 1 and alarms[0].priority is Priority.ALARM
    assert by_name(got)["spo2"][-1] == pytest.approx(85.0, abs=1.0)


def test_fifo_overflow_restarts_window() -> None:
    sensor, clock = make(emulate=MAX30102Emulate(seed=6))
    sensor.open()
    run_for(sensor, clock, 3.0)
    clock.advance(5.0)  # the node stalled: the 32-sample FIFO (1.28 s) overflowed
    sensor.sample()
    assert sensor.overflows == 1
    got = run_for(sensor, clock, 20.0)
    assert "heart_rate" in by_name(got)


def test_wrong_part_and_absent_device() -> None:
    sensor, _ = make()
    assert emulator(sensor) is not None
    emulator(sensor)._regs[0xFF] = 0x11
    with pytest.raises(DeviceNotFoundError, match="part id"):
        sensor.open()
    spec = SensorSpec("oxi", "max30102", Channel.IT, Priority.NORMAL, 0.25)
    nothing = context(EmulatedDevice(None), sensor.ctx.clock)  # an empty bus
    absent = MAX30102Sensor(spec, nothing, MAX30102Options())
    with pytest.raises(DeviceNotFoundError):
        absent.open()


def test_options_validation() -> None:
    with pytest.raises(ValueError):
        MAX30102Options(sample_rate_hz=123)
    with pytest.raises(ValueError):
        MAX30102Options(sample_average=3)
