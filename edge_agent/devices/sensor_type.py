"""A sensor type: everything the agent, its tools and its docs know about one kind of device.

One ``SensorType`` per ``type:`` a site config may name, declared in the device's package
(``edge_agent/devices/<family>/__init__.py``) and gathered by devices.registry. The config
validator, the runtime, ``decode``, ``doctor`` and docs/devices.md read it from here, so no
other list of devices exists.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edge_agent.core.clock import Clock
from edge_agent.core.model import Channel, Priority
from edge_agent.devices.base import Sensor, SensorContext, SensorSpec

Bus = Literal["none", "gpio", "i2c", "serial"]

Keys = tuple[bytes, bytes | None]
"""Decryption keys of a keyed protocol: (encryption key, authentication key or None)."""


def _frame_json(frame: Any) -> dict[str, Any]:
    return dict(frame.to_json())


@dataclass(frozen=True)
class DecodeProtocol:
    """How ``edge-agent decode --protocol NAME`` runs a capture through a device's parser."""

    name: str
    parser: Callable[[Keys | None], Any]
    """A new sans-I/O parser (``feed(bytes)`` -> frames or ProtocolErrors, optional
    ``flush()``), given the keys of ``--key`` for a keyed protocol."""
    load_keys: Callable[[Path], Keys] | None = None
    """For a protocol that takes ``--key FILE``: the key file loader (the driver's own)."""
    frame: Callable[[Any], dict[str, Any]] = _frame_json
    """How a decoded frame is printed (a JSON object)."""

    @property
    def keyed(self) -> bool:
        return self.load_keys is not None


EmulatorFactory = Callable[[Any, Clock], object]
"""(the sensor's options, the agent's clock) -> the device's emulator: a hal.emulated
PtyDevice, I2CTarget or InputEmulation."""


@dataclass(frozen=True)
class SensorType:
    name: str
    summary: str
    options: type  # a frozen dataclass of the type-specific keys, validated strictly
    driver: Callable[[SensorSpec, Any, SensorContext], Sensor]
    default_channel: Channel
    default_priority: Priority = Priority.NORMAL
    default_interval: float = 10.0
    emulator: EmulatorFactory | None = None  # None: nothing to emulate (synthetic)
    bus: Bus = "none"
    self_reporting: bool = False  # talks on its serial port unasked (doctor listens for it)
    health_data: bool = False  # its readings are health data (IT only)
    decode: DecodeProtocol | None = None
    fixed_i2c_address: int | None = None  # a chip with one address (no ``address`` option)

    def build(self, spec: SensorSpec, options: Any, ctx: SensorContext) -> Sensor:
        """The sensor, its hardware bound: ``ctx.hw`` is the backend as this device sees it
        (on emulated hardware, with the emulator this type's factory builds)."""
        emulation = (None if self.emulator is None
                     else functools.partial(self.emulator, options, ctx.clock))
        return self.driver(spec, options, dataclasses.replace(ctx, hw=ctx.hw.device(emulation)))

    @property
    def i2c_address(self) -> int | None:
        """The I2C address a sensor has when its entry leaves ``address`` unset."""
        if self.bus != "i2c":
            return None
        for f in dataclasses.fields(self.options):
            if f.name == "address" and isinstance(f.default, int):
                return f.default
        return self.fixed_i2c_address
