"""The shared serial helpers: open through serial_for_url, error mapping, silence watchdog."""

from __future__ import annotations

import termios
from collections.abc import Callable

import pytest
import serial

from edge_agent.core.clock import ManualClock
from edge_agent.core.errors import DeviceNotFoundError, DeviceTimeoutError
from edge_agent.devices.serial_sensor import SilenceWatchdog
from edge_agent.hal.emulated.pty import PtyDevice
from edge_agent.hal.serial import SerialPort, check_framing, open_serial


@pytest.mark.parametrize("framing", ["8N1", "7E1", "8O2", "5N1"])
def test_valid_framings(framing: str) -> None:
    assert check_framing(framing) == framing


@pytest.mark.parametrize("framing", ["", "8N", "9N1", "8X1", "8N3", "8n1", "8N1 "])
def test_invalid_framings(framing: str) -> None:
    with pytest.raises(ValueError, match="framing"):
        check_framing(framing)
    with pytest.raises(ValueError, match="framing"):
        open_serial("loop://", 9600, framing=framing)


def test_loop_url_round_trip_and_line_settings() -> None:
    port = open_serial("loop://", 9600, framing="7E1", timeout=0.01)
    try:
        assert port.write(b"/?!\r\n") == 5
        port.flush()
        assert port.read(16) == b"/?!\r\n"
        assert port.read(16) == b""  # read timeout, no data
        assert port.baudrate == 9600
        port.baudrate = 300
        assert port.baudrate == 300
        port.reset_input_buffer()
    finally:
        port.close()


def test_pty_sees_the_host_line_speed() -> None:
    with PtyDevice("probe") as dev:
        port = open_serial(dev.path, 2400, framing="7E1")
        try:
            assert dev.line_speed() == 2400
            port.baudrate = 9600
            assert dev.line_speed() == 9600
        finally:
            port.close()


def test_absent_port_is_device_not_found() -> None:
    with pytest.raises(DeviceNotFoundError, match="/nonexistent/ttyUSB7"):
        open_serial("/nonexistent/ttyUSB7", 9600)


def test_vanished_pty_fails_reads_as_device_not_found() -> None:
    with PtyDevice("meter") as dev:
        port = open_serial(dev.path, 9600)
        dev.unplug()
        with pytest.raises(DeviceNotFoundError):
            for _ in range(50):  # the hang-up shows on the next read
                port.read(16)
        port.close()  # must not raise
        with pytest.raises(DeviceNotFoundError):
            open_serial(dev.path, 9600)
        dev.replug()
        open_serial(dev.path, 9600).close()


class _Broken:
    """A pyserial port whose every call fails the way a vanished adapter does."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.baudrate_value = 9600

    def fail(self, *args: object) -> None:
        raise self.exc

    read = write = flush = reset_input_buffer = close = fail

    @property
    def baudrate(self) -> int:
        return self.baudrate_value

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        raise self.exc


@pytest.mark.parametrize("exc", [serial.SerialException("device reports readiness"),
                                 termios.error(5, "Input/output error"),
                                 OSError(5, "Input/output error")])
@pytest.mark.parametrize("call", [
    lambda p: p.read(1), lambda p: p.write(b"x"), lambda p: p.flush(),
    lambda p: p.reset_input_buffer(), lambda p: setattr(p, "baudrate", 300),
])
def test_failures_become_device_not_found(exc: BaseException,
                                          call: Callable[[SerialPort], object]) -> None:
    port = SerialPort(_Broken(exc))
    with pytest.raises(DeviceNotFoundError):
        call(port)
    port.close()  # a vanished device may fail to close: never raises
    port.baudrate = 9600  # no change: the port is not touched


class _Script:
    """A ByteStream that returns scripted chunks (b"" = read timeout)."""

    baudrate = 115200

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def read(self, size: int = 1) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def write(self, data: bytes) -> int | None:
        return len(data)

    def reset_input_buffer(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_silence_watchdog_counts_from_the_last_data() -> None:
    clock = ManualClock()
    w = SilenceWatchdog(_Script([b"", b"abc", b"", b""]), clock, timeout=2.0)
    clock.advance(1.5)
    assert w.read() == b""
    clock.advance(1.0)
    assert w.read() == b"abc"  # 2.5 s after opening, but data resets the watch
    clock.advance(1.5)
    assert w.read() == b""
    clock.advance(1.0)
    with pytest.raises(DeviceTimeoutError, match=r"no data for 2\.5 s"):
        w.read()
