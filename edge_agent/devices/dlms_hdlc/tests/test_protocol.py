"""DLMS/COSEM HDLC push: framing, CRCs, segmentation, A-XDR, layouts, AES-GCM, rejections."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core.errors import ChecksumError, DecryptionError, FrameError, ProtocolError
from edge_agent.devices.dlms_hdlc.emulator import (
    DlmsEmulation,
    DlmsMeter,
    array,
    cosem_time,
    hdlc_frames,
    notification,
    obis,
    scaler_unit,
    structure,
    u16,
    u32,
    visible,
)
from edge_agent.protocols.dlms import (
    LLC,
    MAX_APDU,
    CipheredApdu,
    Frame,
    HdlcFrame,
    Notification,
    Parser,
    Reader,
    ReplayError,
    ReplayGuard,
    cosem_datetime,
    crc16_x25,
    decode_apdu,
    decode_data,
    decrypt_glo,
    encode_frame,
    encrypt_glo,
)

EK = bytes(range(16))
AK = bytes(range(0xD0, 0xE0))
TITLE = b"EMU\x00\x00\x00\x00\x01"

AIDON = notification(array(
    structure(obis(1, 0, 1, 7, 0), u32(1122), scaler_unit(0, 27)),
    structure(obis(1, 0, 32, 7, 0), u16(2307), scaler_unit(-1, 35)),
    structure(obis(1, 0, 1, 8, 0), u32(10049926), scaler_unit(0, 30)),
    structure(obis(1, 0, 14, 7, 0), u16(5000), scaler_unit(-2, 44)),
    structure(obis(1, 0, 31, 7, 0), u16(49), scaler_unit(0, 35)),  # amps labelled as volts
))
KAMSTRUP = notification(structure(
    visible("Kamstrup_V0001"),
    obis(1, 1, 0, 0, 5), visible("5706567326590407"),
    obis(1, 1, 1, 7, 0), u32(826),
    obis(1, 1, 31, 7, 0), u32(237),
    obis(1, 1, 32, 7, 0), u16(232),
    obis(1, 1, 1, 8, 0), u32(123456),
), invoke_id=0, when=cosem_time(1_700_000_000.0, deviation=-60))
FRAME = encode_frame(LLC + AIDON)


def parse_all(data: bytes, **kw: Any) -> list[Frame | ProtocolError]:
    p = Parser(**kw)
    return p.feed(data) + p.flush()


def summary(items: list[Frame | ProtocolError]) -> list[object]:
    return [(type(i).__name__, str(i), i.offset) if isinstance(i, ProtocolError)
            else json.dumps(i.to_json()) for i in items]


def values(n: Notification) -> dict[str, object]:
    return {m.name: (m.value, m.unit) for m in n.measurements}


def test_crc16_x25_check_value() -> None:
    assert crc16_x25(b"123456789") == 0x906E


def test_aidon_style_with_scaler_and_unit() -> None:
    [n] = parse_all(FRAME)
    assert isinstance(n, Notification) and n.offset == 0 and not n.encrypted
    assert values(n) == {"power_import": (1122.0, "W"), "voltage_l1": (230.7, "V"),
                         "energy_import": (10049926.0, "Wh"), "frequency": (50.0, "Hz")}
    doc = json.loads(json.dumps(n.to_json()))
    assert doc["objects"][0] == {"obis": "1-0:1.7.0", "value": 1122}


def test_kamstrup_style_alternating_with_implied_scalers_and_time() -> None:
    [n] = parse_all(encode_frame(LLC + KAMSTRUP))
    assert isinstance(n, Notification) and n.list_id == "Kamstrup_V0001"
    assert values(n) == {"power_import": (826.0, "W"), "current_l1": (2.37, "A"),
                         "voltage_l1": (232.0, "V"), "energy_import": (1234560.0, "Wh")}
    assert n.timestamp == 1_700_000_000.0  # local time + deviation (-60 min) = UTC
    assert n.time_text == "2023-11-14T23:13:20"


def test_cosem_datetime_without_deviation_has_no_epoch() -> None:
    text, epoch = cosem_datetime(bytes.fromhex("07e30c1001073b28ff8000ff")) or ("", 0.0)
    assert (text, epoch) == ("2019-12-16T07:59:40", None)
    assert cosem_datetime(bytes(12)) is None
    assert cosem_datetime(b"\x07") is None


def test_payload_containing_flag_bytes_is_framed_by_length() -> None:
    apdu = notification(array(structure(obis(1, 0, 1, 7, 0), u32(0x7E7E7E7E),
                                        scaler_unit(0, 27))))
    out = parse_all(encode_frame(LLC + apdu) + FRAME)
    assert [type(o) for o in out] == [Notification, Notification]
    assert out[1].offset == len(encode_frame(LLC + apdu)) - 1 + 1  # closing flag shared


def test_segmented_apdu_is_joined() -> None:
    frames = hdlc_frames(LLC + AIDON, 20)
    assert len(frames) > 3
    out = parse_all(b"".join(frames))
    assert len(out) == 1 and isinstance(out[0], Notification)
    assert values(out[0])["power_import"] == (1122.0, "W")


def test_frame_without_information_and_non_llc_info() -> None:
    out = parse_all(encode_frame(b"") + encode_frame(b"\x01\x02\x03"))
    assert [type(o) for o in out] == [HdlcFrame, HdlcFrame]
    assert isinstance(out[1], HdlcFrame) and out[1].info == b"\x01\x02\x03"
    assert (out[1].dst, out[1].src) == (0x10, 0x41)


def test_decode_data_types() -> None:
    raw = bytes.fromhex("0209" "0301" "05fffffffe" "0f80" "10ff00" "11ff" "1601"
                        "14ffffffffffffffff" "173fc00000" "0a026869")
    value = decode_data(Reader(raw, 0))
    assert value == [True, -2, -128, -256, 255, 1, -1, 1.5, "hi"]


# -- encryption -----------------------------------------------------------------------------


def test_green_book_gcm_vector() -> None:
    plain = bytes.fromhex("C0010000080000010000FF0200")
    apdu = encrypt_glo(plain, EK, AK, bytes.fromhex("4D4D4D0000BC614E"), 0x01234567)
    assert apdu.endswith(bytes.fromhex("411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B"))
    assert decrypt_glo(apdu, 0, EK, AK) == (plain, bytes.fromhex("4D4D4D0000BC614E"))


def test_encrypted_push_decrypts_with_keys() -> None:
    frame = encode_frame(LLC + encrypt_glo(AIDON, EK, AK, TITLE, 7))
    [n] = parse_all(frame, key=EK, auth_key=AK)
    assert isinstance(n, Notification) and n.encrypted and n.system_title == TITLE
    assert values(n)["voltage_l1"] == (230.7, "V")


def test_encryption_only_push() -> None:
    apdu = encrypt_glo(AIDON, EK, b"", TITLE, 9, sc=0x20)
    n = decode_apdu(apdu, 0, EK, None)
    assert isinstance(n, Notification) and values(n)["power_import"] == (1122.0, "W")


@pytest.mark.parametrize(("key", "auth", "reason"), [
    (EK, None, "no authentication key"),
    (bytes(16), AK, "tag mismatch"), (EK, bytes(16), "tag mismatch"),
])
def test_decryption_failures(key: bytes | None, auth: bytes | None, reason: str) -> None:
    frame = encode_frame(LLC + encrypt_glo(AIDON, EK, AK, TITLE, 7))
    p = Parser(key, auth)
    [err] = p.feed(frame)
    assert isinstance(err, DecryptionError) and reason in str(err) and err.offset == 0


def test_without_key_a_ciphered_push_is_shown_not_decrypted() -> None:
    apdu = encrypt_glo(AIDON, EK, AK, TITLE, 0x01020304)
    [c] = parse_all(encode_frame(LLC + apdu))
    assert isinstance(c, CipheredApdu) and c.offset == 0
    assert (c.system_title, c.security_control, c.invocation_counter) == \
        (TITLE, 0x30, 0x01020304)
    assert c.payload_len == len(AIDON) + 12  # ciphertext and tag
    doc = json.loads(json.dumps(c.to_json()))
    assert doc["decrypted"] is False and doc["system_title"] == TITLE.hex()


def test_decrypt_glo_without_key_is_a_decryption_error() -> None:
    with pytest.raises(DecryptionError, match="no key"):
        decrypt_glo(encrypt_glo(AIDON, EK, AK, TITLE, 7), 5, None, None)


# -- replay protection ----------------------------------------------------------------------

OTHER_TITLE = b"EMU\x00\x00\x00\x00\x02"


def pushed(counter: int, title: bytes = TITLE) -> Notification:
    [n] = parse_all(encode_frame(LLC + encrypt_glo(AIDON, EK, AK, title, counter)),
                    key=EK, auth_key=AK)
    assert isinstance(n, Notification) and n.invocation_counter == counter
    return n


def test_replay_guard_accepts_increasing_counters_only() -> None:
    guard = ReplayGuard()
    assert guard.last(TITLE) is None
    assert guard.check(pushed(5)) is None
    assert guard.check(pushed(6)) is None
    assert guard.check(pushed(100)) is None  # gaps are fine (missed pushes)
    assert guard.last(TITLE) == 100
    for stale in (100, 99, 6, 0):  # equal or lower: a replay
        err = guard.check(pushed(stale))
        assert isinstance(err, ReplayError) and isinstance(err, ProtocolError)
        assert err.reason == "replay" and err.offset == 0
        assert f"invocation counter {stale} not above 100" in str(err)
    assert guard.last(TITLE) == 100  # a rejected push does not move the mark
    assert guard.check(pushed(101)) is None


def test_replay_guard_is_per_system_title() -> None:
    guard = ReplayGuard()
    assert guard.check(pushed(50)) is None
    assert guard.check(pushed(3, OTHER_TITLE)) is None  # another meter, its own counter
    assert isinstance(guard.check(pushed(3, OTHER_TITLE)), ReplayError)
    assert guard.check(pushed(51)) is None
    assert isinstance(guard.check(pushed(50)), ReplayError)
    assert (guard.last(TITLE), guard.last(OTHER_TITLE)) == (51, 3)


def test_replay_guard_passes_unencrypted_pushes() -> None:
    guard = ReplayGuard()
    [plain] = parse_all(FRAME)
    assert isinstance(plain, Notification) and not plain.encrypted
    assert plain.invocation_counter is None
    for _ in range(3):  # the same plain push again and again: nothing to check it by
        assert guard.check(plain) is None
    assert guard.check(pushed(1)) is None  # and it leaves encrypted pushes' state alone
    assert guard.check(plain) is None
    assert guard.last(TITLE) == 1


def test_replay_guard_state_round_trip() -> None:
    guard = ReplayGuard()
    assert guard.to_json() == {}
    assert guard.check(pushed(41)) is None and guard.check(pushed(7, OTHER_TITLE)) is None
    doc = json.loads(json.dumps(guard.to_json()))
    assert doc == {TITLE.hex(): 41, OTHER_TITLE.hex(): 7}
    restored = ReplayGuard.from_json(doc)
    assert (restored.last(TITLE), restored.last(OTHER_TITLE)) == (41, 7)
    assert isinstance(restored.check(pushed(41)), ReplayError)  # the replay after a restart
    assert restored.check(pushed(42)) is None
    assert ReplayGuard.from_json({}).last(TITLE) is None


@pytest.mark.parametrize("doc", [[1], "x", None, {"zz": 1}, {"": 1}, {TITLE.hex(): "1"},
                                 {TITLE.hex(): -1}, {TITLE.hex(): 2 ** 32},
                                 {TITLE.hex(): True}, {TITLE.hex(): 1.5}])
def test_replay_guard_rejects_bad_state(doc: object) -> None:
    with pytest.raises(ValueError):
        ReplayGuard.from_json(doc)


def test_parser_keeps_no_replay_state() -> None:
    frame = encode_frame(LLC + encrypt_glo(AIDON, EK, AK, TITLE, 9))
    items = parse_all(frame * 3, key=EK, auth_key=AK)
    assert [type(i) for i in items] == [Notification] * 3  # a capture shows every frame
    doc = json.loads(json.dumps(items[0].to_json()))
    assert doc["invocation_counter"] == 9 and doc["system_title"] == TITLE.hex()


def test_emulator_replay_fault_resends_the_last_push_byte_for_byte() -> None:
    meter = DlmsMeter(DlmsEmulation(), key=EK, auth_key=AK)
    first = meter.push()
    meter.set_fault("replay")
    assert meter.push() == first and meter.push() == first
    assert (meter.replayed, meter.pushed, meter.counter) == (2, 1, 2)
    meter.set_fault("none")
    fresh = meter.push()
    assert fresh != first and meter.counter == 3
    guard = ReplayGuard()
    got = [parse_all(d, key=EK, auth_key=AK)[0] for d in (first, first, fresh)]
    checks = [guard.check(n) for n in got if isinstance(n, Notification)]
    assert [type(c).__name__ for c in checks] == ["NoneType", "ReplayError", "NoneType"]


@pytest.mark.parametrize("apdu", [
    bytes([0xDB, 4]) + b"EMU0" + b"\x05\x30\x00\x00\x00\x01",  # 4-byte system title
    bytes([0xDB, 8]) + TITLE + b"\x03\x30\x00\x00",  # no room for the counter
    encrypt_glo(AIDON, EK, AK, TITLE, 7) + b"\x00",  # a byte after the APDU
])
def test_bad_ciphering_headers(apdu: bytes) -> None:
    for key in (None, EK):
        [err] = parse_all(encode_frame(LLC + apdu), key=key, auth_key=AK)
        assert type(err) is FrameError


def test_bad_key_length_is_refused() -> None:
    with pytest.raises(ValueError):
        Parser(b"short")


# -- rejections -----------------------------------------------------------------------------


def test_bad_fcs() -> None:
    bad = FRAME[:-3] + bytes([FRAME[-3] ^ 1]) + FRAME[-2:]
    out = parse_all(bad + FRAME)
    assert isinstance(out[0], ChecksumError) and "FCS" in str(out[0])
    assert isinstance(out[1], Notification) and out[1].offset == len(bad)


def test_bad_hcs() -> None:
    body = bytearray(FRAME)
    body[6] ^= 0xFF  # HCS low byte
    fcs = crc16_x25(bytes(body[1:-3])).to_bytes(2, "little")
    body[-3:-1] = fcs
    [err] = parse_all(bytes(body))
    assert isinstance(err, ChecksumError) and "HCS" in str(err)


def test_garbage_and_truncation() -> None:
    out = parse_all(b"junk" + FRAME[:40] + FRAME)
    assert isinstance(out[0], FrameError) and out[0].offset == 0
    assert any(isinstance(o, Notification) for o in out)
    p = Parser()
    assert p.feed(FRAME[:40]) == []
    [err] = p.flush()
    assert isinstance(err, FrameError) and "truncated" in str(err)


def test_missing_last_segment_is_reported() -> None:
    frames = hdlc_frames(LLC + AIDON, 20)
    p = Parser()
    assert p.feed(b"".join(frames[:-1])) == []
    [err] = p.flush()
    assert isinstance(err, FrameError) and "last segment" in str(err)


@pytest.mark.parametrize("apdu", [
    b"\x0e\x00\x00\x00\x00\x00\x00",  # not a notification
    b"\x0f\x00\x00\x00\x00\x00\x02\x05",  # structure ends early
    b"\x0f\x00\x00\x00\x00\x00\x00\x00\x99",  # bytes after the body
    b"\x0f\x00\x00\x00\x00\x00\x63",  # unsupported tag
    b"\x0f\x00\x00\x00\x00\x00\x09\x85\x01",  # bad length encoding
])
def test_malformed_apdus(apdu: bytes) -> None:
    [err] = parse_all(encode_frame(LLC + apdu))
    assert isinstance(err, FrameError)


def test_emulated_meter_push_round_trips() -> None:
    for layout in ("aidon", "kamstrup"):
        meter = DlmsMeter(DlmsEmulation(layout=layout, max_info=64), key=EK, auth_key=AK)  # type: ignore[arg-type]
        out = parse_all(meter.push(), key=EK, auth_key=AK)
        assert len(out) == 1 and isinstance(out[0], Notification)
        assert values(out[0])["power_import"] == (1122.0, "W")


# -- bare APDUs (captures without HDLC) -------------------------------------------------------


def test_bare_apdu_stream() -> None:
    ciphered = encrypt_glo(KAMSTRUP, EK, AK, TITLE, 3)
    data = AIDON + ciphered + LLC + AIDON
    out = parse_all(data, key=EK, auth_key=AK, framing="apdu")
    assert [type(o) for o in out] == [Notification] * 3
    assert [o.offset for o in out] == [0, len(AIDON), len(AIDON) + len(ciphered)]
    assert isinstance(out[1], Notification) and out[1].encrypted
    assert out[1].list_id == "Kamstrup_V0001"
    assert values(out[2]) == values(out[0])  # type: ignore[arg-type]


def test_bare_apdus_without_key() -> None:
    out = parse_all(AIDON + encrypt_glo(AIDON, EK, AK, TITLE, 3), framing="apdu")
    assert [type(o) for o in out] == [Notification, CipheredApdu]


@pytest.mark.parametrize(("data", "framing"), [
    (FRAME, "hdlc"), (AIDON, "apdu"), (encrypt_glo(AIDON, EK, AK, TITLE, 3), "apdu"),
    (LLC + AIDON, "apdu"), (b"junk" + FRAME, "hdlc"), (b"", "auto"),
])
def test_auto_framing_follows_the_first_byte(data: bytes, framing: str) -> None:
    p = Parser(EK, AK, framing="auto")
    out = p.feed(data) + p.flush()
    assert p.framing == framing
    if data:
        assert isinstance(out[-1], Notification)


def test_hdlc_framing_does_not_take_bare_apdus() -> None:
    [err] = parse_all(AIDON)
    assert isinstance(err, FrameError) and "outside HDLC frames" in str(err)


def test_junk_between_bare_apdus_is_reported_once() -> None:
    out = parse_all(AIDON + b"\x00\x01\x02" + AIDON, framing="apdu")
    assert [type(o) for o in out] == [Notification, FrameError, Notification]
    assert out[1].offset == len(AIDON) and "3 bytes outside APDUs" in str(out[1])
    assert out[2].offset == len(AIDON) + 3


@pytest.mark.parametrize(("data", "words"), [
    (b"\x0f\x00\x00\x00\x00\x00\x63" + AIDON, "unsupported data tag"),
    (b"\xe6\xe7\x00\x99" + AIDON, "not a DataNotification"),
    (b"\x0f\x00\x00\x00\x00\x00\x09\x85\x01" + AIDON, "bad length encoding"),
])
def test_bad_bare_apdu_then_resync(data: bytes, words: str) -> None:
    out = parse_all(data, framing="apdu")
    assert isinstance(out[0], FrameError) and words in str(out[0]) and out[0].offset == 0
    assert isinstance(out[-1], Notification) and out[-1].offset == len(data) - len(AIDON)


def test_truncated_bare_apdu() -> None:
    p = Parser(framing="apdu")
    assert p.feed(AIDON[:-1]) == []
    [err] = p.flush()
    assert isinstance(err, FrameError) and "truncated APDU" in str(err) and err.offset == 0


def test_bare_apdu_too_long() -> None:
    huge = b"\x0f\x00\x00\x00\x00\x00\x09\x83\x01\x00\x00"  # a 64 KiB octet-string
    p = Parser(framing="apdu")
    assert p.feed(huge + bytes(MAX_APDU - len(huge))) == []  # still waiting
    err, *junk = p.feed(bytes(10)) + p.flush()
    assert isinstance(err, FrameError) and "longer than" in str(err) and err.offset == 0
    assert junk[0].offset == 1  # the rest is not an APDU: junk, reported in runs
    assert all(isinstance(j, FrameError) and "outside APDUs" in str(j) for j in junk)


def test_unknown_framing_is_refused() -> None:
    with pytest.raises(ValueError):
        Parser(framing="wmbus")  # type: ignore[arg-type]


# -- properties -----------------------------------------------------------------------------

pieces = st.lists(st.one_of(st.binary(max_size=30), st.just(FRAME), st.just(FRAME[:25]),
                            st.just(b"\x7e"), st.just(b"\x7e\xa0"),
                            st.sampled_from(hdlc_frames(LLC + AIDON, 30))), max_size=8)


@settings(max_examples=300)
@given(pieces)
def test_any_bytes_decode_or_reject(parts: list[bytes]) -> None:
    for o in parse_all(b"".join(parts), key=EK, auth_key=AK):
        if not isinstance(o, ProtocolError):
            json.dumps(o.to_json())


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_any_apdu_decodes_or_rejects(apdu: bytes) -> None:
    out = decode_apdu(b"\x0f" + apdu)
    assert isinstance(out, Notification | ProtocolError)


@settings(max_examples=300)
@given(pieces)
def test_whole_and_byte_by_byte_agree(parts: list[bytes]) -> None:
    data = b"".join(parts)
    p = Parser()
    split: list[Frame | ProtocolError] = []
    for i in range(len(data)):
        split += p.feed(data[i:i + 1])
    split += p.flush()
    assert summary(parse_all(data)) == summary(split)


apdu_pieces = st.lists(st.one_of(
    st.binary(max_size=20), st.just(AIDON), st.just(KAMSTRUP), st.just(AIDON[:30]),
    st.just(LLC + AIDON), st.just(encrypt_glo(AIDON, EK, AK, TITLE, 5)),
    st.just(encrypt_glo(AIDON, bytes(16), AK, TITLE, 5)),
    st.sampled_from([b"\x0f", b"\xdb", b"\xe6", b"\xe6\xe7\x00", b"\x0f\x00\x00\x00\x00\x00"]),
), max_size=8)


@settings(max_examples=300)
@given(apdu_pieces, st.sampled_from([None, EK]))
def test_bare_apdus_any_bytes_decode_or_reject_whole_or_byte_by_byte(
        parts: list[bytes], key: bytes | None) -> None:
    data = b"".join(parts)
    whole = parse_all(data, key=key, auth_key=AK, framing="auto")
    p = Parser(key, AK, framing="auto")
    split: list[Frame | ProtocolError] = []
    for i in range(len(data)):
        split += p.feed(data[i:i + 1])
    split += p.flush()
    assert summary(whole) == summary(split)
    for o in whole:
        assert isinstance(o, Notification | CipheredApdu | HdlcFrame | ProtocolError)
