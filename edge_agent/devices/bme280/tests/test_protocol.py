"""BME280 codec: trim layout, raw data packing, compensation against the datasheet."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core.errors import FrameError, ProtocolError
from edge_agent.protocols import bme280 as p


def test_datasheet_example() -> None:
    # BMP280/BME280 datasheet worked example (trim = p.TYPICAL's T/P words)
    c = p.TYPICAL
    tf = p.t_fine(c, 519888)
    assert p.temperature(c, 519888) == pytest.approx(25.08, abs=0.01)
    assert p.pressure(c, 415148, tf) == pytest.approx(100653.27, abs=0.1)


cal = st.builds(
    p.Calibration,
    t1=st.integers(20000, 30000), t2=st.integers(20000, 30000), t3=st.integers(-2000, 2000),
    p1=st.integers(30000, 40000), p2=st.integers(-12000, -9000), p3=st.integers(2000, 4000),
    p4=st.integers(-4000, 8000), p5=st.integers(-200, 200), p6=st.integers(-10, 10),
    p7=st.integers(9000, 16000), p8=st.integers(-15000, -9000), p9=st.integers(4000, 7000),
    h1=st.integers(0, 255), h2=st.integers(300, 400), h3=st.integers(0, 255),
    h4=st.integers(-2048, 2047), h5=st.integers(-2048, 2047), h6=st.integers(-128, 127))


@given(cal)
def test_calibration_round_trip(c: p.Calibration) -> None:
    assert p.parse_calibration(*p.encode_calibration(c)) == c
    assert set(c.to_json()) == {f"{k}{i}" for k, n in (("t", 3), ("p", 9), ("h", 6))
                                for i in range(1, n + 1)}


@given(st.integers(0, 0xFFFFF), st.integers(0, 0xFFFFF), st.integers(0, 0xFFFF))
def test_data_round_trip(adc_p: int, adc_t: int, adc_h: int) -> None:
    raw = p.RawData(adc_p, adc_t, adc_h)
    assert p.decode_data(p.encode_data(raw)) == raw


@settings(max_examples=50)
@given(st.floats(-40, 85), st.floats(30000, 110000), st.floats(1, 99))
def test_raw_for_inverts_compensation(t: float, pa: float, rh: float) -> None:
    m = p.compensate(p.TYPICAL, p.raw_for(p.TYPICAL, t, pa, rh))
    assert m.temperature == pytest.approx(t, abs=0.01)
    assert m.pressure == pytest.approx(pa, abs=3.0)
    assert m.humidity == pytest.approx(rh, abs=0.05)


@given(st.binary(max_size=30), st.binary(max_size=8))
def test_any_trim_bytes_parse_or_protocol_error(tp: bytes, h: bytes) -> None:
    try:
        c = p.parse_calibration(tp, h)
    except ProtocolError:
        return
    assert p.encode_calibration(c)[0][:24] == tp[:24]


def test_rejections() -> None:
    with pytest.raises(FrameError):
        p.parse_calibration(bytes(26), bytes(7))  # blank trim
    with pytest.raises(FrameError):
        p.decode_data(bytes(7))
    with pytest.raises(FrameError):
        p.compensate(p.TYPICAL, p.RawData(p.SKIPPED_20BIT, 500000, 30000))
    assert p.humidity(p.TYPICAL, 0xFFFF, p.t_fine(p.TYPICAL, 500000)) == 100.0
    assert p.humidity(p.TYPICAL, 0, p.t_fine(p.TYPICAL, 500000)) == 0.0
