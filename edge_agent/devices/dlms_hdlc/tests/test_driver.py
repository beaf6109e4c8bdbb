"""dlms-hdlc driver against the emulated HAN-port meter on a real pty (serial_for_url)."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge_agent.core.clock import SystemClock
from edge_agent.core.errors import DeviceNotFoundError, KeyFileError
from edge_agent.core.model import Channel, Priority
from edge_agent.devices.base import SensorContext, SensorSpec
from edge_agent.devices.dlms_hdlc import DLMS_HDLC
from edge_agent.devices.dlms_hdlc.driver import DlmsSensor
from edge_agent.devices.dlms_hdlc.emulator import SYSTEM_TITLE, DlmsMeter
from edge_agent.devices.dlms_hdlc.keys import load_keys
from edge_agent.devices.dlms_hdlc.options import DlmsEmulation, DlmsOptions
from edge_agent.hal.backend import RealHardware
from edge_agent.hal.emulated import EmulatedDevice, EmulatedHardware
from tests.device_helpers import Collector, emulator

EK = bytes(range(16))
AK = bytes(range(0xD0, 0xE0))


class Run(Collector):
    def __init__(self, sensor: DlmsSensor) -> None:
        super().__init__()
        self.sensor = sensor

    @property
    def meter(self) -> DlmsMeter:
        meter = emulator(self.sensor)
        assert isinstance(meter, DlmsMeter)
        return meter

    def errors(self, reason: str) -> int:
        return self.sensor.stats.errors[reason]


@pytest.fixture(autouse=True)
def hardware() -> Iterator[EmulatedHardware]:
    """The emulated backend of this test's sensors, closed (emulators stopped) after it."""
    global _HW
    _HW = EmulatedHardware(SystemClock())
    yield _HW
    _HW.close()


_HW: EmulatedHardware


def context(state_dir: Path | None = None) -> SensorContext:
    return SensorContext(_HW, SystemClock(), logging.getLogger("test"), state_dir)


def build(spec: SensorSpec, options: DlmsOptions, ctx: SensorContext) -> DlmsSensor:
    sensor = DLMS_HDLC.build(spec, options, ctx)
    assert isinstance(sensor, DlmsSensor)
    return sensor


def on_meter(options: DlmsOptions, meter: DlmsMeter,
             keys: tuple[bytes, bytes | None] | None = None) -> DlmsSensor:
    """A sensor wired to ``meter`` (not the one its options would emulate)."""
    hw = EmulatedDevice(meter)
    _HW_EXTRA.append(hw)
    return DlmsSensor(spec(), SensorContext(hw, SystemClock(), logging.getLogger("test")),
                      options, keys)


_HW_EXTRA: list[EmulatedDevice] = []


@pytest.fixture(autouse=True)
def _close_extra() -> Iterator[None]:
    yield
    while _HW_EXTRA:
        _HW_EXTRA.pop().close()


def spec(interval: float = 0.0) -> SensorSpec:
    return SensorSpec("han", "dlms-hdlc", Channel.OT, Priority.NORMAL, interval)


@contextmanager
def running(sensor: DlmsSensor) -> Iterator[Run]:
    assert emulator(sensor) is not None
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


def fast(key_file: Path | None = None, **kw: object) -> DlmsOptions:
    emu = DlmsEmulation(interval=0.05, **kw)  # type: ignore[arg-type]
    return DlmsOptions(emulate=emu, key_file=key_file, silence_timeout=0.5)


def emulated(options: DlmsOptions, interval: float = 0.0,
             state_dir: Path | None = None) -> DlmsSensor:
    sensor = build(spec(interval), options, context(state_dir))
    assert isinstance(sensor, DlmsSensor) and emulator(sensor) is not None
    return sensor


def key_file(tmp_path: Path, ek: bytes = EK, ak: bytes | None = AK, mode: int = 0o600,
             name: str = "meter.key") -> Path:
    f = tmp_path / name
    text = f"# meter EMU00000001\nEK={ek.hex().upper()}\n"
    if ak is not None:
        text += f"AK={ak.hex()}\n"
    f.write_text(text)
    f.chmod(mode)
    return f


