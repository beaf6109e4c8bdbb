"""The description of a sensor type (imported by driver modules and the registry)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_agent.core.model import Channel, Priority
from edge_agent.drivers.base import Sensor, SensorContext, SensorSpec


@dataclass(frozen=True)
class SensorType:
    name: str
    summary: str
    options: type  # a frozen dataclass of the type-specific keys, validated strictly
    build: Callable[[SensorSpec, Any, SensorContext], Sensor]
    default_channel: Channel
    default_priority: Priority = Priority.NORMAL
    default_interval: float = 10.0
