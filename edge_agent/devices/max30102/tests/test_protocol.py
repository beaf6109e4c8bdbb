"""MAX30102 codec and estimators."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core.errors import FrameError, ProtocolError
from edge_agent.protocols import max30102 as p

u18 = st.integers(0, p.SAMPLE_MASK)


@given(st.lists(st.tuples(u18, u18), max_size=32))
def test_fifo_round_trip(samples: list[tuple[int, int]]) -> None:
    data = b"".join(p.encode_sample(r, i) for r, i in samples)
    assert p.decode_fifo(data, 2) == samples


@given(st.binary(max_size=40))
def test_any_burst_decodes_or_frame_error(data: bytes) -> None:
    try:
        out = p.decode_fifo(data, 2)
    except ProtocolError:
        assert len(data) % 6
        return
    assert len(out) == len(data) // 6
    assert all(v <= p.SAMPLE_MASK for s in out for v in s)


def test_fifo_count_and_codes() -> None:
    assert p.fifo_count(5, 2, 0) == 3
    assert p.fifo_count(1, 30, 0) == 3
    assert p.fifo_count(7, 7, 0) == 0
    assert p.fifo_count(7, 7, 4) == 32
    assert p.rate_from_code(p.SAMPLE_RATES[400]) == 400
    assert p.average_from_code(p.SAMPLE_AVERAGES[8]) == 8
    with pytest.raises(FrameError):
        p.decode_fifo(b"\x00" * 5)


def synth(hr: float, spo2: float, fs: float = 25.0, seconds: float = 8.0,
          perfusion: float = 0.02, dc: float = 120000.0) -> tuple[list[float], list[float]]:
    r = (110 - spo2) / 25
    red, ir, ph = [], [], 0.0
    for _ in range(round(seconds * fs)):
        ph = (ph + hr / 60 / fs) % 1
        beat = math.exp(-(((ph - 0.25) / 0.1) ** 2))
        ir.append(dc * (1 - perfusion * beat))
        red.append(0.75 * dc * (1 - perfusion * r * beat))
    return red, ir


@settings(max_examples=30, deadline=None)
@given(st.floats(40, 180), st.floats(80, 100))
def test_estimate_recovers_rate_and_saturation(hr: float, spo2: float) -> None:
    est = p.estimate(*synth(hr, spo2), 25.0)
    assert est.reason == "ok"
    assert est.heart_rate == pytest.approx(hr, abs=max(2.0, hr * 0.03))
    assert est.spo2 == pytest.approx(spo2, abs=0.6)


def test_estimate_refuses_to_invent() -> None:
    assert p.estimate(*synth(70, 97, dc=2000), 25.0).reason == "no finger"
    assert p.estimate(*synth(70, 97, perfusion=0.0001), 25.0).reason == "low perfusion"
    assert p.estimate(*synth(70, 97, seconds=2), 25.0).reason == "short window"
    flat = [100000.0] * 200
    assert p.estimate(flat, flat, 25.0).heart_rate is None
    est = p.estimate(*synth(70, 40), 25.0)  # R implies 40 %: not physiological, no value
    assert est.spo2 is None and est.heart_rate is not None
    assert est.to_json()["reason"] == "SpO2 out of range"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 262143), min_size=100, max_size=200))
def test_estimate_never_raises(ir: list[float]) -> None:
    est = p.estimate(list(reversed(ir)), ir, 25.0)
    assert est.spo2 is None or 70 <= est.spo2 <= 100
