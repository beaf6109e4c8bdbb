"""``pir``: a PIR motion sensor on a GPIO pin (see README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.pir.driver import build
from edge_agent.devices.pir.emulator import emulate
from edge_agent.devices.pir.options import PirOptions
from edge_agent.devices.sensor_type import SensorType

PIR = SensorType(
    name="pir",
    summary="PIR motion sensor on a GPIO pin: motion on change, optional counts",
    options=PirOptions,
    driver=build,
    default_channel=Channel.IT,
    default_priority=Priority.NORMAL,
    emulator=emulate,
    bus="gpio",
)

TYPES = (PIR,)
