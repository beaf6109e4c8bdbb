"""The sensor types a site config may name, and the protocols ``decode`` knows.

Each device package (``edge_agent/devices/<family>/``) exports ``TYPES: tuple[SensorType,
...]``; this module gathers them into read-only mappings. Adding a device = adding its
package to ``FAMILIES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType

from edge_agent.devices.sensor_type import DecodeProtocol, SensorType

__all__ = ["DECODE_PROTOCOLS", "FAMILIES", "SENSOR_TYPES", "DecodeProtocol", "SensorType"]


# Device packages under edge_agent.devices. Order is the order `check-config` lists them.
FAMILIES: tuple[str, ...] = (
    "load",
    "button",
    "ld2410",
    "mr60",
    "sht31",
    "bme280",
    "mlx90614",
    "max30102",
    "accel",
    "pir",
    "door",
    "dsmr",
    "iec62056_21",
    "modbus_rtu",
    "dlms_hdlc",
    "modem",
)


def family_types(family: str) -> tuple[SensorType, ...]:
    """The sensor types declared by ``edge_agent.devices.<family>``."""
    module = importlib.import_module(f"edge_agent.devices.{family}")
    types: tuple[SensorType, ...] = module.TYPES
    return types


def _collect() -> Mapping[str, SensorType]:
    found: dict[str, SensorType] = {}
    for family in FAMILIES:
        for t in family_types(family):
            if t.name in found:
                raise RuntimeError(f"sensor type {t.name!r} registered twice")
            found[t.name] = t
    return MappingProxyType(found)


def _protocols(types: Mapping[str, SensorType]) -> Mapping[str, DecodeProtocol]:
    found: dict[str, DecodeProtocol] = {}
    for t in types.values():
        if t.decode is None:
            continue
        known = found.setdefault(t.decode.name, t.decode)
        if known is not t.decode:
            raise RuntimeError(f"decode protocol {t.decode.name!r} declared twice")
    return MappingProxyType(found)


SENSOR_TYPES: Mapping[str, SensorType] = _collect()
DECODE_PROTOCOLS: Mapping[str, DecodeProtocol] = _protocols(SENSOR_TYPES)
