"""What the serial (UART) drivers share beyond the port itself: the silence watchdog.

Ports come from ``ctx.hw.serial(port, baudrate, framing=..., timeout=...)`` (hal.serial:
pyserial ``serial_for_url`` on both backends; the emulated backend hands it the pty of the
device's emulator).
"""

from __future__ import annotations

from edge_agent.core.clock import Clock
from edge_agent.core.errors import DeviceTimeoutError
from edge_agent.hal.interfaces import ByteStream


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
