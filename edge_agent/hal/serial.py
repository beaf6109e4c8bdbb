"""Serial ports: open, line settings, error mapping (both hardware backends use this).

Every port is opened through pyserial's ``serial_for_url`` (a real tty, the pty of an
emulated device, ``loop://``, ``socket://``, ``spy://``). Whatever pyserial raises when an adapter
vanishes (SerialException, ``termios.error``, OSError, depending on the call) comes out as
DeviceNotFoundError, so a driver's retry-with-backoff sees one error type.
"""

from __future__ import annotations

import contextlib
import termios
from typing import Any

import serial

from edge_agent.core.errors import DeviceNotFoundError

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
