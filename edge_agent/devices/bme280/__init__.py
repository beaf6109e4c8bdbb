"""``bme280``: Bosch BME280 temperature, humidity and pressure on I2C (see README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.bme280.driver import build
from edge_agent.devices.bme280.emulator import emulate
from edge_agent.devices.bme280.options import BME280Options
from edge_agent.devices.sensor_type import SensorType

BME280 = SensorType(
    name="bme280",
    summary="Bosch BME280 temperature/humidity/pressure (I2C, forced mode)",
    options=BME280Options,
    driver=build,
    default_channel=Channel.IT,
    default_priority=Priority.NORMAL,
    default_interval=60.0,
    emulator=emulate,
    bus="i2c",
)

TYPES = (BME280,)
