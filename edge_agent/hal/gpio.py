"""The real GPIO pin factory: gpiozero on lgpio (Raspberry Pi OS; works on the Pi 5 too).

Drivers create gpiozero devices with an explicit ``pin_factory`` from ``ctx.hw.pin_factory()``;
gpiozero's global default factory is never used. The emulated factory is in
hal.emulated.gpio.
"""

from __future__ import annotations

import errno
from typing import Any

from edge_agent.core.errors import HardwareError


def real_pin_factory() -> Any:
    """A new lgpio pin factory; HardwareError when lgpio or the GPIO chip is missing."""
    try:
        from gpiozero.pins.lgpio import LGPIOFactory
    except ImportError as exc:
        raise HardwareError(errno.ENOENT, f"lgpio is not installed: {exc}") from exc
    try:
        return LGPIOFactory()
    except OSError as exc:
        raise HardwareError(exc.errno or errno.EIO, f"cannot open the GPIO chip: {exc}") from exc
