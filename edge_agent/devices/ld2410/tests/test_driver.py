"""LD2410 driver against its emulator over a pty (serial_for_url), plus feed-level checks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from edge_agent.core.clock import Clock, ManualClock, SystemClock
from edge_agent.core.errors import DeviceTimeoutError
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.devices.base import SensorSpec
from edge_agent.devices.ld2410.driver import LD2410Sensor
from edge_agent.devices.ld2410.emulator import LD2410Device, make_report
from edge_agent.devices.ld2410.options import LD2410Emulate, LD2410Options, PresenceStep
from edge_agent.devices.serial_sensor import SilenceWatchdog
from edge_agent.hal.backend import RealHardware
from edge_agent.protocols import ld2410
from edge_agent.protocols.ld2410 import TargetState
from tests.conftest import wait_for
from tests.device_helpers import EmulatorRig, build, context, emulated, emulator, rigs

SPEC = SensorSpec("radar", "ld2410", Channel.IT, Priority.NORMAL, 5.0)
FAST = LD2410Emulate(schedule=[PresenceStep(60.0, "none")], frame_interval=0.02)


Rig = EmulatorRig[LD2410Sensor, LD2410Device]


@pytest.fixture
def rig_factory() -> Iterator[Callable[..., Rig]]:
    with rigs() as started:
        def make(options: LD2410Options | None = None, clock: Clock | None = None) -> Rig:
            opts = options or LD2410Options(report_interval=0.0, emulate=FAST)
            rig = Rig(LD2410Device(opts.emulate),
                      lambda ctx: LD2410Sensor(SPEC, ctx, opts), clock or SystemClock())
            rig.thread.start()
            started.append(rig)
            return rig

        yield make


def test_presence_on_and_off_over_pty(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    assert wait_for(lambda: any(r.value is False for r in rig.named("presence")))
    rig.device.set_target("moving", 230, 70)
    assert wait_for(lambda: any(r.value == "moving" for r in rig.named("target_state")))
    assert wait_for(lambda: bool(rig.named("distance")))
    d = rig.named("distance")[0]
    assert (d.value, d.unit, d.channel) == (2.3, "m", Channel.IT)
    rig.device.set_target("none")
    assert wait_for(lambda: rig.named("presence")[-1].value is False)
    assert rig.sensor.firmware == "V1.02.22062416"  # read on open
    assert ld2410.CMD_READ_FIRMWARE in rig.device.commands


def test_noise_and_bad_check_are_counted_never_published(
        rig_factory: Callable[..., Rig]) -> None:
    emulate = LD2410Emulate(schedule=[PresenceStep(60.0, "stationary", 140, 40)],
                            frame_interval=0.01, noise_every=3, bad_check_every=2)
    rig = rig_factory(LD2410Options(report_interval=0.0, emulate=emulate))
    assert wait_for(lambda: len(rig.named("distance")) >= 5
                    and rig.sensor.stats.errors["checksum"] >= 3
                    and rig.sensor.stats.errors["frame"] >= 2)
    assert {r.value for r in rig.named("distance")} == {1.4}
    assert {r.value for r in rig.named("target_state")} == {"stationary"}


def test_unplug_and_replug_recovers(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    assert wait_for(lambda: bool(rig.named("presence")))
    rig.device.unplug()
    assert wait_for(lambda: sum(rig.sensor.stats.errors.values()) >= 1)
    rig.device.set_target("both", 90, 50)
    rig.device.replug()
    assert wait_for(lambda: any(r.value == "both" for r in rig.named("target_state")))
    assert any(r.value == 0.9 for r in rig.named("distance"))


def test_silence_reopens_the_port(rig_factory: Callable[..., Rig]) -> None:
    clock = ManualClock()
    emulate = LD2410Emulate(schedule=[PresenceStep(60.0, "moving", 100)], frame_interval=0.02,
                            silence_after=0.0, silence_for=3600.0)
    rig = rig_factory(LD2410Options(silence_timeout=2.0, emulate=emulate), clock)
    assert wait_for(lambda: len(rig.device.commands) >= 4)  # port open, radar silent

    def silent_for_long() -> bool:
        clock.advance(0.5)
        return rig.sensor.stats.errors["DeviceTimeoutError"] >= 1

    assert wait_for(silent_for_long)
    assert rig.readings == []


def test_engineering_mode_switches_the_radar(rig_factory: Callable[..., Rig]) -> None:
    emulate = LD2410Emulate(schedule=[PresenceStep(60.0, "moving", 160)], frame_interval=0.02)
    rig = rig_factory(LD2410Options(engineering=True, report_interval=0.0, emulate=emulate))
    assert wait_for(lambda: rig.device.engineering and bool(rig.named("distance")))
    assert list(rig.device.commands)[:4] == [ld2410.CMD_ENABLE_CONFIG, ld2410.CMD_READ_FIRMWARE,
                                       ld2410.CMD_ENGINEERING_ON, ld2410.CMD_END_CONFIG]
    assert rig.named("distance")[-1].value == 1.6


def test_build_emulated_runs_the_scenario() -> None:
    options = LD2410Options(report_interval=0.0, emulate=LD2410Emulate(
        schedule=[PresenceStep(0.2, "none"), PresenceStep(0.2, "moving", 300)],
        frame_interval=0.02))
    with emulated(SystemClock()) as ctx:
        sensor = build(ctx, "ld2410", options, 5.0)
        got: list[Reading] = []
        stop = threading.Event()
        t = threading.Thread(target=sensor.run, args=(got.extend, stop))
        t.start()
        try:
            assert wait_for(lambda: {"none", "moving"} <= {r.value for r in list(got)})
        finally:
            stop.set()
            t.join(timeout=10)
        assert not t.is_alive()
        assert isinstance(sensor, LD2410Sensor) and emulator(sensor) is not None
        assert emulator(sensor).plugged  # the device stays plugged in while the agent runs
    assert not emulator(sensor).plugged  # stopped with the hardware backend


# --- feed level (no port): rate limiting, range checks ------------------------------------


def feed_sensor(report_interval: float = 5.0) -> tuple[LD2410Sensor, ManualClock]:
    clock = ManualClock()
    options = LD2410Options(port="loop://", report_interval=report_interval)
    return LD2410Sensor(SPEC, context(RealHardware(), clock), options), clock


def frame(state: TargetState, distance: int = 150, energy: int = 50) -> bytes:
    return ld2410.encode_report(make_report(state, distance, energy))


def test_rate_limit_state_change_is_immediate() -> None:
    sensor, clock = feed_sensor(report_interval=5.0)
    first = list(sensor.feed(frame(TargetState.MOVING)))
    assert [(s.name, s.value) for s in first] == [
        ("presence", True), ("target_state", "moving"), ("distance", 1.5)]
    clock.advance(1.0)
    assert list(sensor.feed(frame(TargetState.MOVING) * 5)) == []  # same state: held back
    clock.advance(0.5)
    changed = list(sensor.feed(frame(TargetState.STATIONARY, 120)))
    assert [s.value for s in changed] == [True, "stationary", 1.2]
    clock.advance(4.9)
    assert list(sensor.feed(frame(TargetState.STATIONARY, 120))) == []
    clock.advance(0.2)
    assert len(list(sensor.feed(frame(TargetState.STATIONARY, 120)))) == 3
    gone = list(sensor.feed(frame(TargetState.NONE)))
    assert [(s.name, s.value) for s in gone] == [("presence", False), ("target_state", "none")]


def test_rejected_and_out_of_range_frames_publish_nothing() -> None:
    sensor, _ = feed_sensor(report_interval=0.0)
    bad_check = ld2410.encode_report(make_report(TargetState.MOVING, 100, 50), check=1)
    assert list(sensor.feed(bad_check)) == []
    assert sensor.stats.errors["checksum"] == 1
    assert list(sensor.feed(frame(TargetState.MOVING, 100, energy=150))) == []
    assert list(sensor.feed(frame(TargetState.MOVING, 5000))) == []
    assert sensor.stats.errors["range"] == 2
    assert list(sensor.feed(b"\x01\x02" + frame(TargetState.MOVING, 100)))[-1].value == 1.0
    assert sensor.stats.errors["frame"] == 1


def test_no_distance_when_the_radar_gives_none() -> None:
    sensor, _ = feed_sensor(report_interval=0.0)
    # stationary target, stationary distance 0 (as some firmware sends): no distance reading
    raw = bytes.fromhex("F4F3F2F1 0D00 02AA 02 5400 00 0000 64 0000 5500 F8F7F6F5")
    assert [s.name for s in sensor.feed(raw)] == ["presence", "target_state"]


class _Quiet:
    baudrate = 256000

    def read(self, size: int = 1) -> bytes:
        return b""

    def write(self, data: bytes) -> int | None:
        return len(data)

    def reset_input_buffer(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_silence_watchdog() -> None:
    clock = ManualClock()
    w = SilenceWatchdog(_Quiet(), clock, timeout=1.0)
    assert w.read(10) == b"" and w.baudrate == 256000
    clock.advance(1.5)
    with pytest.raises(DeviceTimeoutError):
        w.read(10)
