"""PIR motion and door contact on gpiozero's MockFactory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from edge_agent.clock import ManualClock, SystemClock
from edge_agent.drivers.base import SensorContext, SensorSpec
from edge_agent.drivers.gpio_inputs import (
    DoorEmulate,
    DoorOptions,
    DoorSensor,
    PirEmulate,
    PirOptions,
    PirSensor,
    build_door,
    build_pir,
    mock_pin_factory,
)
from edge_agent.errors import HardwareError
from edge_agent.model import Channel, Priority

from .gpio_helpers import running


def ctx(clock: Any = None) -> SensorContext:
    return SensorContext("emulated", clock or ManualClock(), logging.getLogger("test"))


def spec(kind: str) -> SensorSpec:
    return SensorSpec(kind, kind, Channel.IT, Priority.NORMAL, 10.0)


def test_pir_reports_initial_state_and_changes() -> None:
    clock = ManualClock()
    sensor = PirSensor(spec("pir"), ctx(clock), PirOptions(pin=4), mock_pin_factory)
    with running(sensor) as r:
        initial = r.next()
        assert (initial.name, initial.value) == ("motion", False)
        pin = sensor.driver()
        clock.advance(1)
        pin.activate()
        clock.advance(1)
        pin.deactivate()
        got = [(x.name, x.value) for x in r.drain()]
    assert got == [("motion", True), ("motion", False)]


def test_pir_bounce_is_one_change_and_settles() -> None:
    clock = ManualClock()
    sensor = PirSensor(spec("pir"), ctx(clock), PirOptions(pin=4), mock_pin_factory)
    with running(sensor) as r:
        r.next()  # initial False
        clock.advance(1)
        sensor.driver().activate(bounce_edges=4)
        assert [(x.name, x.value) for x in r.drain()] == [("motion", True)]
        # a genuine change hidden in a bounce window is reported once the input settles
        sensor.driver().deactivate()
        assert r.drain(0.1) == []
        clock.advance(1)
        assert (r.next().value) is False


def test_pir_counts_per_period() -> None:
    clock = ManualClock()
    opts = PirOptions(pin=4, count_seconds=60.0)
    sensor = PirSensor(spec("pir"), ctx(clock), opts, mock_pin_factory)
    with running(sensor) as r:
        r.next()
        pin = sensor.driver()
        for _ in range(3):
            clock.advance(1)
            pin.activate()
            clock.advance(1)
            pin.deactivate()
        assert all(x.name == "motion" for x in r.drain())
        clock.advance(60)
        count = r.next()
    assert (count.name, count.value, count.unit) == ("motion_count", 3, "count")


def test_door_open_and_close() -> None:
    clock = ManualClock()
    sensor = DoorSensor(spec("door"), ctx(clock), DoorOptions(pin=22), mock_pin_factory)
    with running(sensor) as r:
        first = r.next()
        pin = sensor.driver()
        clock.advance(1)
        pin.deactivate()  # contact closes: door shut
        clock.advance(1)
        pin.activate(bounce_edges=3)  # opened, with reed bounce
        got = [x.value for x in r.drain()]
    assert (first.name, first.value) == ("open", True)  # pull-up idle: contact open
    assert got == [False, True]


def test_emulated_door_schedule() -> None:
    opts = DoorOptions(pin=22, emulate=DoorEmulate(every_seconds=0.08, jitter_seconds=0.0,
                                                   open_seconds=0.08, seed=3))
    sensor = build_door(spec("door"), opts, ctx(SystemClock()))
    with running(sensor) as r:
        first = r.next()  # the emulator keeps the door shut between openings
        values = [r.next().value for _ in range(3)]
    assert first.value is False
    assert values == [True, False, True]


def test_emulated_pir_schedule() -> None:
    opts = PirOptions(pin=4, emulate=PirEmulate(every_seconds=0.03, jitter_seconds=0.0,
                                                motion_seconds=0.03))
    sensor = build_pir(spec("pir"), opts, ctx(SystemClock()))
    with running(sensor) as r:
        assert r.next().value is False
        assert r.next().value is True


def test_options_validation() -> None:
    with pytest.raises(ValueError):
        PirOptions(pin=99)
    with pytest.raises(ValueError):
        PirOptions(pin=4, count_seconds=0)
    with pytest.raises(ValueError):
        DoorOptions(pin=4, bounce_ms=-1)


def test_board_revision_from_sysfs_device_tree(tmp_path: Path) -> None:
    """Under ProcSubset=pid the unit hides /proc/device-tree and /proc/cpuinfo (where
    gpiozero looks); the revision is read from sysfs's view of the same device tree."""
    from edge_agent.drivers.gpio_inputs import board_revision

    dt = tmp_path / "linux,revision"
    dt.write_bytes(bytes.fromhex("00c03114"))
    assert board_revision((str(tmp_path / "absent"), str(dt)), "/nonexistent") == 0xC03114
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nRevision\t: a02082\n")
    assert board_revision((str(tmp_path / "absent"),), str(cpuinfo)) == 0xA02082
    assert board_revision((str(tmp_path / "absent"),), str(tmp_path / "absent")) is None


def test_real_pin_factory_passes_the_revision_to_gpiozero(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from edge_agent.drivers import gpio_inputs

    seen: list[int] = []

    class FakeLGPIOFactory:
        def __init__(self) -> None:
            seen.append(self._get_revision())

        def _get_revision(self) -> int:
            raise AssertionError("gpiozero's own lookup reads the hidden /proc files")

    mod = types.ModuleType("gpiozero.pins.lgpio")
    mod.LGPIOFactory = FakeLGPIOFactory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gpiozero.pins.lgpio", mod)
    dt = tmp_path / "linux,revision"
    dt.write_bytes(bytes.fromhex("00d04170"))
    monkeypatch.setattr(gpio_inputs, "REVISION_FILES", (str(dt),))
    monkeypatch.setattr(gpio_inputs, "CPUINFO", "/nonexistent")
    gpio_inputs.real_pin_factory()
    assert seen == [0xD04170]
    monkeypatch.setattr(gpio_inputs, "REVISION_FILES", (str(tmp_path / "absent"),))
    with pytest.raises(HardwareError, match="revision"):
        gpio_inputs.real_pin_factory()


def test_lgpio_errors_are_hardware_errors(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """lgpio raises its own ``lgpio.error`` (not an OSError) when the chip cannot be
    opened, e.g. /dev/gpiochip0 not readable by the service's groups: a counted
    HardwareError, not a crashed sensor thread."""
    import sys
    import types

    from edge_agent.drivers import gpio_inputs

    lgpio_error = type("error", (Exception,), {"__module__": "lgpio"})

    class FakeLGPIOFactory:
        def __init__(self) -> None:
            raise lgpio_error("can not open gpiochip")

    mod = types.ModuleType("gpiozero.pins.lgpio")
    mod.LGPIOFactory = FakeLGPIOFactory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gpiozero.pins.lgpio", mod)
    dt = tmp_path / "linux,revision"
    dt.write_bytes(bytes.fromhex("00c03114"))
    monkeypatch.setattr(gpio_inputs, "REVISION_FILES", (str(dt),))
    with pytest.raises(HardwareError, match="can not open gpiochip"):
        gpio_inputs.real_pin_factory()
