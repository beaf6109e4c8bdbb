"""IEC 62056-21 mode C: builders, both directions of the dialogue, BCC, rejections."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError
from edge_agent.protocols.iec62056_21 import (
    ACK,
    ETX,
    NAK,
    SOH,
    STX,
    Command,
    Control,
    DataBlock,
    Identification,
    Message,
    OptionSelect,
    Parser,
    SignOn,
    bcc,
    encode_data_block,
    option_select,
    sign_on,
)

BLOCK = encode_data_block([
    "F.F(00000000)",
    "0.0.0(12345678)",
    "1.8.0(0001234.567*kWh)",
    "1.8.0*01(0000010.2)",  # previous billing period: not a current value
    "16.7.0(-000.82*kW)",
    "32.7.0(230.1*V)52.7.0(231.0*V)",  # two data sets on one line
    "1.6.0(10.102*kW)(2104070015)",  # value and its capture time
    "31.7.0(1.25*A)",
    "14.7.0(50.00*Hz)",
])
DIALOGUE = (sign_on() + b"/EMU5EDGE-IEC-1\r\n" + option_select(9600) + BLOCK)


def parse_all(data: bytes) -> list[Message | ProtocolError]:
    p = Parser()
    return p.feed(data) + p.flush()


def summary(items: list[Message | ProtocolError]) -> list[object]:
    return [(type(i).__name__, str(i), i.offset) if isinstance(i, ProtocolError) else i
            for i in items]


def test_builders() -> None:
    assert sign_on() == b"/?!\r\n"
    assert sign_on("12345678") == b"/?12345678!\r\n"
    assert option_select(9600) == b"\x06050\r\n"
    assert option_select(300) == b"\x06000\r\n"
    assert option_select(19200, mode="1") == b"\x06061\r\n"
    with pytest.raises(ValueError):
        sign_on("bad/address")
    with pytest.raises(KeyError):
        option_select(115200)


def test_bcc_is_xor_after_stx_through_etx() -> None:
    body = b"C003(910324092239)"
    frame = bytes([SOH]) + b"W2" + bytes([STX]) + body + bytes([ETX])
    assert bcc(frame[1:]) == 0x1B
    assert BLOCK[-1] == bcc(BLOCK[1:-1])


def test_whole_dialogue_decodes_in_order() -> None:
    out = parse_all(DIALOGUE)
    assert [type(o).__name__ for o in out] == ["SignOn", "Identification", "OptionSelect",
                                               "DataBlock"]
    ident = out[1]
    assert isinstance(ident, Identification)
    assert (ident.manufacturer, ident.baud_char, ident.baudrate, ident.ident) == \
        ("EMU", "5", 9600, "EDGE-IEC-1")
    opt = out[2]
    assert isinstance(opt, OptionSelect)
    assert (opt.protocol, opt.baudrate, opt.mode) == ("0", 9600, "0")
    assert out[3].offset == len(DIALOGUE) - len(BLOCK)


def test_data_block_measurements() -> None:
    [block] = parse_all(BLOCK)
    assert isinstance(block, DataBlock)
    v = {m.name: (m.value, m.unit) for m in block.measurements}
    assert v == {
        "energy_import": (1234567.0, "Wh"),
        "power": (-820.0, "W"),
        "voltage_l1": (230.1, "V"),
        "voltage_l2": (231.0, "V"),
        "power_import_max": (10102.0, "W"),
        "current_l1": (1.25, "A"),
        "frequency": (50.0, "Hz"),
    }
    peak = next(d for d in block.datasets if d.address == "1.6.0")
    assert peak.values == ("10.102*kW", "2104070015")
    assert [m.name for m in block.select(frozenset({"1-0:32.7.0"}))] == ["voltage_l1"]
    doc = json.loads(json.dumps(block.to_json()))
    assert doc["type"] == "iec-data" and len(doc["datasets"]) == 10


def test_sign_on_with_address_and_controls() -> None:
    out = parse_all(sign_on("0042") + bytes([NAK]) + bytes([ACK]) + b"x")
    assert isinstance(out[0], SignOn) and out[0].address == "0042"
    assert isinstance(out[1], Control) and out[1].name == "NAK"
    assert isinstance(out[2], Control) and out[2].name == "ACK"
    assert isinstance(out[3], FrameError)  # the stray "x"


def test_lone_ack_at_end_of_input_is_reported_by_flush() -> None:
    p = Parser()
    assert p.feed(bytes([ACK]) + b"05") == []  # could still become an option select
    out = p.flush()
    assert isinstance(out[0], Control) and out[0].name == "ACK"
    assert all(isinstance(o, ProtocolError) for o in out[1:])


def test_programming_command() -> None:
    frame = bytes([SOH]) + b"W2" + bytes([STX]) + b"C003(910324092239)" + bytes([ETX])
    [cmd] = parse_all(frame + bytes([bcc(frame[1:])]))
    assert isinstance(cmd, Command)
    assert (cmd.command, cmd.data) == ("W2", "C003(910324092239)")
    assert cmd.to_json()["type"] == "iec-command"


# -- rejections -----------------------------------------------------------------------------


def test_bad_bcc() -> None:
    out = parse_all(BLOCK[:-1] + bytes([BLOCK[-1] ^ 1]) + BLOCK)
    assert isinstance(out[0], ChecksumError) and out[0].offset == 0
    assert isinstance(out[1], DataBlock) and out[1].offset == len(BLOCK)


def test_truncated_block_then_a_good_one() -> None:
    out = parse_all(BLOCK[:30] + BLOCK)
    assert isinstance(out[0], FrameError) and "truncated" in str(out[0])
    assert isinstance(out[1], DataBlock) and out[1].offset == 30


def test_truncated_at_end_reported_by_flush() -> None:
    p = Parser()
    assert p.feed(BLOCK[:30]) == []
    [err] = p.flush()
    assert isinstance(err, FrameError) and err.offset == 0


def test_malformed_data_line() -> None:
    [err] = parse_all(encode_data_block(["1.8.0(12*kWh)junk"]))
    assert isinstance(err, FrameError) and "malformed data line" in str(err)


def test_malformed_and_overlong_lines() -> None:
    out = parse_all(b"/12\r\n" + b"/" + b"x" * 200)
    assert isinstance(out[0], FrameError) and "malformed line" in str(out[0])
    assert isinstance(out[1], FrameError) and "too long" in str(out[1])


def test_bad_command() -> None:
    frame = bytes([SOH]) + b"W" + bytes([ETX])
    [err] = parse_all(frame + bytes([bcc(frame[1:])]))
    assert isinstance(err, FrameError) and "bad command" in str(err)


def test_oversized_block() -> None:
    p = Parser(max_message=len(BLOCK) + 10)
    out = p.feed(bytes([STX]) + b"1.8.0(1*kWh)\r\n" * 20) + p.feed(BLOCK) + p.flush()
    assert isinstance(out[0], FrameError) and "longer than" in str(out[0])
    assert isinstance(out[-1], DataBlock)


def test_long_garbage_is_reported_in_runs() -> None:
    out = Parser().feed(b"\xff" * 600)
    assert [e.offset for e in out if isinstance(e, FrameError)] == [0, 256]


# -- properties -----------------------------------------------------------------------------

pieces = st.lists(st.one_of(st.binary(max_size=30), st.just(BLOCK), st.just(BLOCK[:20]),
                            st.just(sign_on()), st.just(option_select(9600)),
                            st.sampled_from([b"\x06", b"\x15", b"\x02", b"\x01", b"\x03",
                                             b"/", b"\r\n"])), max_size=8)


@settings(max_examples=300)
@given(pieces)
def test_any_bytes_decode_or_reject(parts: list[bytes]) -> None:
    out = parse_all(b"".join(parts))
    for o in out:
        assert isinstance(o, ProtocolError) or hasattr(o, "to_json")
        if not isinstance(o, ProtocolError):
            json.dumps(o.to_json())


@settings(max_examples=300)
@given(pieces)
def test_whole_and_byte_by_byte_agree(parts: list[bytes]) -> None:
    data = b"".join(parts)
    p = Parser()
    split: list[Message | ProtocolError] = []
    for i in range(len(data)):
        split += p.feed(data[i:i + 1])
    split += p.flush()
    assert summary(parse_all(data)) == summary(split)
