"""``mpu6050`` and ``adxl345``: fall detection with an I2C accelerometer (see README.md).

One family, two chips: the same driver (AccelSensor) with a per-chip probe/setup/read, the
same options (each type with its chip's default address), one emulator per register map.
"""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.accel.driver import build_adxl345, build_mpu6050
from edge_agent.devices.accel.emulator import emulate_adxl345, emulate_mpu6050
from edge_agent.devices.accel.options import ADXL345Options, MPU6050Options
from edge_agent.devices.sensor_type import SensorType

MPU6050 = SensorType(
    name="mpu6050",
    summary="MPU6050 accelerometer (I2C): fall alarm and activity level, no raw data",
    options=MPU6050Options,
    driver=build_mpu6050,
    default_channel=Channel.IT,
    default_priority=Priority.NORMAL,
    default_interval=0.02,
    emulator=emulate_mpu6050,
    bus="i2c",
    health_data=True,
)

ADXL345 = SensorType(
    name="adxl345",
    summary="ADXL345 accelerometer (I2C): fall alarm and activity level, no raw data",
    options=ADXL345Options,
    driver=build_adxl345,
    default_channel=Channel.IT,
    default_priority=Priority.NORMAL,
    default_interval=0.02,
    emulator=emulate_adxl345,
    bus="i2c",
    health_data=True,
)

TYPES = (MPU6050, ADXL345)
