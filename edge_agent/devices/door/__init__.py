"""``door``: a door contact (reed switch) on a GPIO pin (see README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.door.driver import build
from edge_agent.devices.door.emulator import emulate
from edge_agent.devices.door.options import DoorOptions
from edge_agent.devices.sensor_type import SensorType

DOOR = SensorType(
    name="door",
    summary="Door contact (reed switch) on a GPIO pin: open/closed on change",
    options=DoorOptions,
    driver=build,
    default_channel=Channel.IT,
    default_priority=Priority.NORMAL,
    emulator=emulate,
    bus="gpio",
)

TYPES = (DOOR,)
