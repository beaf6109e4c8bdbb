"""modbus-rtu driver against the emulated SDM meter on a real pty (serial_for_url)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from edge_agent.core.clock import SystemClock
from edge_agent.core.errors import (
    ChecksumError,
    DeviceNotFoundError,
    DeviceTimeoutError,
    FrameError,
    HardwareError,
)
from edge_agent.core.model import Reading
from edge_agent.devices.modbus_rtu.driver import ModbusExceptionError, ModbusSensor
from edge_agent.devices.modbus_rtu.options import ModbusEmulation, ModbusOptions
from edge_agent.hal.emulated import EmulatedHardware
from edge_agent.protocols.modbus_rtu import Register
from tests.device_helpers import build, context, emulator


@pytest.fixture(autouse=True)
def hardware() -> Iterator[EmulatedHardware]:
    """The emulated backend of this test's sensors, closed (emulators stopped) after it."""
    global _HW
    _HW = EmulatedHardware(SystemClock())
    yield _HW
    _HW.close()


_HW: EmulatedHardware


def make(**kw: object) -> ModbusSensor:
    opts = ModbusOptions(timeout=0.2, **kw)  # type: ignore[arg-type]
    sensor = build(context(_HW, SystemClock()), "modbus-rtu", opts, 0.05)
    assert isinstance(sensor, ModbusSensor) and emulator(sensor) is not None
    return sensor


@contextmanager
def opened(**kw: object) -> Iterator[ModbusSensor]:
    sensor = make(**kw)
    try:
        sensor.open()
        yield sensor
    finally:
        sensor.close()


def test_sdm120_values() -> None:
    with opened(model="sdm120", emulate=ModbusEmulation(values={"voltage": 231.5})) as s:
        got = {x.name: (x.value, x.unit) for x in s.sample()}
        assert got["voltage"] == (231.5, "V")
        assert got["power"] == (450.0, "W")
        assert got["frequency"] == (50.0, "Hz")
        assert got["energy_import"] == (pytest.approx(1_234_567.0), "Wh")
        assert got["power_factor"][0] == pytest.approx(0.95)
        assert len(got) == 9


def test_sdm630_three_phases_in_five_requests() -> None:
    with opened(model="sdm630", unit=7) as s:
        got = {x.name for x in s.sample()}
        assert {"voltage_l1", "voltage_l3", "current_l2", "power", "energy_export"} <= got
        assert emulator(s) is not None and emulator(s).requests == 5


def test_energy_is_scaled_to_wh() -> None:
    # emulated values are in the published unit (Wh); the meter stores kWh (12.5)
    emu = ModbusEmulation(values={"energy_import": 12500.0})
    with opened(model="sdm120", emulate=emu) as s:
        assert emulator(s) is not None
        assert emulator(s)._words[(4, 0x48)] == 0x4148  # float32 12.5, high word
        got = {x.name: x.value for x in s.sample()}
        assert got["energy_import"] == 12500.0


def test_custom_register_map_with_holding_registers() -> None:
    regs = [Register("temperature", 0x10, "int16", "holding", "Cel", 0.1),
            Register("counter", 0x20, "uint32", "holding", "count")]
    emu = ModbusEmulation(values={"temperature": 21.5, "counter": 70000})
    with opened(model="custom", registers=regs, emulate=emu) as s:
        got = {x.name: (x.value, x.unit) for x in s.sample()}
        assert got["temperature"][0] == pytest.approx(21.5)
        assert got["counter"] == (70000, "count")


@pytest.mark.parametrize(("fault", "error"), [("silence", DeviceTimeoutError),
                                               ("bad_crc", ChecksumError),
                                               ("garbage", FrameError)])
def test_faults_fail_the_poll_after_retries(fault: str, error: type[Exception]) -> None:
    with opened(retries=1, emulate=ModbusEmulation(fault=fault)) as s:  # type: ignore[arg-type]
        with pytest.raises(error):
            s.sample()
        assert emulator(s) is not None and emulator(s).requests == 2  # one retry
        emulator(s).set_fault("none")
        assert s.sample()


def test_exception_response_is_a_hardware_error() -> None:
    with opened(emulate=ModbusEmulation(fault="exception", exception_code=4)) as s, \
            pytest.raises(HardwareError, match="server device failure"):
        s.sample()


