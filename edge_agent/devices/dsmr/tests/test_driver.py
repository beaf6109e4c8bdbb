"""dsmr-p1 driver against the emulated meter on a real pty (serial_for_url)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge_agent.core.clock import SystemClock
from edge_agent.core.errors import DeviceNotFoundError, KeyFileError
from edge_agent.core.model import Channel
from edge_agent.devices.dsmr.driver import DsmrSensor
from edge_agent.devices.dsmr.options import DsmrEmulation, DsmrOptions, DsmrVersion
from edge_agent.hal.backend import RealHardware
from tests.device_helpers import Collector, build, context, emulated, emulator


class Run(Collector):
    def __init__(self, sensor: DsmrSensor) -> None:
        super().__init__()
        self.sensor = sensor


@contextmanager
def running(options: DsmrOptions, interval: float = 0.0) -> Iterator[Run]:
    with emulated(SystemClock()) as ctx:
        sensor = build(ctx, "dsmr-p1", options, interval, sensor_id="meter")
        assert isinstance(sensor, DsmrSensor) and emulator(sensor) is not None
        run = Run(sensor)
        stop = threading.Event()
        thread = threading.Thread(target=sensor.run, args=(run.emit, stop), daemon=True)
        thread.start()
        try:
            yield run
        finally:
            stop.set()
            thread.join(timeout=5)
            assert not thread.is_alive()


def fast(**kw: object) -> DsmrOptions:
    emu = DsmrEmulation(interval=0.05, **kw)  # type: ignore[arg-type]
    return DsmrOptions(emulate=emu, silence_timeout=0.5)


def test_readings_from_the_emulated_meter() -> None:
    with running(fast(power_w=900.0, voltage_v=231.0, gas_m3=100.0)) as run:
        run.wait(lambda: len(run.named("power_import")) >= 2)
        power = run.named("power_import")[0]
        assert (power.value, power.unit, power.channel) == (900.0, "W", Channel.OT)
        assert run.named("voltage_l1")[0].value == 231.0
        gas = run.named("mbus1_gas_volume")[0]
        assert gas.unit == "m3" and 100.0 <= float(gas.value) < 100.1
        assert run.named("energy_import_t1")[0].unit == "Wh"
        # the meter timestamps its telegrams (1 s resolution): readings carry that time
        assert power.time == int(power.time)
        # text values are published once, not with every telegram
        assert len(run.named("equipment_id")) == 1
        assert run.named("equipment_id")[0].value == "EMU0000000000001"
        assert run.sensor.stats.errors == {}


def test_obis_selection_limits_the_readings() -> None:
    opts = DsmrOptions(emulate=DsmrEmulation(interval=0.05), obis=["1-0:1.7.0", "0-1:24.2.1"])
    with running(opts) as run:
        run.wait(lambda: len(run.readings) >= 4)
        assert {r.name for r in run.readings} == {"power_import", "mbus1_gas_volume"}


def test_interval_limits_the_publish_rate() -> None:
    with running(fast(), interval=3600.0) as run:
        run.wait(lambda: emulator(run.sensor) is not None and emulator(run.sensor).sent >= 5)
        run.wait(lambda: len(run.named("power_import")) == 1)
        assert len(run.named("power_import")) == 1


@pytest.mark.parametrize(("fault", "reason"), [("bad_crc", "checksum"), ("garbage", "frame"),
                                                 ("truncated", "frame")])
def test_faulty_telegrams_are_dropped_and_counted(fault: str, reason: str) -> None:
    with running(fast()) as run:
        emu = emulator(run.sensor)
        assert emu is not None
        run.wait(lambda: len(run.named("power_import")) >= 1)
        emu.set_power(1111.0)
        emu.set_fault(fault)  # type: ignore[arg-type]
        run.wait(lambda: run.sensor.stats.errors[reason] >= 2)
        assert not [r for r in run.named("power_import") if r.value == 1111.0]
        emu.set_fault("none")
        run.wait(lambda: any(r.value == 1111.0 for r in run.named("power_import")))


def test_out_of_range_value_is_never_published() -> None:
    with running(fast(values={"1-0:32.7.0": "1500.0*V"})) as run:
        run.wait(lambda: run.sensor.stats.errors["range"] >= 1)
        run.wait(lambda: len(run.named("voltage_l2")) >= 1)
        assert run.named("voltage_l1") == []


def test_silence_reopens_the_port() -> None:
    with running(fast()) as run:
        emu = emulator(run.sensor)
        assert emu is not None
        run.wait(lambda: len(run.named("power_import")) >= 1)
        emu.set_fault("silence")
        run.wait(lambda: run.sensor.stats.errors["DeviceTimeoutError"] >= 1)
        n = len(run.named("power_import"))
        emu.set_fault("none")
        run.wait(lambda: len(run.named("power_import")) > n)


def test_unplugged_meter_comes_back() -> None:
    with running(fast()) as run:
        emu = emulator(run.sensor)
        assert emu is not None
        run.wait(lambda: len(run.named("power_import")) >= 1)
        emu.unplug()
        run.wait(lambda: run.sensor.stats.errors["DeviceNotFoundError"] >= 1)
        n = len(run.named("power_import"))
        emu.replug()
        run.wait(lambda: len(run.named("power_import")) > n)
        # the reopened port publishes the identification again
        assert len(run.named("equipment_id")) >= 2


def test_scripted_unplug_from_the_emulate_block() -> None:
    with running(fast(unplug_after=0.3, unplug_for=0.5)) as run:
        run.wait(lambda: run.sensor.stats.errors["DeviceNotFoundError"] >= 1, timeout=15)
        n = len(run.named("power_import"))
        run.wait(lambda: len(run.named("power_import")) > n, timeout=15)  # reopened, backoff


def test_dsmr22_at_9600_7e1_without_crc() -> None:
    opts = DsmrOptions(version=DsmrVersion("2.2"), emulate=DsmrEmulation(interval=0.05))
    assert opts.line == (9600, "7E1")
    with running(opts) as run:
        run.wait(lambda: len(run.named("mbus1_gas_volume")) >= 1)
        assert emulator(run.sensor) is not None
        assert emulator(run.sensor).line_speed() == 9600
        assert run.named("power_import")[0].value == 450.0
        assert run.sensor.stats.errors == {}


def test_dsmr5_rejects_telegrams_without_crc() -> None:
    opts = DsmrOptions(version=DsmrVersion("5"), emulate=DsmrEmulation(interval=0.05))
    with running(opts) as run:
        emu = emulator(run.sensor)
        assert emu is not None
        run.wait(lambda: len(run.named("power_import")) >= 1)
        assert emu.line_speed() == 115200
        emu.meter.version = "2.2"  # the meter suddenly speaks DSMR 2.2 (no CRC)
        run.wait(lambda: run.sensor.stats.errors["frame"] >= 1)


def test_absent_port_on_real_hardware_is_device_not_found() -> None:
    ctx = context(RealHardware(), SystemClock())
    sensor = build(ctx, "dsmr-p1", DsmrOptions(port="/nonexistent/ttyUSB9"), 0.0)
    assert isinstance(sensor, DsmrSensor) and emulator(sensor) is None
    with pytest.raises(DeviceNotFoundError):
        sensor.open_stream()


@pytest.mark.parametrize("kw", [{"obis": ["nonsense"]}, {"framing": "9X1"},
                                {"baudrate": 0}, {"silence_timeout": 0.0}])
def test_bad_options_are_rejected(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DsmrOptions(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("raw", "ok"), [(5, "5"), ("4", "4"), (2.2, "2.2"), (3, "3")])
def test_version_parses_numbers(raw: object, ok: str) -> None:
    assert DsmrVersion.__config_parse__(raw) == ok


@pytest.mark.parametrize("raw", [6, "x", True, None])
def test_version_rejects_others(raw: object) -> None:
    with pytest.raises(ValueError):
        DsmrVersion.__config_parse__(raw)


# -- installation limits ----------------------------------------------------------------------


def test_values_outside_the_installation_limits_are_counted_not_published() -> None:
    opts = DsmrOptions(emulate=DsmrEmulation(interval=0.05, values={"1-0:31.7.0": "040*A"}),
                       silence_timeout=0.5, max_current=32.0)
    with running(opts) as run:
        run.wait(lambda: len(run.named("power_import")) >= 2)
        assert run.named("current_l1") == [] and run.sensor.stats.errors["range"] >= 2


def test_energy_register_going_backwards_is_held_back() -> None:
    with running(fast()) as run:
        run.wait(lambda: len(run.named("energy_import_t1")) >= 1)
        first = float(run.named("energy_import_t1")[-1].value)
        meter = emulator(run.sensor)
        meter.set_value("1-0:1.8.1", f"{(first - 1000) / 1000:010.3f}*kWh")
        run.wait(lambda: run.sensor.stats.errors["energy-decrease"] >= 2)
        assert all(float(r.value) >= first for r in run.named("energy_import_t1"))


# -- encrypted P1 (Luxembourg Smarty) -------------------------------------------------------

EK = bytes(range(16))
AK = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


def p1_keys(tmp_path: Path, *, separate_ak: bool = False) -> DsmrOptions:
    key = tmp_path / "p1.key"
    key.write_text(f"EK={EK.hex()}\n" + ("" if separate_ak else f"AK={AK.hex()}\n"))
    key.chmod(0o600)
    auth = None
    if separate_ak:
        auth = tmp_path / "p1.auth"
        auth.write_text(f"AK={AK.hex()}\n")
        auth.chmod(0o600)
    return DsmrOptions(emulate=DsmrEmulation(interval=0.05), silence_timeout=0.5,
                       key_file=key, auth_key_file=auth)


@pytest.mark.parametrize("separate_ak", [False, True])
def test_encrypted_p1_telegrams_become_readings(tmp_path: Path, separate_ak: bool) -> None:
    with running(p1_keys(tmp_path, separate_ak=separate_ak)) as run:
        run.wait(lambda: len(run.named("power_import")) >= 2)
        assert run.named("power_import")[0].value == 450.0
        assert run.sensor.stats.errors == {}


def test_encrypted_p1_replayed_frame_is_counted_and_publishes_nothing(tmp_path: Path) -> None:
    opts = p1_keys(tmp_path)
    opts = DsmrOptions(emulate=DsmrEmulation(interval=0.05, fault="replay", fault_every=2),
                       silence_timeout=0.5, key_file=opts.key_file)
    with running(opts) as run:
        run.wait(lambda: run.sensor.stats.errors["replay"] >= 2)
        meter = emulator(run.sensor)
        published = len(run.named("power_import"))
        counters = meter.frame_counter
        assert published <= counters  # each frame at most once, replays never


def test_encrypted_p1_key_file_open_to_others_stops_the_sensor(tmp_path: Path) -> None:
    opts = p1_keys(tmp_path)
    assert opts.key_file is not None
    opts.key_file.chmod(0o644)
    with pytest.raises(KeyFileError), emulated(SystemClock()) as ctx:
        build(ctx, "dsmr-p1", opts, 0.0, sensor_id="meter")


def test_auth_key_file_needs_a_key_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a key_file"):
        DsmrOptions(auth_key_file=tmp_path / "ak")