def test_plain_pushes_become_readings() -> None:
    with running(emulated(fast(power_w=900.0, voltage_v=231.4))) as run:
        run.wait(lambda: len(run.named("power_import")) >= 2)
        power = run.named("power_import")[0]
        assert (power.value, power.unit, power.channel) == (900.0, "W", Channel.OT)
        assert run.named("voltage_l1")[0].value == 231.4
        assert run.named("current_l1")[0].value == 4.9
        assert run.named("energy_import")[0].value == 10_049_926.0
        assert run.sensor.stats.errors == {}


def test_kamstrup_layout_with_segmented_frames() -> None:
    with running(emulated(fast(layout="kamstrup", max_info=40))) as run:
        run.wait(lambda: len(run.named("power_import")) >= 2)
        assert run.named("current_l1")[0].value == 4.9
        assert run.named("energy_import")[0].value == 10_049_930.0  # 0.01 kWh resolution
        assert run.sensor.stats.errors == {}


@pytest.mark.parametrize("with_ak", [True, False])
def test_encrypted_pushes_with_key_file(tmp_path: Path, with_ak: bool) -> None:
    keys = key_file(tmp_path, ak=AK if with_ak else None)
    with running(emulated(fast(keys, power_w=777.0))) as run:
        assert run.meter.key == EK and (run.meter.auth_key is not None) == with_ak
        run.wait(lambda: len(run.named("power_import")) >= 2)
        assert run.named("power_import")[0].value == 777.0
        assert run.sensor.stats.errors == {}
        assert run.meter.counter > 2  # the meter really sent ciphered APDUs


def test_wrong_key_is_counted_and_publishes_nothing(tmp_path: Path) -> None:
    with running(emulated(fast(key_file(tmp_path)))) as run:
        run.wait(lambda: len(run.named("power_import")) >= 1)
        run.meter.set_power(4321.0)
        run.meter.set_fault("wrong_key")
        run.wait(lambda: run.errors("decryption") >= 3)
        assert not [r for r in run.named("power_import") if r.value == 4321.0]
        assert "tag mismatch" in str(run.sensor.stats.last_error)
        run.meter.set_fault("none")
        run.wait(lambda: any(r.value == 4321.0 for r in run.named("power_import")))


def test_replayed_push_is_counted_and_publishes_nothing(tmp_path: Path) -> None:
    with running(emulated(fast(key_file(tmp_path), power_w=1111.0))) as run:
        run.wait(lambda: len(run.named("power_import")) >= 1)
        run.meter.set_fault("replay")  # from now on the last push (1111 W) again and again
        run.meter.set_power(2222.0)  # only fresh pushes carry this
        run.wait(lambda: run.errors("replay") >= 3)
        n = len(run.named("power_import"))  # every fresh push came before the replays
        run.wait(lambda: run.errors("replay") >= 6)
        assert len(run.named("power_import")) == n  # replays published nothing
        assert run.meter.replayed >= 6
        assert "replayed push from system title" in str(run.sensor.stats.last_error)
        assert run.errors("decryption") == 0  # the replays are authentic, just stale
        run.meter.set_fault("none")
        run.wait(lambda: any(r.value == 2222.0 for r in run.named("power_import")))
        run.wait(lambda: len([r for r in run.named("power_import") if r.value == 2222.0]) >= 2)
        assert all(r.value in (1111.0, 2222.0) for r in run.named("power_import"))


def test_replay_protection_survives_reopening_the_port(tmp_path: Path) -> None:
    with running(emulated(fast(key_file(tmp_path)))) as run:
        run.wait(lambda: len(run.named("power_import")) >= 1)
        run.meter.set_fault("replay")
        run.wait(lambda: run.errors("replay") >= 1)  # the sensor has seen the recorded push
        run.meter.unplug()
        run.wait(lambda: run.errors("DeviceNotFoundError") >= 1)
        n = len(run.named("power_import"))  # nothing can arrive while unplugged
        replays = run.errors("replay")
        run.meter.replug()
        run.wait(lambda: run.errors("replay") >= replays + 3)
        assert len(run.named("power_import")) == n  # not even the first replay


