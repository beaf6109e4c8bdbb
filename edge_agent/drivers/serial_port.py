"""Serial ports for the UART drivers (meters, radars): open, error mapping, silence watchdog.

Every port is opened through pyserial's ``serial_for_url`` (a real tty, a pty wired to an
emulator, ``loop://``, ``socket://``, ``spy://``). Whatever pyserial raises when an adapter
vanishes (SerialException, ``termios.error``, OSError, depending on the call) comes out as
DeviceNotFoundError, so a driver's retry-with-backoff sees one error type.
"""

from __future__ import annotations

import contextlib
import termios
from collections.abc import Iterator
from typing import Any, Protocol

import serial

from edge_agent.core.clock import Clock
from edge_agent.core.errors import DeviceNotFoundError, DeviceTimeoutError
from edge_agent.hal.interfaces import ByteStream

PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
_FAILURES = (serial.SerialException, termios.error, OSError)


def check_framing(framing: str) -> str:
    """``framing`` if it is a line setting like ``8N1`` or ``7E1``; ValueError otherwise."""
    if len(framing) != 3 or framing[0] not in "5678" or framing[1] not in PARITY \
            or framing[2] not in "12":
        raise ValueError(f"framing must look like 8N1 or 7E1 (data bits 5-8, parity N/E/O, "
                         f"stop bits 1-2), got {framing!r}")
    return framing


def open_serial(port: str, baudrate: int, *, framing: str = "8N1",
                timeout: float = 0.1) -> SerialPort:
    """Open ``port`` (a path or URL) with a read timeout; absent = DeviceNotFoundError."""
    check_framing(framing)
    try:
        stream = serial.serial_for_url(
            port, baudrate=baudrate, bytesize=int(framing[0]), parity=PARITY[framing[1]],
            stopbits=int(framing[2]), timeout=timeout)
    except (*_FAILURES, ValueError) as exc:  # ValueError: a rate the port refuses
        raise DeviceNotFoundError(f"cannot open {port}: {exc}") from exc
    return SerialPort(stream)


class SerialPort:
    """A pyserial port whose failures are all DeviceNotFoundError (a HardwareError).

    The baud rate is only reprogrammed when it changes (a pty rejects a no-op change with
    7E1).
    """

    def __init__(self, stream: Any) -> None:
        self._s = stream

    def _fail(self, what: str, exc: BaseException) -> DeviceNotFoundError:
        return DeviceNotFoundError(f"port {what} failed: {exc}")

    @property
    def baudrate(self) -> int:
        return int(self._s.baudrate)

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        if self._s.baudrate == value:
            return
        try:
            self._s.baudrate = value
        except (*_FAILURES, ValueError) as exc:
            raise self._fail(f"switch to {value} baud", exc) from exc

    def read(self, size: int = 1) -> bytes:
        try:
            return bytes(self._s.read(size))
        except _FAILURES as exc:
            raise self._fail("read", exc) from exc

    def write(self, data: bytes) -> int | None:
        try:
            n = self._s.write(data)
        except _FAILURES as exc:
            raise self._fail("write", exc) from exc
        return None if n is None else int(n)

    def flush(self) -> None:
        """Wait until written bytes have left (before a baud rate switch)."""
        try:
            self._s.flush()
        except _FAILURES as exc:
            raise self._fail("flush", exc) from exc

    def reset_input_buffer(self) -> None:
        try:
            self._s.reset_input_buffer()
        except _FAILURES as exc:
            raise self._fail("reset", exc) from exc

    def close(self) -> None:
        # a vanished device may fail to close; nothing to do
        with contextlib.suppress(*_FAILURES):
            self._s.close()


class SilenceWatchdog:
    """A ByteStream whose read raises DeviceTimeoutError after ``timeout`` s without data.

    A pushing device (P1 port, HAN port, radar) that stops talking is treated like an
    unplugged one: the driver closes and reopens the port with backoff.
    """

    def __init__(self, stream: ByteStream, clock: Clock, timeout: float) -> None:
        self._stream = stream
        self._clock = clock
        self._timeout = timeout
        self._last = clock.monotonic()

    @property
    def baudrate(self) -> int:
        return self._stream.baudrate

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        self._stream.baudrate = value

    def read(self, size: int = 1) -> bytes:
        data = self._stream.read(size)
        now = self._clock.monotonic()
        if data:
            self._last = now
        elif now - self._last > self._timeout:
            raise DeviceTimeoutError(f"no data for {now - self._last:.1f} s")
        return data

    def write(self, data: bytes) -> int | None:
        return self._stream.write(data)

    def reset_input_buffer(self) -> None:
        self._stream.reset_input_buffer()

    def close(self) -> None:
        self._stream.close()


class Emulator(Protocol):
    """A device emulator serving a pty: started before the driver opens the port."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@contextlib.contextmanager
def emulator_running(emulator: Emulator | None) -> Iterator[None]:
    """Run the driver with its emulator (hardware: emulated) serving the port meanwhile."""
    if emulator is None:
        yield
        return
    emulator.start()
    try:
        yield
    finally:
        emulator.stop()
