"""``load``: synthetic readings at a fixed rate (rigs and benchmarks; see README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.load.driver import build
from edge_agent.devices.load.options import LoadOptions
from edge_agent.devices.sensor_type import SensorType

LOAD = SensorType(
    name="load",
    summary="synthetic readings at a fixed rate (rigs and benchmarks)",
    options=LoadOptions,
    driver=build,
    default_channel=Channel.OT,
    default_priority=Priority.NORMAL,
    default_interval=1.0,
)

TYPES = (LOAD,)
