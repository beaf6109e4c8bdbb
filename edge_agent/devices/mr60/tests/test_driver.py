"""MR60FDA1/MR60BHA1 driver against its emulator over a pty (serial_for_url)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from edge_agent.core.clock import ManualClock, SystemClock
from edge_agent.core.model import Channel, Priority
from edge_agent.devices.base import SensorSpec
from edge_agent.devices.mr60 import TYPES
from edge_agent.devices.mr60.driver import MR60Sensor
from edge_agent.devices.mr60.emulator import MR60Device
from edge_agent.devices.mr60.options import Model, MR60Emulate, MR60Options, OccupancyStep
from edge_agent.hal.backend import RealHardware
from edge_agent.protocols import mr60
from tests.conftest import wait_for
from tests.device_helpers import EmulatorRig, context, rigs

STILL = [OccupancyStep(600.0, True, "stationary", 5)]


Rig = EmulatorRig[MR60Sensor, MR60Device]


@pytest.fixture
def rig_factory() -> Iterator[Callable[..., Rig]]:
    with rigs() as started:
        def make(model: Model, report_interval: float = 0.0, **emulate: object) -> Rig:
            emulate.setdefault("schedule", STILL)
            emulate.setdefault("report_interval", 0.02)
            opts = MR60Options(report_interval=report_interval,
                               emulate=MR60Emulate(**emulate))  # type: ignore[arg-type]
            spec = SensorSpec("radar", model, Channel.IT, Priority.NORMAL, 5.0)
            rig = Rig(MR60Device(model, opts.emulate),
                      lambda ctx: MR60Sensor(spec, ctx, opts, model), SystemClock())
            rig.thread.start()
            started.append(rig)
            return rig

        yield make


def test_fall_scenario_gives_exactly_one_alarm(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory("mr60fda1", fall_at=0.2, fall_for=0.4)
    assert wait_for(lambda: any(r.value is False for r in rig.named("fall")))
    falls = rig.named("fall")
    alarms = [r for r in falls if r.priority is Priority.ALARM]
    assert len(alarms) == 1 and alarms[0].value is True
    assert [r.value for r in falls] == [True, False]  # many fall=1 frames, one alarm
    assert all(r.priority is Priority.NORMAL for r in rig.readings if r.name != "fall")
    assert rig.named("presence")[0].value is True
    assert rig.sensor.product == "MR60FDA1"  # product query answered on open
    assert not rig.named("heart_rate")


def test_vitals_published_waveforms_never(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory("mr60bha1", heart_rate=68, respiration_rate=14, distance_cm=95)
    assert wait_for(lambda: len(rig.named("heart_rate")) >= 3
                    and bool(rig.named("respiration_rate")))
    hr, rr = rig.named("heart_rate")[0], rig.named("respiration_rate")[0]
    assert (hr.value, hr.unit, hr.channel) == (68, "/min", Channel.IT)
    assert (rr.value, rr.unit) == (14, "/min")
    assert rig.named("distance")[0].value == 0.95 and rig.named("distance")[0].unit == "m"
    names = {r.name for r in rig.readings}
    assert not names & {"heart_waveform", "breath_waveform", "direction", "fall"}


def test_out_of_range_and_unmeasured_rates(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory("mr60bha1")
    assert wait_for(lambda: bool(rig.named("heart_rate")))  # the port is open
    rig.device.set_vitals(0, 0)  # "not measured": skipped quietly
    rig.device.inject(mr60.encode(mr60.CTRL_HEART, 0x02, bytes([250])))
    assert wait_for(lambda: rig.sensor.stats.errors["range"] >= 1)
    time.sleep(0.1)
    assert {r.value for r in rig.named("heart_rate")} <= {72}  # only before the override
    assert all(r.value != 0 for r in rig.named("respiration_rate"))


def test_noise_and_bad_checksum_counted(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory("mr60bha1", noise_every=2, bad_checksum_every=3)
    assert wait_for(lambda: rig.sensor.stats.errors["checksum"] >= 3
                    and rig.sensor.stats.errors["frame"] >= 2
                    and len(rig.named("heart_rate")) >= 3)
    assert {r.value for r in rig.named("heart_rate")} == {72}


def test_unplug_and_replug_recovers(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory("mr60fda1")
    assert wait_for(lambda: bool(rig.named("presence")))
    rig.device.unplug()
    assert wait_for(lambda: sum(rig.sensor.stats.errors.values()) >= 1)
    rig.device.set_fall(True)
    rig.device.replug()
    assert wait_for(lambda: bool(rig.named("fall")))
    assert [r.priority for r in rig.named("fall")] == [Priority.ALARM]


def test_states_on_change_numbers_rate_limited() -> None:
    clock = ManualClock()
    spec = SensorSpec("radar", "mr60bha1", Channel.IT, Priority.NORMAL, 5.0)
    sensor = MR60Sensor(spec, context(RealHardware(), clock),
                        MR60Options(port="loop://", report_interval=5.0), "mr60bha1")

    def feed(control: int, command: int, data: bytes) -> list[tuple[str, object]]:
        return [(s.name, s.value) for s in sensor.feed(mr60.encode(control, command, data))]

    assert feed(0x80, 0x01, b"\x01") == [("presence", True)]
    assert feed(0x80, 0x01, b"\x01") == []
    assert feed(0x80, 0x01, b"\x00") == [("presence", False)]  # change: at once
    assert feed(0x85, 0x02, b"\x48") == [("heart_rate", 72)]
    assert feed(0x85, 0x02, b"\x49") == []  # numbers: at most every report_interval
    clock.advance(5.0)
    assert feed(0x85, 0x02, b"\x49") == [("heart_rate", 73)]
    assert feed(0x83, 0x01, b"\x01") == []  # a fall report is not an MR60BHA1 reading
    assert feed(0x80, 0x03, b"\x65") == []  # body movement 101 > 100
    assert sensor.stats.errors["range"] == 1


def test_types_registered() -> None:
    from edge_agent.devices.registry import SENSOR_TYPES

    assert {t.name for t in TYPES} == {"mr60fda1", "mr60bha1"}
    assert SENSOR_TYPES["mr60fda1"].default_channel is Channel.IT
    assert SENSOR_TYPES["ld2410"].options.__name__ == "LD2410Options"
