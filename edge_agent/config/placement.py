"""Cross-sensor checks: where each sensor sits (channel, pin, bus address, port).

Two sensors on one GPIO pin, one I2C address on one bus or one serial port would fight
over the hardware at run time (the second open fails, or worse, both read garbage); a
health sensor on the OT channel would send health data past the seal. Both are refused
here, at ``check-config`` time, with the line of each entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from edge_agent.core.model import Channel

ALLOW_HEALTH_ON_OT = "allow_health_on_ot"


class PlacementInfo(Protocol):
    """What this module needs to know about a sensor type."""

    @property
    def bus(self) -> str: ...
    @property
    def health_data(self) -> bool: ...
    @property
    def i2c_address(self) -> int | None: ...


class Placed(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def channel(self) -> Channel: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def options(self) -> Any: ...
    @property
    def line(self) -> int: ...


@dataclass(frozen=True)
class Clash:
    """One problem, at sensor ``index`` of the list, under ``key`` of that entry."""

    index: int
    key: str
    message: str


def resource(info: PlacementInfo, options: Any) -> tuple[str, str] | None:
    """(kind, what) a sensor occupies exclusively, e.g. ("gpio", "pin 17"), or None."""
    if info.bus == "gpio":
        pin = getattr(options, "pin", None)
        return ("pin", f"GPIO pin {pin}") if isinstance(pin, int) else None
    if info.bus == "i2c":
        bus = getattr(options, "bus", 1)
        address = getattr(options, "address", None)
        if not isinstance(address, int):
            address = info.i2c_address
        if address is None:
            return None
        return ("address", f"I2C address 0x{address:02x} on bus {bus}")
    if info.bus == "serial":
        port = getattr(options, "port", None)
        return ("port", f"serial port {port}") if isinstance(port, str) and port else None
    return None


def clashes(sensors: Sequence[Placed], types: Mapping[str, PlacementInfo],
            allow_health_on_ot: Mapping[str, bool]) -> list[Clash]:
    """Every placement problem: health data on OT without the explicit key, and two
    enabled sensors on one pin, I2C address or serial port."""
    out: list[Clash] = []
    taken: dict[str, tuple[str, int]] = {}
    for i, s in enumerate(sensors):
        info = types.get(s.type)
        if info is None:
            continue
        if info.health_data and s.channel is Channel.OT \
                and not allow_health_on_ot.get(s.id, False):
            out.append(Clash(i, "channel", (
                f"{s.type} readings are health data: they go on the it channel, sealed end "
                "to end; on ot they would reach the operations broker in clear. Use "
                f"channel: it, or write {ALLOW_HEALTH_ON_OT}: true in this entry if this "
                "site's OT broker is cleared for health data")))
        if not s.enabled:
            continue
        res = resource(info, s.options)
        if res is None:
            continue
        kind, what = res
        if what in taken:
            first_id, first_line = taken[what]
            out.append(Clash(i, kind, (
                f"{what} is already used by sensor {first_id!r} (line {first_line}): two "
                "sensors cannot share it; wire this one elsewhere or disable one "
                "(enabled: false)")))
        else:
            taken[what] = (s.id, s.line)
    return out
