"""A buzzer or an LED on a GPIO output that plays an on/off pattern (local escalation).

``Pattern`` is a sequence of seconds, alternately on and off, repeated: ``(0.2, 0.2)`` beeps
fast, ``(1.0, 4.0)`` gives one long beep every five seconds. ``Indicator`` is driven by
``tick(now)`` on the caller's clock (no thread of its own, no sleeping): ``show(pattern,
now)`` starts a pattern from its first "on", ``show(None, now)`` turns the output off.

The pin is a gpiozero ``DigitalOutputDevice`` on ``ctx.hw.pin_factory()``: lgpio on a Pi, a
MockFactory pin (``pin.state``) on emulated hardware.
"""

from __future__ import annotations

import contextlib
from typing import Any

from edge_agent.config.escalate import Pattern, check_pattern

__all__ = ["Indicator", "Pattern", "check_pattern"]
from edge_agent.core.errors import HardwareError
from edge_agent.hal.interfaces import Hardware


class Indicator:
    """One GPIO output. ``active_high``: the buzzer sounds when the pin is high."""

    def __init__(self, hw: Hardware, pin: int, *, active_high: bool = True) -> None:
        self.hw = hw
        self.pin = pin
        self.active_high = active_high
        self.pattern: Pattern | None = None
        self._start = 0.0
        self._factory: Any = None
        self._device: Any = None

    def open(self) -> None:
        from gpiozero import DigitalOutputDevice
        from gpiozero.exc import GPIOZeroError

        self._factory = self.hw.pin_factory()
        try:
            self._device = DigitalOutputDevice(self.pin, active_high=self.active_high,
                                               initial_value=False,
                                               pin_factory=self._factory)
        except GPIOZeroError as exc:
            self.close()
            raise HardwareError(0, f"GPIO{self.pin}: cannot drive the output: {exc}") from exc

    @property
    def active(self) -> bool:
        return bool(self._device is not None and self._device.value)

    def show(self, pattern: Pattern | None, now: float) -> None:
        self.pattern = pattern
        self._start = now
        self.tick(now)

    def tick(self, now: float) -> None:
        self._set(self.level(now))

    def level(self, now: float) -> bool:
        """Whether the output is on at ``now`` under the current pattern."""
        p = self.pattern
        if p is None:
            return False
        pos = (now - self._start) % sum(p)
        for i, d in enumerate(p):
            if pos < d:
                return i % 2 == 0
            pos -= d
        return False

    def _set(self, on: bool) -> None:
        d = self._device
        if d is None or bool(d.value) == on:
            return
        if on:
            d.on()
        else:
            d.off()

    def close(self) -> None:
        if self._device is not None:
            with contextlib.suppress(Exception):
                self._device.off()
                self._device.close()
            self._device = None
        if self._factory is not None:
            with contextlib.suppress(Exception):
                self._factory.close()
            self._factory = None
