"""The gsm-modem driver against its emulator on a pty: one text, +CMS ERROR, no network."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from edge_agent.core.clock import SystemClock
from edge_agent.devices.modem.options import ModemEmulation, ModemOptions
from edge_agent.protocols.at_modem import SmsFailed, SmsSent
from tests.device_helpers import build, device_hw, emulated


@contextmanager
def running(emulation: ModemEmulation) -> Iterator[Any]:
    with emulated(SystemClock()) as ctx:
        sensor = build(ctx, "gsm-modem", ModemOptions(answer_timeout=5, emulate=emulation))
        stop = threading.Event()
        t = threading.Thread(target=sensor.run, args=(lambda batch: None, stop), daemon=True)
        t.start()
        try:
            yield sensor
        finally:
            stop.set()
            t.join(5)


def wait_results(sensor: Any, n: int) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + 10
    while len(out) < n and time.monotonic() < deadline:
        out += sensor.results()
        time.sleep(0.02)
    return out


def test_sends_a_text_byte_exact() -> None:
    with running(ModemEmulation()) as sensor:
        assert sensor.send("+821012345678", "ALARM s1 n1 inactivity", "a")
        res = wait_results(sensor, 1)
        emu = device_hw(sensor).emulator
        assert res == [("a", SmsSent(1))]
        assert emu.sent() == [("+821012345678", "ALARM s1 n1 inactivity")]
        assert emu.commands == [b"ATE0", b"AT+CREG?", b"AT+CMGF=1",
                                b'AT+CMGS="+821012345678"']
        assert sensor.sent == 1 and sensor.stats.readings == 0


def test_cms_error_then_success() -> None:
    with running(ModemEmulation(cms_error=38, cms_failures=1)) as sensor:
        sensor.send("0101234567", "x", 1)
        sensor.send("0101234567", "y", 2)
        res = wait_results(sensor, 2)
        assert res == [(1, SmsFailed("cms", "38", "text")), (2, SmsSent(1))]
        assert sensor.stats.errors["cms"] == 1
        assert device_hw(sensor).emulator.sent() == [("0101234567", "y")]


@pytest.mark.parametrize("network", ["none"])
def test_no_network(network: Any) -> None:
    with running(ModemEmulation(network=network)) as sensor:
        sensor.send("0101234567", "x", 1)
        assert wait_results(sensor, 1) == [(1, SmsFailed("no_network", None, "AT+CREG?"))]
        assert device_hw(sensor).emulator.sent() == []


def test_queue_is_bounded() -> None:
    with emulated() as ctx:
        sensor = build(ctx, "gsm-modem", ModemOptions(queue=2))
        assert sensor.send("0101234567", "a", 1) and sensor.send("0101234567", "b", 2)
        assert not sensor.send("0101234567", "c", 3)


def test_numbers_file_must_be_private_and_valid(tmp_path: Any) -> None:
    from edge_agent.core.errors import KeyFileError
    from edge_agent.devices.modem.numbers import load_numbers

    f = tmp_path / "numbers"
    f.write_text("# care centre\n+82 10-1111-2222\n0101234567  # neighbour\n+82 10-1111-2222\n")
    f.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_numbers(f)
    f.chmod(0o600)
    assert load_numbers(f) == ("+821011112222", "0101234567")
    f.write_text("call me\n")
    with pytest.raises(KeyFileError, match=":1:"):
        load_numbers(f)
    with pytest.raises(KeyFileError, match="not found"):
        load_numbers(tmp_path / "missing")


def test_stopped_after_the_text_went_out_is_not_a_failure_to_retry() -> None:
    """The agent stops while the modem is sending: the text may be out, so no result."""
    from edge_agent.devices.modem.emulator import ModemEmulator

    class Slow(ModemEmulator):
        def _finish(self, number: str, text: str) -> None:  # takes the text, never answers
            with self._lock:
                self.messages.append((number, text))

    with emulated(SystemClock()) as ctx:
        sensor = build(ctx, "gsm-modem", ModemOptions(answer_timeout=30))
        slow = Slow(ModemEmulation())
        device_hw(sensor).emulation = slow
        stop = threading.Event()
        t = threading.Thread(target=sensor.run, args=(lambda b: None, stop), daemon=True)
        t.start()
        try:
            sensor.send("0101234567", "x", 1)
            deadline = time.monotonic() + 10
            while not slow.sent() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert slow.sent() == [("0101234567", "x")]
        finally:
            stop.set()
            t.join(5)
            slow.stop()
        assert sensor.results() == [] and sensor.failed == 0
