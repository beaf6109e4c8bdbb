"""Accelerometer codecs and the pure fall detector."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.core.errors import FrameError
from edge_agent.devices.fall_detect import ActivityMeter, FallDetector, ThresholdAlarm
from edge_agent.protocols import accel as p

ranges = st.sampled_from([2, 4, 8, 16])
g = st.floats(-1.9, 1.9)


@given(g, g, g, ranges)
def test_mpu_round_trip(x: float, y: float, z: float, r: int) -> None:
    got = p.mpu_decode(p.mpu_encode(x, y, z, r), r)
    assert got == pytest.approx((x, y, z), abs=1 / p.mpu_lsb_per_g(r))


@given(g, g, g, ranges)
def test_adxl_round_trip(x: float, y: float, z: float, r: int) -> None:
    assert p.adxl_decode(p.adxl_encode(x, y, z, r)) == pytest.approx((x, y, z), abs=0.002)


def test_encodings_are_big_and_little_endian() -> None:
    assert p.mpu_encode(0, 0, 1, 2) == b"\x00\x00\x00\x00\x40\x00"  # 16384 LSB/g
    assert p.adxl_encode(0, 0, 1, 2)[4:] == (256).to_bytes(2, "little")
    assert p.mpu_decode(p.mpu_encode(20, 0, 0, 16), 16)[0] == pytest.approx(16, abs=0.01)
    assert p.adxl_decode(p.adxl_encode(20, 0, 0, 16))[0] == pytest.approx(4095 * 0.0039)
    with pytest.raises(FrameError):
        p.mpu_decode(b"\x00", 2)
    with pytest.raises(FrameError):
        p.adxl_decode(b"\x00" * 7)


def feed(det: FallDetector, series: list[tuple[float, float]], rate: float = 50.0) -> int:
    """Feed (duration, |a| along z) segments; count falls."""
    falls, t = 0, 0.0
    for duration, a in series:
        for _ in range(round(duration * rate)):
            falls += det.update(t, 0.0, 0.0, a)
            t += 1 / rate
    return falls


def test_fall_is_detected_once() -> None:
    det = FallDetector()
    assert feed(det, [(2, 1.0), (0.3, 0.1), (0.06, 3.2), (0.2, 1.6), (10, 1.0)]) == 1


@pytest.mark.parametrize("series", [
    [(5, 1.0)],  # standing still
    [(0.04, 0.1), (0.1, 3.0), (5, 1.0)],  # brief dip: not a free fall
    [(0.3, 0.1), (1.5, 1.0), (0.1, 3.0), (5, 1.0)],  # impact too late
    [(0.3, 0.1), (0.1, 3.0), (10, 1.5)],  # impact but the person moves on (no stillness)
    [(0.3, 0.1), (5, 1.0)],  # drop without impact (sensor put down softly)
])
def test_non_falls(series: list[tuple[float, float]]) -> None:
    assert feed(FallDetector(), series) == 0


def test_activity_meter() -> None:
    m = ActivityMeter()
    assert m.take() is None
    m.add(0, 0, 1.5)
    m.add(0, 0, 1.0)
    assert m.take() == pytest.approx(0.25)
    assert m.take() is None


@given(st.lists(st.floats(0, 50), max_size=50))
def test_threshold_alarm_never_twice_without_clearing(values: list[float]) -> None:
    alarm = ThresholdAlarm(30.0, 1.0)
    armed = True
    for v in values:
        fired = alarm.update(v)
        if fired:
            assert armed and v >= 30.0
            armed = False
        if v < 29.0:
            armed = True


def test_threshold_below() -> None:
    low = ThresholdAlarm(90.0, 2.0, above=False)
    assert [low.update(v) for v in (95, 89, 88, 91, 93, 90)] == [
        False, True, False, False, False, True]
    with pytest.raises(ValueError):
        ThresholdAlarm(1.0, -1.0)
