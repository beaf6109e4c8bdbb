"""SHT31 codec: CRC-8 from the datasheet, conversions, measurement round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError
from edge_agent.protocols import sht31


def test_crc_datasheet_example() -> None:
    assert sht31.crc8(b"\xbe\xef") == 0x92
    assert sht31.crc8(b"") == 0xFF


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_measurement_round_trip(t: int, rh: int) -> None:
    m = sht31.decode_measurement(sht31.encode_measurement(t, rh))
    assert (m.raw_temperature, m.raw_humidity) == (t, rh)
    assert -45.0 <= m.temperature <= 130.0
    assert 0.0 <= m.humidity <= 100.0
    assert set(m.to_json()) == {"temperature", "humidity", "raw_temperature", "raw_humidity"}


@given(st.binary(min_size=2, max_size=2), st.integers(0, 15), st.integers(1, 255))
def test_crc_detects_single_byte_errors(word: bytes, bit: int, delta: int) -> None:
    good = word + bytes([sht31.crc8(word)])
    bad = bytearray(good)
    bad[bit % 3] ^= delta
    with pytest.raises(ChecksumError):
        sht31.decode_word(bytes(bad))


@given(st.binary(max_size=8))
def test_any_bytes_decode_or_protocol_error(data: bytes) -> None:
    try:
        m = sht31.decode_measurement(data)
    except ProtocolError:
        return
    assert len(data) == 6
    assert sht31.encode_measurement(m.raw_temperature, m.raw_humidity) == data


@given(st.floats(-40.0, 125.0))
def test_temperature_encode_within_resolution(t: float) -> None:
    assert abs(sht31.temperature_from_raw(sht31.raw_from_temperature(t)) - t) <= 0.0014


@given(st.floats(0.0, 100.0))
def test_humidity_encode_within_resolution(rh: float) -> None:
    assert abs(sht31.humidity_from_raw(sht31.raw_from_humidity(rh)) - rh) <= 0.0008


def test_conversion_endpoints() -> None:
    assert sht31.temperature_from_raw(0) == -45.0
    assert sht31.temperature_from_raw(0xFFFF) == 130.0
    assert sht31.humidity_from_raw(0xFFFF) == 100.0
    assert sht31.raw_from_temperature(-100.0) == 0
    assert sht31.raw_from_humidity(200.0) == 0xFFFF


def test_rejections_carry_offsets() -> None:
    with pytest.raises(FrameError):
        sht31.decode_measurement(b"\x00" * 5)
    good = bytearray(sht31.encode_measurement(100, 200))
    good[5] ^= 1
    with pytest.raises(ChecksumError) as info:
        sht31.decode_measurement(bytes(good))
    assert info.value.offset == 5
    assert sht31.command(sht31.CMD_MEASURE_HIGH) == b"\x24\x00"