def test_exception_response_is_not_retried() -> None:
    with opened(retries=3, emulate=ModbusEmulation(fault="exception", exception_code=6)) as s:
        with pytest.raises(ModbusExceptionError) as info:
            s.sample()
        assert (info.value.unit, info.value.function, info.value.code) == (1, 4, 6)
        assert "server device busy" in str(info.value)
        assert emulator(s) is not None and emulator(s).requests == 1


def test_run_loop_counts_exception_responses_and_publishes_nothing() -> None:
    sensor = make(emulate=ModbusEmulation(fault="exception"))
    got: list[Reading] = []
    lock = threading.Lock()
    stop = threading.Event()

    def emit(batch: list[Reading]) -> None:
        with lock:
            got.extend(batch)

    def wait(pred: Callable[[], bool]) -> None:
        ev = threading.Event()
        for _ in range(500):
            if pred():
                return
            ev.wait(0.01)
        raise AssertionError("condition not met in time")

    t = threading.Thread(target=sensor.run, args=(emit, stop), daemon=True)
    t.start()
    try:
        wait(lambda: sensor.stats.errors["ModbusExceptionError"] >= 2)
        with lock:
            assert got == []
        assert emulator(sensor) is not None
        emulator(sensor).set_fault("none")
        wait(lambda: len(got) >= 9)
    finally:
        stop.set()
        t.join(5)
    assert not t.is_alive()


def test_unmapped_register_gets_illegal_data_address() -> None:
    with opened(model="sdm120") as s:
        assert emulator(s) is not None
        emulator(s)._words.pop((4, 0x46))  # the meter lacks the frequency register
        with pytest.raises(HardwareError, match="illegal data address"):
            s.sample()


def test_wrong_unit_times_out() -> None:
    sensor = make(unit=2, retries=0)
    assert emulator(sensor) is not None
    emulator(sensor).unit = 3
    try:
        sensor.open()
        with pytest.raises(DeviceTimeoutError):
            sensor.sample()
    finally:
        sensor.close()


def test_nan_and_out_of_range_values_are_dropped() -> None:
    emu = ModbusEmulation(values={"voltage": float("nan"), "frequency": 99.0})
    with opened(emulate=emu) as s:
        names = {x.name for x in s.sample()}
        assert "voltage" not in names and "frequency" not in names and "power" in names
        assert s.stats.errors["range"] == 2


def test_unplug_and_replug() -> None:
    with opened() as s:
        assert emulator(s) is not None
        emulator(s).unplug()
        with pytest.raises(DeviceNotFoundError):
            s.sample()
        s.close()
        with pytest.raises(DeviceNotFoundError):
            s.open()
        emulator(s).replug()
        s.open()
        assert s.sample()


def test_run_loop_recovers_after_unplug() -> None:
    sensor = make()
    got: list[Reading] = []
    lock = threading.Lock()
    stop = threading.Event()

    def emit(batch: list[Reading]) -> None:
        with lock:
            got.extend(batch)

    def count() -> int:
        with lock:
            return len(got)

    t = threading.Thread(target=sensor.run, args=(emit, stop), daemon=True)
    t.start()
    ev = threading.Event()
    try:
        for _ in range(500):
            if count() >= 9:
                break
            ev.wait(0.01)
        assert emulator(sensor) is not None
        emulator(sensor).unplug()
        for _ in range(500):
            if sensor.stats.errors:
                break
            ev.wait(0.01)
        n = count()
        emulator(sensor).replug()
        for _ in range(500):
            if count() > n:
                break
            ev.wait(0.01)
        assert count() > n
        assert sum(sensor.stats.errors.values()) >= 1
    finally:
        stop.set()
        t.join(5)
    assert not t.is_alive()


@pytest.mark.parametrize("kw", [{"unit": 0}, {"model": "custom"},
                                {"registers": [Register("a", 0)]}, {"timeout": 0},
                                {"framing": "8X1"},
                                {"model": "custom",
                                 "registers": [Register("a", 0), Register("a", 2)]}])
def test_bad_options(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ModbusOptions(**kw)  # type: ignore[arg-type]
