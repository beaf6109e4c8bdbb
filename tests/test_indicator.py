"""The buzzer/LED output plays its pattern on the caller's clock (emulated pins)."""

from __future__ import annotations

import pytest

from edge_agent.core.clock import ManualClock
from edge_agent.devices.indicator import Indicator, check_pattern
from edge_agent.hal.emulated import EmulatedHardware


def test_plays_a_pattern_and_stops() -> None:
    hw = EmulatedHardware(ManualClock())
    ind = Indicator(hw, 18)
    ind.open()
    try:
        pin = ind._factory.pin(18)
        assert pin.state is False
        ind.show(check_pattern([0.2, 0.8]), 100.0)
        states = []
        for t in (100.0, 100.1, 100.3, 100.9, 101.05, 101.5):
            ind.tick(t)
            states.append(pin.state)
        assert states == [True, True, False, False, True, False]
        ind.show(None, 102.0)
        assert pin.state is False and not ind.active
    finally:
        ind.close()
        hw.close()


def test_active_low_buzzer() -> None:
    hw = EmulatedHardware(ManualClock())
    ind = Indicator(hw, 18, active_high=False)
    ind.open()
    try:
        pin = ind._factory.pin(18)
        assert pin.state is True  # off = high
        ind.show((1.0, 1.0), 0.0)
        assert pin.state is False and ind.active
    finally:
        ind.close()


@pytest.mark.parametrize("bad", [[], [0.2], [0.2, 0.2, 0.2], [0.0, 1.0], [1.0, 1e9],
                                 [float("nan"), 1.0]])
def test_bad_patterns(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        check_pattern(bad)
