"""The real GPIO pin factory: gpiozero on lgpio (Raspberry Pi OS; works on the Pi 5 too).

Drivers create gpiozero devices with an explicit ``pin_factory`` from ``ctx.hw.pin_factory()``;
gpiozero's global default factory is never used. The emulated factory is in
hal.emulated.gpio.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from edge_agent.core.errors import HardwareError

# Where the board's revision code is read. gpiozero reads /proc/device-tree and
# /proc/cpuinfo, which the unit's ProcSubset=pid hides; sysfs shows the same device tree.
REVISION_FILES = ("/sys/firmware/devicetree/base/system/linux,revision",
                  "/proc/device-tree/system/linux,revision")
CPUINFO = "/proc/cpuinfo"


def board_revision(files: tuple[str, ...] | None = None,
                   cpuinfo: str | None = None) -> int | None:
    """The Raspberry Pi revision code (a 32-bit big-endian cell in the device tree, or the
    ``Revision`` line of /proc/cpuinfo), or None when none can be read."""
    files = REVISION_FILES if files is None else files
    cpuinfo = CPUINFO if cpuinfo is None else cpuinfo
    for path in files:
        try:
            with open(path, "rb") as f:
                cell = f.read(4)
        except OSError:
            continue
        if len(cell) == 4:
            return int.from_bytes(cell, "big")
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("Revision"):
                    return int(line.split(":", 1)[1].strip()[-6:], 16)
    except (OSError, ValueError):
        pass
    return None


def real_pin_factory() -> Any:
    """A new lgpio pin factory (Raspberry Pi OS; works on the Pi 5 too), told the board's
    revision read where the service's sandbox lets it look."""
    try:
        from gpiozero import GPIOZeroError
        from gpiozero.pins.lgpio import LGPIOFactory
    except ImportError as exc:
        raise HardwareError(errno.ENOENT, f"lgpio is not installed: {exc}") from exc
    except OSError as exc:  # lgpio makes its notification pipe in the working directory
        raise HardwareError(exc.errno or errno.EIO,
                            f"lgpio cannot start (working directory {os.getcwd()}): {exc}"
                            ) from exc
    revision = board_revision()
    if revision is None:
        raise HardwareError(errno.ENODEV, "cannot tell the board's revision (no "
                            f"{REVISION_FILES[0]} and no Revision in /proc/cpuinfo)")
    code: int = revision

    class _Factory(LGPIOFactory):  # type: ignore[misc]  # gpiozero has no type hints
        def _get_revision(self) -> int:
            return code

    try:
        return _Factory()
    except OSError as exc:
        raise HardwareError(exc.errno or errno.EIO, f"cannot open the GPIO chip: {exc}") from exc
    except GPIOZeroError as exc:
        raise HardwareError(errno.ENODEV, f"GPIO: {exc}") from exc
    except Exception as exc:  # lgpio.error ("can not open gpiochip"): not an OSError
        if type(exc).__module__ != "lgpio":
            raise
        raise HardwareError(errno.EACCES, f"cannot open the GPIO chip: {exc}") from exc
