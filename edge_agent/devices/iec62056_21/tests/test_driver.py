"""iec62056-21 driver against the emulated meter on a real pty (serial_for_url)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from edge_agent.core.clock import SystemClock
from edge_agent.core.errors import (
    ChecksumError,
    DeviceNotFoundError,
    DeviceTimeoutError,
    FrameError,
)
from edge_agent.core.model import Channel, Priority
from edge_agent.devices.base import SensorSpec
from edge_agent.devices.iec62056_21.driver import IecSensor
from edge_agent.devices.iec62056_21.options import IecEmulation, IecOptions
from edge_agent.hal.emulated import EmulatedDevice
from edge_agent.hal.emulated.pty import PtyDevice
from tests.device_helpers import build, context, emulated, emulator


@contextmanager
def sensor_for(emulate: IecEmulation | None = None, **kw: object) -> Iterator[IecSensor]:
    kw = {"request_timeout": 0.3, **kw}
    opts = IecOptions(emulate=emulate or IecEmulation(), **kw)  # type: ignore[arg-type]
    with emulated(SystemClock()) as ctx:
        sensor = build(ctx, "iec62056-21", opts, 60.0)
        assert isinstance(sensor, IecSensor) and emulator(sensor) is not None
        try:
            sensor.open()
            yield sensor
        finally:
            sensor.close()


def test_readout_switches_baud_and_decodes() -> None:
    with sensor_for(IecEmulation(power_w=600.0, voltage_v=231.0, max_baudrate=9600)) as s:
        samples = {x.name: (x.value, x.unit) for x in s.sample()}
        assert samples["power"] == (600.0, "W")
        assert samples["voltage_l1"] == (231.0, "V")
        assert samples["energy_import"] == (1234567.0, "Wh")
        assert samples["frequency"] == (50.0, "Hz")
        assert s.identification is not None and s.identification.baudrate == 9600
        assert emulator(s) is not None and emulator(s).readouts == 1
        assert emulator(s).line_speed() == 9600  # the host switched after the option select


def test_max_baudrate_caps_the_switch() -> None:
    with sensor_for(IecEmulation(max_baudrate=19200), max_baudrate=2400) as s:
        assert s.sample()
        assert emulator(s) is not None and emulator(s).line_speed() == 2400


def test_repeated_polls_each_sign_on() -> None:
    with sensor_for() as s:
        s.sample()
        s.sample()
        assert emulator(s) is not None
        assert (emulator(s).sign_ons, emulator(s).readouts) == (2, 2)


def test_obis_selection() -> None:
    with sensor_for(obis=["1.8.0", "1-0:14.7.0"]) as s:
        assert {x.name for x in s.sample()} == {"energy_import", "frequency"}


def test_addressed_sign_on() -> None:
    with sensor_for(IecEmulation(address="4711"), address="4711") as s:
        assert s.sample()
    with sensor_for(IecEmulation(address="4711"), address="0815", retries=0) as s, \
            pytest.raises(DeviceTimeoutError):
        s.sample()


def test_retries_when_the_meter_does_not_answer() -> None:
    with sensor_for(IecEmulation(ignore_sign_ons=2), retries=2) as s:
        assert s.sample()
        assert emulator(s) is not None and emulator(s).sign_ons == 3


def test_silent_meter_times_out_after_retries() -> None:
    with sensor_for(IecEmulation(fault="silence"), retries=1) as s:
        with pytest.raises(DeviceTimeoutError):
            s.sample()
        assert emulator(s) is not None and emulator(s).sign_ons == 2


def test_bad_bcc_is_a_checksum_error_then_recovers() -> None:
    with sensor_for(IecEmulation(fault="bad_bcc")) as s:
        with pytest.raises(ChecksumError):
            s.sample()
        assert emulator(s) is not None
        emulator(s).set_fault("none")
        assert s.sample()


def test_noisy_readout_is_retried_from_the_sign_on() -> None:
    with sensor_for(IecEmulation(corrupt_readouts=1), retries=1) as s:
        assert {x.name for x in s.sample()} >= {"energy_import", "power"}
        assert emulator(s) is not None
        assert (emulator(s).sign_ons, emulator(s).readouts) == (2, 2)


def test_noisy_readout_without_retries_fails_the_poll() -> None:
    with sensor_for(IecEmulation(corrupt_readouts=1), retries=0) as s:
        with pytest.raises(ChecksumError):
            s.sample()
        assert s.sample()  # the next poll gets a clean readout


def test_nak_to_the_option_select_fails_without_waiting_for_data() -> None:
    # at 300 baud the host hears the NAK (after a switch it would arrive garbled)
    with sensor_for(IecEmulation(nak_options=True), retries=1, max_baudrate=300,
                    request_timeout=5.0) as s:
        with pytest.raises(FrameError, match="NAK"):
            s.sample()
        assert emulator(s) is not None
        assert (emulator(s).sign_ons, emulator(s).readouts) == (2, 0)


def test_slow_readout_longer_than_the_timeout_is_read() -> None:
    # 12 bytes per 20 ms tick: the readout takes several times request_timeout (0.1 s),
    # but the line is never silent for that long
    with sensor_for(IecEmulation(readout_chunk=12), request_timeout=0.1, retries=0) as s:
        assert {x.name for x in s.sample()} >= {"energy_import", "frequency"}


class _ChattyMeter(PtyDevice):
    """Answers the sign-on, then talks on and on without ever sending a readout."""

    def on_tick(self, now: float) -> None:
        if self.line_speed() is not None:
            self.write(b"/EMU5CHATTY\r\n" * 300)


def test_meter_that_never_sends_the_readout_is_cut_off() -> None:
    spec = SensorSpec("probe", "iec62056-21", Channel.OT, Priority.NORMAL, 60.0)
    hw = EmulatedDevice(_ChattyMeter("chatty"))
    try:
        sensor = IecSensor(spec, context(hw, SystemClock()),
                           IecOptions(request_timeout=0.3, retries=0))
        sensor.open()
        try:
            with pytest.raises(FrameError, match="no datablock in"):
                sensor.sample()  # never silent for 0.3 s, but it must end
        finally:
            sensor.close()
    finally:
        hw.close()


def test_garbage_answer_times_out() -> None:
    with sensor_for(IecEmulation(fault="garbage"), retries=0) as s, \
            pytest.raises(DeviceTimeoutError):
        s.sample()


def test_out_of_range_value_is_dropped_and_counted() -> None:
    with sensor_for(IecEmulation(values={"32.7.0": "2300.0*V"})) as s:
        names = {x.name for x in s.sample()}
        assert "voltage_l1" not in names and "voltage_l2" in names
        assert s.stats.errors["range"] == 1


def test_unplugged_probe_then_back() -> None:
    with sensor_for() as s:
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


def test_run_loop_emits_readings() -> None:
    import threading

    opts = IecOptions(emulate=IecEmulation(), request_timeout=0.3)
    with emulated(SystemClock()) as ctx:
        sensor = build(ctx, "iec62056-21", opts, 0.05)
        got: list[object] = []
        done = threading.Event()
        stop = threading.Event()

        def emit(batch: list[object]) -> None:
            got.extend(batch)
            if len(got) >= 20:
                done.set()

        t = threading.Thread(target=sensor.run, args=(emit, stop), daemon=True)
        t.start()
        assert done.wait(5)
        stop.set()
        t.join(5)
        assert not t.is_alive()


@pytest.mark.parametrize("kw", [{"obis": ["x"]}, {"max_baudrate": 115200},
                                {"request_timeout": 0}, {"retries": -1}, {"address": "a/b"}])
def test_bad_options(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        IecOptions(**kw)  # type: ignore[arg-type]
