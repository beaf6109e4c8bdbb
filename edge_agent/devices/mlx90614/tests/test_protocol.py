"""MLX90614 codec: SMBus PEC and temperature words."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError
from edge_agent.protocols import mlx90614 as p


def test_pec_known_values() -> None:
    assert p.pec(b"") == 0
    assert p.pec(b"123456789") == 0xF4  # CRC-8 (poly 0x07) check value
    # Melexis application note example: read 0x07 at 0x5A -> 0xD2 0x3A, PEC 0x30
    assert p.pec(bytes([0xB4, 0x07, 0xB5, 0xD2, 0x3A])) == 0x30


@given(st.integers(0x03, 0x77), st.integers(0, 255), st.integers(0, 0xFFFF))
def test_word_round_trip(addr: int, cmd: int, word: int) -> None:
    assert p.decode_read_word(addr, cmd, p.encode_read_word(addr, cmd, word)) == word


@given(st.binary(min_size=5, max_size=5), st.integers(0, 4), st.integers(1, 255))
def test_pec_detects_any_single_byte_error(msg: bytes, i: int, delta: int) -> None:
    bad = bytearray(msg)
    bad[i] ^= delta
    assert p.pec(msg + bytes([p.pec(msg)])) == 0
    assert p.pec(bytes(bad) + bytes([p.pec(msg)])) != 0


@given(st.binary(max_size=4))
def test_any_bytes_decode_or_protocol_error(data: bytes) -> None:
    try:
        t = p.decode_temperature(0x5A, p.RAM_TOBJ1, data)
    except ProtocolError:
        return
    assert -273.15 <= t.celsius < 382.2


@given(st.floats(-70, 380))
def test_celsius_round_trip(c: float) -> None:
    raw = p.raw_from_celsius(c)
    assert p.Temperature(raw).celsius == pytest.approx(c, abs=0.011)


def test_rejections() -> None:
    good = p.encode_read_word(0x5A, p.RAM_TOBJ1, p.raw_from_celsius(36.6))
    with pytest.raises(ChecksumError):
        p.decode_read_word(0x5B, p.RAM_TOBJ1, good)  # PEC covers the address
    with pytest.raises(FrameError):
        p.decode_read_word(0x5A, p.RAM_TOBJ1, good[:2])
    flagged = p.encode_read_word(0x5A, p.RAM_TOBJ1, 0x8000 | 15000)
    with pytest.raises(FrameError, match="error flag"):
        p.decode_temperature(0x5A, p.RAM_TOBJ1, flagged)
    assert p.Temperature(15000).to_json()["celsius"] == pytest.approx(26.85)
