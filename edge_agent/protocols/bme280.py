"""Bosch BME280 register codec: calibration trim, raw data, compensation (double formulas).

Pure functions, no I/O. Compensation follows the datasheet's floating-point formulas
(BST-BME280-DS002, section 8.1); the emulator uses the inverse (``raw_for``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from edge_agent.core.errors import FrameError

CHIP_ID = 0x60
ADDRESS_DEFAULT = 0x76  # SDO low; 0x77 when high

REG_CALIB_T_P = 0x88  # 0x88..0xA1: 26 bytes (T1..P9, unused, H1)
CALIB_T_P_LEN = 26
REG_CALIB_H = 0xE1  # 0xE1..0xE7: 7 bytes (H2..H6)
CALIB_H_LEN = 7
REG_CHIP_ID = 0xD0
REG_RESET = 0xE0
RESET_WORD = 0xB6
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_CONFIG = 0xF5
REG_DATA = 0xF7  # 0xF7..0xFE: press[3], temp[3], hum[2]
DATA_LEN = 8

STATUS_MEASURING = 1 << 3
STATUS_IM_UPDATE = 1 << 0
MODE_SLEEP, MODE_FORCED, MODE_NORMAL = 0, 1, 3

SKIPPED_20BIT = 0x80000  # reading of a disabled (or never run) measurement
SKIPPED_16BIT = 0x8000

OVERSAMPLING = {0: 0, 1: 1, 2: 2, 4: 3, 8: 4, 16: 5}  # factor -> osrs field

T_RANGE = (-40.0, 85.0)
P_RANGE = (30000.0, 110000.0)  # Pa
H_RANGE = (0.0, 100.0)


@dataclass(frozen=True)
class Calibration:
    """Factory trim values."""

    t1: int
    t2: int
    t3: int
    p1: int
    p2: int
    p3: int
    p4: int
    p5: int
    p6: int
    p7: int
    p8: int
    p9: int
    h1: int
    h2: int
    h3: int
    h4: int
    h5: int
    h6: int

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


TYPICAL = Calibration(t1=27504, t2=26435, t3=-1000, p1=36477, p2=-10685, p3=3024, p4=2855,
                      p5=140, p6=-7, p7=15500, p8=-14600, p9=6000, h1=75, h2=362, h3=0,
                      h4=313, h5=50, h6=30)


def _s8(b: int) -> int:
    return b - 256 if b & 0x80 else b


def parse_calibration(tp: bytes, h: bytes) -> Calibration:
    """Parse 0x88..0xA1 and 0xE1..0xE7; FrameError on a wrong length or an erased trim."""
    if len(tp) != CALIB_T_P_LEN or len(h) != CALIB_H_LEN:
        raise FrameError(f"calibration blocks are 26+7 bytes, got {len(tp)}+{len(h)}", 0)
    t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9 = struct.unpack_from("<HhhHhhhhhhhh", tp)
    h1 = tp[25]
    (h2,) = struct.unpack_from("<h", h)
    h3 = h[2]
    h4 = (_s8(h[3]) << 4) | (h[4] & 0x0F)
    h5 = (_s8(h[5]) << 4) | (h[4] >> 4)
    h6 = _s8(h[6])
    if t1 == 0 or p1 == 0 or t1 == 0xFFFF or p1 == 0xFFFF:
        raise FrameError("calibration trim is blank (0x0000/0xFFFF): not a BME280?", 0)
    return Calibration(t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6)


def encode_calibration(c: Calibration) -> tuple[bytes, bytes]:
    """The two trim blocks as the chip stores them (inverse of parse_calibration)."""
    tp = struct.pack("<HhhHhhhhhhhh", c.t1, c.t2, c.t3, c.p1, c.p2, c.p3, c.p4, c.p5, c.p6,
                     c.p7, c.p8, c.p9) + bytes([0, c.h1 & 0xFF])
    h = struct.pack("<h", c.h2) + bytes([
        c.h3 & 0xFF, (c.h4 >> 4) & 0xFF, (c.h4 & 0x0F) | ((c.h5 & 0x0F) << 4),
        (c.h5 >> 4) & 0xFF, c.h6 & 0xFF])
    return tp, h


@dataclass(frozen=True)
class RawData:
    adc_p: int
    adc_t: int
    adc_h: int

    def to_json(self) -> dict[str, Any]:
        return {"adc_p": self.adc_p, "adc_t": self.adc_t, "adc_h": self.adc_h}


def decode_data(data: bytes) -> RawData:
    """Decode the 8-byte burst 0xF7..0xFE."""
    if len(data) != DATA_LEN:
        raise FrameError(f"data burst is 8 bytes, got {len(data)}", 0)
    adc_p = (data[0] << 12) | (data[1] << 4) | (data[2] >> 4)
    adc_t = (data[3] << 12) | (data[4] << 4) | (data[5] >> 4)
    adc_h = (data[6] << 8) | data[7]
    return RawData(adc_p, adc_t, adc_h)


def encode_data(raw: RawData) -> bytes:
    return bytes([
        (raw.adc_p >> 12) & 0xFF, (raw.adc_p >> 4) & 0xFF, (raw.adc_p & 0x0F) << 4,
        (raw.adc_t >> 12) & 0xFF, (raw.adc_t >> 4) & 0xFF, (raw.adc_t & 0x0F) << 4,
        (raw.adc_h >> 8) & 0xFF, raw.adc_h & 0xFF])


def t_fine(c: Calibration, adc_t: int) -> float:
    var1 = (adc_t / 16384.0 - c.t1 / 1024.0) * c.t2
    d = adc_t / 131072.0 - c.t1 / 8192.0
    return var1 + d * d * c.t3


def temperature(c: Calibration, adc_t: int) -> float:
    """degC."""
    return t_fine(c, adc_t) / 5120.0


def pressure(c: Calibration, adc_p: int, tf: float) -> float:
    """Pa; 0.0 when the trim would divide by zero (the datasheet's guard)."""
    var1 = tf / 2.0 - 64000.0
    var2 = var1 * var1 * c.p6 / 32768.0
    var2 = var2 + var1 * c.p5 * 2.0
    var2 = var2 / 4.0 + c.p4 * 65536.0
    var1 = (c.p3 * var1 * var1 / 524288.0 + c.p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * c.p1
    if var1 == 0.0:
        return 0.0
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = c.p9 * p * p / 2147483648.0
    var2 = p * c.p8 / 32768.0
    return p + (var1 + var2 + c.p7) / 16.0


def humidity(c: Calibration, adc_h: int, tf: float) -> float:
    """%RH, clamped to 0..100 as the datasheet does."""
    h = tf - 76800.0
    h = (adc_h - (c.h4 * 64.0 + c.h5 / 16384.0 * h)) * (
        c.h2 / 65536.0 * (1.0 + c.h6 / 67108864.0 * h * (1.0 + c.h3 / 67108864.0 * h)))
    h = h * (1.0 - c.h1 * h / 524288.0)
    return min(100.0, max(0.0, h))


@dataclass(frozen=True)
class Measurement:
    temperature: float  # degC
    pressure: float  # Pa
    humidity: float  # %RH

    def to_json(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "pressure": self.pressure,
                "humidity": self.humidity}


def compensate(c: Calibration, raw: RawData) -> Measurement:
    """Compensated values; FrameError if a measurement was skipped (never ran)."""
    if raw.adc_t == SKIPPED_20BIT or raw.adc_p == SKIPPED_20BIT or raw.adc_h == SKIPPED_16BIT:
        raise FrameError("a measurement was skipped (reset value 0x80000/0x8000)", 0)
    tf = t_fine(c, raw.adc_t)
    return Measurement(tf / 5120.0, pressure(c, raw.adc_p, tf), humidity(c, raw.adc_h, tf))


def _solve(f: Callable[[int], float], target: float, lo: int, hi: int) -> int:
    """The integer x in [lo, hi] with f(x) nearest ``target``; f monotonic."""
    increasing = f(hi) >= f(lo)
    a, b = lo, hi
    while b - a > 1:
        mid = (a + b) // 2
        if (f(mid) < target) == increasing:
            a = mid
        else:
            b = mid
    return a if abs(f(a) - target) <= abs(f(b) - target) else b


def raw_for(c: Calibration, temp_c: float, pressure_pa: float, humidity_pct: float) -> RawData:
    """The raw ADC words a chip with trim ``c`` would report (emulator side)."""
    adc_t = _solve(lambda x: temperature(c, x), temp_c, 0, 0xFFFFF - 1)
    tf = t_fine(c, adc_t)
    adc_p = _solve(lambda x: pressure(c, x, tf), pressure_pa, 0, 0xFFFFF - 1)
    adc_h = _solve(lambda x: humidity(c, x, tf), humidity_pct, 0, 0xFFFE)
    return RawData(adc_p, adc_t, adc_h)