def test_replay_protection_survives_a_restart(tmp_path: Path) -> None:
    keys, state = key_file(tmp_path), tmp_path / "state" / "sensors"
    with running(emulated(fast(keys, power_w=1111.0), state_dir=state)) as run:
        run.wait(lambda: len(run.named("power_import")) >= 1)
        run.meter.set_fault("replay")
        run.wait(lambda: run.errors("replay") >= 1)  # the recorded push was accepted before
        recorded, counter = run.meter.last_push, run.meter.counter
    path = state / "han.dlms-counters"
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert saved == {SYSTEM_TITLE.hex(): counter - 1}  # the last push the meter sent
    assert not list(state.glob(".*.tmp"))

    # the agent restarts: a new sensor, and the recording is played back on the port first
    sensor = emulated(fast(keys, power_w=2222.0), state_dir=state)
    assert emulator(sensor) is not None
    emulator(sensor).last_push, emulator(sensor).counter = recorded, counter
    emulator(sensor).set_fault("replay")
    with running(sensor) as run:
        run.wait(lambda: run.errors("replay") >= 3)
        assert run.named("power_import") == []  # not even the first replay
        assert run.meter.pushed == 0 and run.meter.replayed >= 3
        run.meter.set_fault("none")
        run.wait(lambda: len(run.named("power_import")) >= 2)
        assert {r.value for r in run.named("power_import")} == {2222.0}
        assert run.errors("replay-state") == 0
    assert json.loads(path.read_text())[SYSTEM_TITLE.hex()] >= counter + 1


