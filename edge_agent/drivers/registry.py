"""The sensor types a site config may name, and how each is built.

Each driver module exports ``TYPES: tuple[SensorType, ...]``; this module gathers them into
one read-only mapping. Adding a device = adding its module to ``_MODULES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType

from edge_agent.drivers.registry_types import SensorType

__all__ = ["SENSOR_TYPES", "SensorType"]


# Driver modules, relative to this package. Order is the order `check-config` lists them.
_MODULES: tuple[str, ...] = (
    "load",
    "button",
    "ld2410",
    "mr60",
    "sht31",
    "bme280",
    "mlx90614",
    "max30102",
    "accel",
    "gpio_inputs",
    "dsmr",
    "iec62056_21",
    "modbus_rtu",
    "dlms_hdlc",
)


def _collect() -> Mapping[str, SensorType]:
    found: dict[str, SensorType] = {}
    for mod in _MODULES:
        module = importlib.import_module(f"{__package__}.{mod}")
        for t in module.TYPES:
            if t.name in found:
                raise RuntimeError(f"sensor type {t.name!r} registered twice")
            found[t.name] = t
    return MappingProxyType(found)


SENSOR_TYPES: Mapping[str, SensorType] = _collect()
