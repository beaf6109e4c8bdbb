"""The pty device's scripted outage: unplugged once, for the given time, then back."""

from __future__ import annotations

import os
import time

import pytest

from edge_agent.hal.emulated.pty import PtyDevice


def wait_until(pred: object, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.005)
    raise AssertionError("condition not met in time")


def test_scripted_outage_happens_once_and_the_path_comes_back() -> None:
    dev = PtyDevice("meter")
    dev.script_outage(0.2, 0.3)
    with dev:
        assert dev.plugged and os.path.exists(dev.path)
        wait_until(lambda: not dev.plugged)
        assert not os.path.exists(dev.path)  # opening the port fails like a pulled adapter
        assert not dev.write(b"x") and dev.dropped == 1
        outage = wait_until(lambda: dev.plugged)
        assert outage >= 0.1 and os.path.exists(dev.path)  # scripted 0.3 s, seen from here
        time.sleep(0.8)  # longer than after + duration: it does not repeat
        assert dev.plugged


def test_outage_times_are_checked() -> None:
    with pytest.raises(ValueError):
        PtyDevice("x").script_outage(-1.0, 1.0)
