"""``sht31``: Sensirion SHT31 room temperature and humidity on I2C (see README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.sensor_type import SensorType
from edge_agent.devices.sht31.driver import build
from edge_agent.devices.sht31.emulator import emulate
from edge_agent.devices.sht31.options import SHT31Options

SHT31 = SensorType(
    name="sht31",
    summary="Sensirion SHT31 room temperature/humidity (I2C), optional heat alarm",
    options=SHT31Options,
    driver=build,
    default_channel=Channel.IT,
    default_priority=Priority.NORMAL,
    default_interval=60.0,
    emulator=emulate,
    bus="i2c",
)

TYPES = (SHT31,)
