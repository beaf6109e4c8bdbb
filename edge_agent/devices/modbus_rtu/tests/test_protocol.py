"""Modbus RTU codec: CRC, builders, bidirectional framing, register maps, rejections."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError
from edge_agent.protocols.modbus_rtu import (
    SDM120,
    SDM630,
    ExceptionResponse,
    Frame,
    OtherFrame,
    Parser,
    ReadRequest,
    ReadResponse,
    Register,
    crc16_modbus,
    exception_response,
    finite,
    plan_reads,
    read_request,
    read_response,
    with_crc,
)


def parse_all(data: bytes) -> list[Frame | ProtocolError]:
    p = Parser()
    return p.feed(data) + p.flush()


def summary(items: list[Frame | ProtocolError]) -> list[object]:
    return [(type(i).__name__, str(i), i.offset) if isinstance(i, ProtocolError) else i
            for i in items]


def test_crc_check_value_and_byte_order() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37
    # a well-known frame: read 1 holding register at 289 of unit 1
    assert read_request(1, 3, 289, 1) == bytes.fromhex("01030121 0001 D5FC".replace(" ", ""))


def test_builders_validate() -> None:
    assert read_request(1, 4, 0, 2) == with_crc(bytes.fromhex("010400000002"))
    for args in [(1, 6, 0, 1), (248, 3, 0, 1), (1, 3, 0, 0), (1, 3, 0, 126), (1, 1, 0, 2001),
                 (1, 3, 0xFFFF, 2)]:
        with pytest.raises(ValueError):
            read_request(*args)


def test_interleaved_requests_and_responses() -> None:
    data = (read_request(1, 4, 0, 2) + read_response(1, 4, bytes.fromhex("43660000"))
            + read_request(2, 3, 0x100, 1) + exception_response(2, 3, 2)
            + read_request(1, 1, 0, 20) + read_response(1, 1, b"\x05\x00\x08"))
    out = parse_all(data)
    assert [type(o).__name__ for o in out] == ["ReadRequest", "ReadResponse", "ReadRequest",
                                               "ExceptionResponse", "ReadRequest",
                                               "ReadResponse"]
    req = out[0]
    assert isinstance(req, ReadRequest) and (req.unit, req.address, req.count) == (1, 0, 2)
    resp = out[1]
    assert isinstance(resp, ReadResponse) and resp.registers == (0x4366, 0)
    assert resp.offset == 8
    exc = out[3]
    assert isinstance(exc, ExceptionResponse)
    assert (exc.code, exc.description) == (2, "illegal data address")
    # an 8-byte FC 01 response (3 data bytes) is told from a request by the request before it
    bits = out[5]
    assert isinstance(bits, ReadResponse) and bits.bits(20)[:3] == (True, False, True)
    for o in out:
        assert not isinstance(o, ProtocolError)
        json.dumps(o.to_json())


def test_write_frames_are_shown_raw() -> None:
    frame = with_crc(bytes.fromhex("0106000a0102"))
    multi = with_crc(bytes.fromhex("011000000002040001000200"[:-2]))
    out = parse_all(frame + frame)
    assert [type(o) for o in out] == [OtherFrame, OtherFrame]
    out = parse_all(multi)
    assert isinstance(out[0], OtherFrame) and out[0].function == 16


def test_bad_crc_is_a_checksum_error_and_resyncs() -> None:
    req = read_request(1, 3, 0, 1)
    good = read_response(1, 3, b"\x00\x01")
    bad = good[:-1] + bytes([good[-1] ^ 1])
    out = parse_all(req + bad + req + good)
    assert [type(o) for o in out] == [ReadRequest, ChecksumError, ReadRequest, ReadResponse]
    assert out[1].offset == 8
    assert out[3].offset == 8 + len(bad) + 8


def test_after_garbage_a_long_response_needs_its_request() -> None:
    req = read_request(1, 4, 0, 40)
    resp = read_response(1, 4, bytes(80))
    out = parse_all(b"\xff" + req + resp)
    assert [type(o) for o in out] == [FrameError, ReadRequest, ReadResponse]


def test_garbage_is_a_frame_error() -> None:
    out = parse_all(b"\xff\xff\xff" + read_request(1, 3, 0, 1))
    assert isinstance(out[0], FrameError) and not isinstance(out[0], ChecksumError)
    assert isinstance(out[1], ReadRequest) and out[1].offset == 3


def test_truncated_frame_at_end() -> None:
    p = Parser()
    assert p.feed(read_response(1, 3, b"\x00\x01\x00\x02")[:6]) == []
    [err] = p.flush()
    assert isinstance(err, FrameError) and "truncated" in str(err)


def test_long_garbage_is_reported_in_runs() -> None:
    out = Parser().feed(b"\xff" * 600)
    assert [e.offset for e in out if isinstance(e, ProtocolError)] == [0, 256]


def test_register_types_round_trip() -> None:
    for reg, value in [(Register("a", 0, "float32", unit="V"), 230.5),
                       (Register("b", 0, "int16"), -12), (Register("c", 0, "uint16"), 65535),
                       (Register("d", 0, "int32", word_order="little"), -70000),
                       (Register("e", 0, "uint32", scale=0.1), 123456.7)]:
        assert reg.decode(reg.encode(value)) == pytest.approx(value)
    # SDM float32: 230.0 V is 0x4366 0x0000
    assert Register("v", 0).decode((0x4366, 0)) == 230.0
    assert not finite(Register("v", 0).decode((0x7FC0, 0)))  # NaN
    assert math.isinf(Register("v", 0).decode((0x7F80, 0)))


def test_register_validation() -> None:
    with pytest.raises(ValueError):
        Register("x", 0xFFFF, "float32")
    with pytest.raises(ValueError):
        Register("x", 0, "float64")  # type: ignore[arg-type]


def test_plan_reads_groups_contiguous_registers() -> None:
    plans = plan_reads(list(SDM630))
    assert [(p.function, p.address, p.count) for p in plans] == [
        (4, 0x00, 18), (4, 0x1E, 6), (4, 0x34, 2), (4, 0x3E, 2), (4, 0x46, 6)]
    plans = plan_reads(list(SDM120))
    assert sum(len(p.registers) for p in plans) == len(SDM120)
    mixed = plan_reads([Register("a", 0, table="holding"), Register("b", 2),
                        Register("c", 0, "uint16")])
    assert [(p.function, p.address, p.count) for p in mixed] == [(3, 0, 2), (4, 0, 1),
                                                                 (4, 2, 2)]
    assert len(plan_reads([Register(f"r{i}", 2 * i) for i in range(100)])) == 2


def test_plan_decode_checks_the_count() -> None:
    [plan] = plan_reads([Register("v", 0)])
    resp = ReadResponse(0, 1, 4, b"\x43\x66")
    with pytest.raises(FrameError):
        plan.decode(resp)
    [(reg, value)] = plan.decode(ReadResponse(0, 1, 4, b"\x43\x66\x00\x00"))
    assert (reg.name, value) == ("v", 230.0)


# -- properties -----------------------------------------------------------------------------

frames = st.lists(st.one_of(
    st.binary(max_size=12),
    st.builds(read_request, st.integers(1, 5), st.sampled_from([3, 4]),
              st.integers(0, 300), st.integers(1, 10)),
    st.builds(lambda u, f, n: read_response(u, f, bytes(2 * n)), st.integers(1, 5),
              st.sampled_from([3, 4]), st.integers(1, 10)),
    st.builds(exception_response, st.integers(1, 5), st.sampled_from([3, 4]),
              st.integers(1, 4)),
), max_size=8)


@settings(max_examples=300)
@given(frames)
def test_any_bytes_decode_or_reject(parts: list[bytes]) -> None:
    for o in parse_all(b"".join(parts)):
        if not isinstance(o, ProtocolError):
            json.dumps(o.to_json())


@settings(max_examples=300)
@given(frames)
def test_whole_and_byte_by_byte_agree(parts: list[bytes]) -> None:
    data = b"".join(parts)
    p = Parser()
    split: list[Frame | ProtocolError] = []
    for i in range(len(data)):
        split += p.feed(data[i:i + 1])
    split += p.flush()
    assert summary(parse_all(data)) == summary(split)


# -- shipped maps against the Eastron datasheets (input registers, float32, 2 words each) ------

V, A, W, HZ, KWH = ("V", 1.0), ("A", 1.0), ("W", 1.0), ("Hz", 1.0), ("Wh", 1000.0)
PF, VA, VAR = ("/", 1.0), ("VA", 1.0), ("var", 1.0)
SDM120_DATASHEET = {  # 30001-based address -> (name, (SenML unit, scale from meter unit))
    30001: ("voltage", V), 30007: ("current", A), 30013: ("power", W),
    30019: ("apparent_power", VA), 30025: ("reactive_power", VAR),
    30031: ("power_factor", PF), 30071: ("frequency", HZ),
    30073: ("energy_import", KWH), 30075: ("energy_export", KWH),
}
SDM630_DATASHEET = {
    30001: ("voltage_l1", V), 30003: ("voltage_l2", V), 30005: ("voltage_l3", V),
    30007: ("current_l1", A), 30009: ("current_l2", A), 30011: ("current_l3", A),
    30013: ("power_l1", W), 30015: ("power_l2", W), 30017: ("power_l3", W),
    30031: ("power_factor_l1", PF), 30033: ("power_factor_l2", PF),
    30035: ("power_factor_l3", PF), 30053: ("power", W), 30063: ("power_factor", PF),
    30071: ("frequency", HZ), 30073: ("energy_import", KWH), 30075: ("energy_export", KWH),
}


@pytest.mark.parametrize(("regs", "sheet"), [(SDM120, SDM120_DATASHEET),
                                              (SDM630, SDM630_DATASHEET)])
def test_sdm_maps_match_the_datasheets(regs: tuple[Register, ...],
                                       sheet: dict[int, tuple[str, tuple[str, float]]]) -> None:
    assert {30001 + r.address: (r.name, (r.unit, r.scale)) for r in regs} == sheet
    for r in regs:
        assert (r.type, r.table, r.word_order, r.function) == ("float32", "input", "big", 4)


def test_sdm_voltage_request_from_the_eastron_manual() -> None:
    # the manual's example: read 2 input registers from 30001 (voltage) of slave 1
    [req] = parse_all(bytes.fromhex("01 04 00 00 00 02 71 CB"))
    assert isinstance(req, ReadRequest)
    assert (req.unit, req.function, req.address, req.count) == (1, 4, 0, 2)
    assert plan_reads([SDM120[0]])[0].request(1) == bytes.fromhex("01 04 00 00 00 02 71 CB")
