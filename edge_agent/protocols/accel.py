"""Accelerometer register codecs: InvenSense MPU6050 and Analog Devices ADXL345.

Pure functions, no I/O: raw sample bytes <-> accelerations in g (the emulators use encode).
"""

from __future__ import annotations

import struct

from edge_agent.core.errors import FrameError

# -- MPU6050 ------------------------------------------------------------------------------------
MPU_ADDRESS = 0x68  # AD0 low; 0x69 when high
MPU_WHO_AM_I = 0x75
MPU_WHO_AM_I_VALUE = 0x68
MPU_PWR_MGMT_1 = 0x6B
MPU_PWR_RESET = 0x80
MPU_PWR_SLEEP = 0x40
MPU_SMPLRT_DIV = 0x19
MPU_CONFIG = 0x1A
MPU_ACCEL_CONFIG = 0x1C
MPU_ACCEL_XOUT_H = 0x3B  # 6 bytes: X, Y, Z, big-endian int16
MPU_AFS_SEL = {2: 0, 4: 1, 8: 2, 16: 3}  # range (g) -> ACCEL_CONFIG bits 4:3


def mpu_lsb_per_g(range_g: int) -> float:
    return 16384.0 / (range_g // 2)


def mpu_decode(data: bytes, range_g: int) -> tuple[float, float, float]:
    if len(data) != 6:
        raise FrameError(f"MPU6050 sample is 6 bytes, got {len(data)}", 0)
    x, y, z = struct.unpack(">hhh", data)
    k = mpu_lsb_per_g(range_g)
    return x / k, y / k, z / k


def mpu_encode(ax: float, ay: float, az: float, range_g: int) -> bytes:
    k = mpu_lsb_per_g(range_g)
    return struct.pack(">hhh", *(_clamp(round(v * k), -32768, 32767) for v in (ax, ay, az)))


# -- ADXL345 ------------------------------------------------------------------------------------
ADXL_ADDRESS = 0x53  # ALT ADDRESS low; 0x1D when high
ADXL_DEVID = 0x00
ADXL_DEVID_VALUE = 0xE5
ADXL_BW_RATE = 0x2C
ADXL_POWER_CTL = 0x2D
ADXL_MEASURE = 0x08
ADXL_DATA_FORMAT = 0x31
ADXL_FULL_RES = 0x08
ADXL_DATAX0 = 0x32  # 6 bytes: X, Y, Z, little-endian int16
ADXL_RANGE = {2: 0, 4: 1, 8: 2, 16: 3}  # range (g) -> DATA_FORMAT bits 1:0
ADXL_G_PER_LSB = 0.0039  # full resolution: 3.9 mg/LSB at every range


def adxl_limit(range_g: int) -> int:
    """Largest count in full resolution (10 bits at 2 g up to 13 bits at 16 g)."""
    return range_g * 256 - 1


def adxl_decode(data: bytes) -> tuple[float, float, float]:
    if len(data) != 6:
        raise FrameError(f"ADXL345 sample is 6 bytes, got {len(data)}", 0)
    x, y, z = struct.unpack("<hhh", data)
    return x * ADXL_G_PER_LSB, y * ADXL_G_PER_LSB, z * ADXL_G_PER_LSB


def adxl_encode(ax: float, ay: float, az: float, range_g: int) -> bytes:
    lim = adxl_limit(range_g)
    return struct.pack("<hhh", *(_clamp(round(v / ADXL_G_PER_LSB), -lim - 1, lim)
                                 for v in (ax, ay, az)))


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))