@pytest.mark.parametrize("text", ["{not json", '{"454d55": "x"}', "[1, 2]", '{"zz": 5}'])
def test_corrupt_replay_state_starts_empty(tmp_path: Path, text: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "sensors"
    state.mkdir()
    (state / "han.dlms-counters").write_text(text)
    with caplog.at_level(logging.WARNING, logger="test"), \
            running(emulated(fast(key_file(tmp_path)), state_dir=state)) as run:
        run.wait(lambda: len(run.named("power_import")) >= 2)
        assert run.errors("replay-state") == 1 and run.errors("replay") == 0
    warnings = [r for r in caplog.records if "replay-state" in r.getMessage()]
    assert len(warnings) == 1 and "starting with no replay counters" in warnings[0].getMessage()
    assert SYSTEM_TITLE.hex() in json.loads((state / "han.dlms-counters").read_text())


def test_plain_pushes_have_no_replay_check() -> None:
    with running(emulated(fast())) as run:
        run.wait(lambda: len(run.named("power_import")) >= 1)
        run.meter.set_fault("replay")
        n = len(run.named("power_import"))
        run.wait(lambda: len(run.named("power_import")) >= n + 3)  # nothing to tell them by
        assert run.errors("replay") == 0


def test_key_file_for_another_meter_never_yields_readings(tmp_path: Path) -> None:
    meter = DlmsMeter(DlmsEmulation(interval=0.05), key=EK, auth_key=AK)
    options = fast(key_file(tmp_path, ek=bytes(16)))
    sensor = on_meter(options, meter, load_keys(options.key_file or Path()))
    with running(sensor) as run:
        run.wait(lambda: run.errors("decryption") >= 3)
        assert run.readings == []


def test_encrypted_push_without_key_file_is_counted() -> None:
    meter = DlmsMeter(DlmsEmulation(interval=0.05), key=EK, auth_key=AK)
    sensor = on_meter(fast(), meter)
    with running(sensor) as run:
        run.wait(lambda: run.errors("decryption") >= 2)
        assert run.readings == []
        assert "no key_file configured" in str(run.sensor.stats.last_error)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_key_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    keys = key_file(tmp_path, mode=mode)
    with pytest.raises(KeyFileError, match=r"group/others .*chmod 600"):
        build(spec(), fast(keys), context())


@pytest.mark.parametrize(("text", "words"), [
    ("EK=0011\n", "32 hex digits"),
    ("AK=" + AK.hex() + "\n", "no EK= line"),
    ("EK=" + EK.hex() + "\nEK=" + EK.hex() + "\n", "once each"),
    ("KEY=" + EK.hex() + "\n", "expected EK="),
])
def test_malformed_key_files_are_refused(tmp_path: Path, text: str, words: str) -> None:
    f = tmp_path / "bad.key"
    f.write_text(text)
    f.chmod(0o600)
    with pytest.raises(KeyFileError, match=words):
        build(spec(), fast(f), context())
    with pytest.raises(KeyFileError, match="cannot open"):
        build(spec(), fast(tmp_path / "absent.key"), context())


def test_key_file_symlink_is_refused(tmp_path: Path) -> None:
    real = key_file(tmp_path)
    link = tmp_path / "link.key"
    os.symlink(real, link)
    with pytest.raises(KeyFileError, match="cannot open"):
        load_keys(link)
    assert load_keys(real) == (EK, AK)


@pytest.mark.parametrize(("fault", "reason"), [("bad_fcs", "checksum"), ("garbage", "frame"),
                                                 ("truncated", "frame")])
def test_faulty_frames_are_dropped_and_counted(fault: str, reason: str) -> None:
    with running(emulated(fast())) as run:
        run.wait(lambda: len(run.named("power_import")) >= 1)
        run.meter.set_power(1111.0)
        run.meter.set_fault(fault)  # type: ignore[arg-type]
        run.wait(lambda: run.errors(reason) >= 2)
        assert not [r for r in run.named("power_import") if r.value == 1111.0]
        run.meter.set_fault("none")
        run.wait(lambda: any(r.value == 1111.0 for r in run.named("power_import")))


def test_out_of_range_value_is_never_published() -> None:
    with running(emulated(fast(voltage_v=1500.0))) as run:
        run.wait(lambda: run.errors("range") >= 2)
        run.wait(lambda: len(run.named("power_import")) >= 1)
        assert run.named("voltage_l1") == [] and run.named("voltage_l2") == []


def test_obis_selection_and_interval() -> None:
    options = DlmsOptions(emulate=DlmsEmulation(interval=0.05), obis=["1-0:1.7.0", "1.8.0"])
    with running(emulated(options, interval=3600.0)) as run:
        run.wait(lambda: run.meter.pushed >= 5)
        run.wait(lambda: len(run.readings) == 2)
        assert {r.name for r in run.readings} == {"power_import", "energy_import"}


def test_silent_meter_reopens_the_port() -> None:
    with running(emulated(fast())) as run:
        run.wait(lambda: len(run.named("power_import")) >= 1)
        run.meter.set_fault("silence")
        run.wait(lambda: run.errors("DeviceTimeoutError") >= 1)
        n = len(run.named("power_import"))
        run.meter.set_fault("none")
        run.wait(lambda: len(run.named("power_import")) > n)


def test_port_vanishes_and_comes_back(tmp_path: Path) -> None:
    with running(emulated(fast(key_file(tmp_path)))) as run:
        run.wait(lambda: len(run.named("power_import")) >= 1)
        run.meter.unplug()
        run.wait(lambda: run.errors("DeviceNotFoundError") >= 1)
        n = len(run.named("power_import"))
        run.meter.set_power(2222.0)
        run.meter.replug()
        run.wait(lambda: any(r.value == 2222.0 for r in run.named("power_import")))
        assert len(run.named("power_import")) > n
        assert run.errors("decryption") == 0  # a fresh parser after reopening


def test_absent_port_on_real_hardware_is_device_not_found() -> None:
    ctx = SensorContext(RealHardware(), SystemClock(), logging.getLogger("test"))
    sensor = build(spec(), DlmsOptions(port="/nonexistent/ttyUSB9"), ctx)
    assert isinstance(sensor, DlmsSensor) and emulator(sensor) is None
    with pytest.raises(DeviceNotFoundError):
        sensor.open_stream()


@pytest.mark.parametrize("kw", [{"obis": ["nonsense"]}, {"framing": "8X1"},
                                {"framing": "9N1"}, {"baudrate": 0},
                                {"silence_timeout": 0.0}])
def test_bad_options_are_rejected(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DlmsOptions(**kw)  # type: ignore[arg-type]
