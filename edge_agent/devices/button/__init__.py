"""``button``: the emergency button on a GPIO pin (see README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.button.driver import build
from edge_agent.devices.button.emulator import emulate
from edge_agent.devices.button.options import ButtonOptions
from edge_agent.devices.sensor_type import SensorType

BUTTON = SensorType(
    name="button",
    summary="Emergency button on a GPIO pin: pressed/held alarms (debounced)",
    options=ButtonOptions,
    driver=build,
    default_channel=Channel.IT,
    default_priority=Priority.ALARM,
    emulator=emulate,
    bus="gpio",
)

TYPES = (BUTTON,)
