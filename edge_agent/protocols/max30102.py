"""Maxim MAX30102 pulse oximeter: register map, FIFO codec, heart rate and SpO2 estimates.

Pure functions, no I/O. The estimators work on a window of red/IR samples and return None
for a value they cannot stand behind (no finger, low perfusion, irregular peaks): a missing
reading is reported as missing, never invented.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge_agent.core.errors import FrameError

ADDRESS = 0x57
REG_INT_STATUS_1 = 0x00
REG_INT_ENABLE_1 = 0x02
REG_FIFO_WR_PTR = 0x04
REG_OVF_COUNTER = 0x05
REG_FIFO_RD_PTR = 0x06
REG_FIFO_DATA = 0x07
REG_FIFO_CONFIG = 0x08
REG_MODE_CONFIG = 0x09
REG_SPO2_CONFIG = 0x0A
REG_LED1_PA = 0x0C  # red
REG_LED2_PA = 0x0D  # IR
REG_REV_ID = 0xFE
REG_PART_ID = 0xFF
PART_ID = 0x15

MODE_SHDN = 0x80
MODE_RESET = 0x40
MODE_HR = 0x02  # red only
MODE_SPO2 = 0x03  # red + IR
FIFO_ROLLOVER = 0x10
FIFO_DEPTH = 32
SAMPLE_MASK = 0x3FFFF  # 18-bit data, left-justified in bits 17..0

SAMPLE_RATES = {50: 0, 100: 1, 200: 2, 400: 3, 800: 4, 1000: 5, 1600: 6, 3200: 7}
SAMPLE_AVERAGES = {1: 0, 2: 1, 4: 2, 8: 3, 16: 4, 32: 5}

FINGER_MIN_DC = 50_000  # IR counts (of 262143) below which no finger is on the sensor
PERFUSION_MIN = 0.0005  # AC/DC (RMS) below this: too weak to trust
PERFUSION_MAX = 0.1  # above this: motion, not a pulse
HR_MIN, HR_MAX = 30.0, 220.0
SPO2_MIN = 70.0


def rate_from_code(code: int) -> int:
    return {v: k for k, v in SAMPLE_RATES.items()}[code & 0x07]


def average_from_code(code: int) -> int:
    return {v: k for k, v in SAMPLE_AVERAGES.items()}.get(code & 0x07, 32)


def fifo_count(wr_ptr: int, rd_ptr: int, overflow: int) -> int:
    """Samples waiting in the FIFO (32 when it overflowed and the pointers met)."""
    n = (wr_ptr - rd_ptr) & 0x1F
    return FIFO_DEPTH if n == 0 and overflow else n


def encode_sample(*leds: int) -> bytes:
    """One FIFO sample: 3 bytes per active LED (red first), 18-bit values."""
    return b"".join((v & SAMPLE_MASK).to_bytes(3, "big") for v in leds)


def decode_fifo(data: bytes, leds: int = 2) -> list[tuple[int, ...]]:
    """Split a FIFO burst into samples of ``leds`` values (red, IR)."""
    size = 3 * leds
    if leds not in (1, 2) or len(data) % size:
        raise FrameError(f"FIFO burst of {len(data)} bytes is not whole {size}-byte samples",
                         len(data) - len(data) % size)
    return [tuple(int.from_bytes(data[i + 3 * k:i + 3 * k + 3], "big") & SAMPLE_MASK
                  for k in range(leds)) for i in range(0, len(data), size)]


# -- estimation -----------------------------------------------------------------------------


def moving_average(x: Sequence[float], width: int) -> list[float]:
    """Centred moving average; the ends use the samples available."""
    if width <= 1:
        return list(x)
    n, half = len(x), width // 2
    cum = [0.0]
    for v in x:
        cum.append(cum[-1] + v)
    out = []
    for i in range(n):
        lo, hi = max(0, i - half), min(n, i + half + 1)
        out.append((cum[hi] - cum[lo]) / (hi - lo))
    return out


def pulsatile(x: Sequence[float], fs: float) -> list[float]:
    """Band-pass: minus a ~1 s moving average (baseline), smoothed over ~0.1 s."""
    base = moving_average(x, max(3, round(fs)))
    return moving_average([a - b for a, b in zip(x, base, strict=True)], max(1, round(fs / 10)))


def find_peaks(s: Sequence[float], fs: float, min_gap_s: float = 0.27) -> list[int]:
    """Local maxima above half the largest, at least ``min_gap_s`` apart (higher wins)."""
    if len(s) < 3:
        return []
    top = max(s)
    if top <= 0:
        return []
    gap = max(1, round(min_gap_s * fs))
    peaks: list[int] = []
    for i in range(1, len(s) - 1):
        if s[i] > 0.5 * top and s[i] > s[i - 1] and s[i] >= s[i + 1]:
            if peaks and i - peaks[-1] < gap:
                if s[i] > s[peaks[-1]]:
                    peaks[-1] = i
                continue
            peaks.append(i)
    return peaks


@dataclass(frozen=True)
class Estimate:
    heart_rate: float | None  # beats per minute
    spo2: float | None  # percent
    reason: str  # "ok" or why a value is missing

    def to_json(self) -> dict[str, Any]:
        return {"heart_rate": self.heart_rate, "spo2": self.spo2, "reason": self.reason}


def estimate(red: Sequence[float], ir: Sequence[float], fs: float) -> Estimate:
    """Heart rate from IR peaks; SpO2 from R = (ACred/DCred)/(ACir/DCir), 110 - 25 R."""
    if len(ir) != len(red) or len(ir) < 4 * fs:
        return Estimate(None, None, "short window")
    dc_ir, dc_red = statistics.fmean(ir), statistics.fmean(red)
    if dc_ir < FINGER_MIN_DC or dc_red <= 0:
        return Estimate(None, None, "no finger")
    ac_ir_wave = pulsatile(ir, fs)
    ac_red_wave = pulsatile(red, fs)
    ac_ir = _rms(ac_ir_wave)
    ac_red = _rms(ac_red_wave)
    perfusion = ac_ir / dc_ir
    if perfusion < PERFUSION_MIN:
        return Estimate(None, None, "low perfusion")
    if perfusion > PERFUSION_MAX:
        return Estimate(None, None, "motion")
    # blood absorbs: the raw signal dips at each beat, so look for peaks of the inverse
    peaks = find_peaks([-v for v in ac_ir_wave], fs)
    hr: float | None = None
    reason = "ok"
    if len(peaks) >= 3:
        gaps = [b - a for a, b in itertools.pairwise(peaks)]
        mean_gap = statistics.fmean(gaps)
        regular = statistics.pstdev(gaps) <= 0.2 * mean_gap
        bpm = 60.0 * fs / mean_gap
        if regular and HR_MIN <= bpm <= HR_MAX:
            hr = round(bpm, 1)
        else:
            reason = "irregular peaks"
    else:
        reason = "too few beats"
    if hr is None:
        return Estimate(None, None, reason)  # no trusted pulse: no SpO2 either
    r = (ac_red / dc_red) / perfusion
    spo2 = 110.0 - 25.0 * r
    if not SPO2_MIN <= spo2 <= 102.0:
        return Estimate(hr, None, "SpO2 out of range")
    return Estimate(hr, round(min(100.0, spo2), 1), "ok")


def _rms(x: Sequence[float]) -> float:
    return math.sqrt(statistics.fmean(v * v for v in x)) if x else 0.0
