"""The serial contract (``Hardware.serial``), run against every backend available.

Emulated: a loopback device on a pty behind the emulated backend. Real (a rig): set
``EDGE_HIL_SERIAL_PORT`` to a port whose TX is wired to its RX; skipped otherwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from edge_agent.core.clock import SystemClock
from edge_agent.core.errors import DeviceNotFoundError
from edge_agent.hal.backend import RealHardware
from edge_agent.hal.emulated import EmulatedHardware
from edge_agent.hal.emulated.pty import PtyDevice
from edge_agent.hal.interfaces import Hardware

REAL_PORT = os.environ.get("EDGE_HIL_SERIAL_PORT")


class Loopback(PtyDevice):
    """TX wired to RX: every byte the host writes comes back."""

    def on_data(self, data: bytes) -> None:
        self.write(data)


@dataclass
class Rig:
    hw: Hardware  # the backend as one device sees it
    port: str  # what the entry's ``port:`` says
    absent: Hardware  # a backend view with no such device
    absent_port: str


@pytest.fixture(params=["emulated", "real"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    if request.param == "real":
        if not REAL_PORT:
            pytest.skip("real serial backend: set EDGE_HIL_SERIAL_PORT to a loopback port")
        yield Rig(RealHardware(), REAL_PORT, RealHardware(), "/dev/edge-agent-no-such-tty")
        return
    backend = EmulatedHardware(SystemClock())
    try:
        yield Rig(backend.device(lambda: Loopback("loop")), "/dev/ttyUSB0",
                  backend.device(None), "/dev/ttyUSB0")
    finally:
        backend.close()


def read_exactly(stream: object, n: int, timeout: float = 3.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += stream.read(n - len(out))  # type: ignore[attr-defined]
    return out


def test_bytes_written_come_back_exactly(rig: Rig) -> None:
    port = rig.hw.serial(rig.port, 9600, timeout=0.05)
    try:
        payload = bytes(range(256))
        port.write(payload)
        assert read_exactly(port, len(payload)) == payload
    finally:
        port.close()


def test_read_with_nothing_pending_returns_empty_after_the_timeout(rig: Rig) -> None:
    port = rig.hw.serial(rig.port, 9600, timeout=0.05)
    try:
        port.reset_input_buffer()
        assert port.read(16) == b""
    finally:
        port.close()


@pytest.mark.parametrize("framing", ["8N1", "7E1"])
def test_line_settings_and_baud_switch(rig: Rig, framing: str) -> None:
    port = rig.hw.serial(rig.port, 300, framing=framing, timeout=0.05)
    try:
        assert port.baudrate == 300
        port.baudrate = 9600  # a baud switch mid-dialogue (IEC 62056-21)
        assert port.baudrate == 9600
        port.write(b"\x06050\r\n")
        assert read_exactly(port, 6) == b"\x06050\r\n"
    finally:
        port.close()


def test_absent_device_is_device_not_found(rig: Rig) -> None:
    with pytest.raises(DeviceNotFoundError):
        rig.absent.serial(rig.absent_port, 9600)


def test_bad_framing_is_refused_before_opening(rig: Rig) -> None:
    with pytest.raises(ValueError, match="framing"):
        rig.hw.serial(rig.port, 9600, framing="9X1")


def test_a_closed_port_fails_as_device_not_found(rig: Rig) -> None:
    port = rig.hw.serial(rig.port, 9600, timeout=0.05)
    port.close()
    port.close()  # closing twice is harmless
    with pytest.raises(DeviceNotFoundError):
        port.read(1)
