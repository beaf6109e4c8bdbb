"""``mlx90614``: Melexis MLX90614 IR body temperature on I2C/SMBus (see README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.mlx90614.driver import build
from edge_agent.devices.mlx90614.emulator import emulate
from edge_agent.devices.mlx90614.options import MLX90614Options
from edge_agent.devices.sensor_type import SensorType

MLX90614 = SensorType(
    name="mlx90614",
    summary="Melexis MLX90614 IR body temperature (I2C/SMBus with PEC), fever alarm",
    options=MLX90614Options,
    driver=build,
    default_channel=Channel.IT,
    default_priority=Priority.NORMAL,
    default_interval=30.0,
    emulator=emulate,
    bus="i2c",
    health_data=True,
)

TYPES = (MLX90614,)
