"""``max30102``: MAX30102 pulse oximeter on I2C, heart rate and SpO2 (see README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.max30102.driver import build
from edge_agent.devices.max30102.emulator import emulate
from edge_agent.devices.max30102.options import MAX30102Options
from edge_agent.devices.sensor_type import SensorType
from edge_agent.protocols import max30102

MAX30102 = SensorType(
    name="max30102",
    summary="MAX30102 pulse oximeter (I2C): heart rate and SpO2 computed on the node",
    options=MAX30102Options,
    driver=build,
    default_channel=Channel.IT,
    default_priority=Priority.NORMAL,
    default_interval=0.25,
    emulator=emulate,
    bus="i2c",
    health_data=True,
    fixed_i2c_address=max30102.ADDRESS,
)

TYPES = (MAX30102,)
