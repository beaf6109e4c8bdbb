"""DSMR P1 telegram parser: framing, CRC, OBIS mapping, timestamps, rejections."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.cli.decode import run_decode
from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError
from edge_agent.devices.dsmr.emulator import (
    DsmrEmulation,
    DsmrMeter,
    encode_telegram,
    format_timestamp,
)
from edge_agent.protocols.dsmr import JUNK_REPORT, Parser, Telegram, crc16_arc, parse_timestamp

LINES = [
    "1-3:0.2.8(50)",
    "0-0:1.0.0(200426223325S)",
    "0-0:96.1.1(4530303434303037333832323436303139)",
    "1-0:1.8.1(002130.115*kWh)",
    "1-0:1.8.2(000245.467*kWh)",
    "1-0:2.8.1(000001.000*kWh)",
    "0-0:96.14.0(0001)",
    "1-0:1.7.0(00.111*kW)",
    "1-0:32.7.0(229.9*V)",
    "1-0:31.7.0(001*A)",
    "1-0:21.7.0(00.056*kW)",
    "0-1:24.1.0(003)",
    "0-1:24.2.1(200426223001S)(00246.138*m3)",
    "0-2:24.1.0(007)",
    "0-2:24.2.1(200426220000S)(00012.500*m3)",
]
GOOD = encode_telegram("ISK5\\2M550T-1012", LINES)


def parse_all(data: bytes, **kw: object) -> list[Telegram | ProtocolError]:
    p = Parser(**kw)  # type: ignore[arg-type]
    return p.feed(data) + p.flush()


def summary(items: list[Telegram | ProtocolError]) -> list[object]:
    return [(type(i).__name__, str(i), i.offset) if isinstance(i, ProtocolError) else i
            for i in items]


def values(t: Telegram) -> dict[str, tuple[object, str | None]]:
    return {m.name: (m.value, m.unit) for m in t.measurements}


def test_crc16_arc_check_value() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D
    assert crc16_arc(b"") == 0


def test_good_telegram_decodes_with_scaled_units() -> None:
    [t] = parse_all(GOOD)
    assert isinstance(t, Telegram)
    assert t.header == "ISK5\\2M550T-1012" and t.manufacturer == "ISK"
    assert t.version == "50"
    assert t.crc == crc16_arc(GOOD[: GOOD.index(b"!") + 1])
    v = values(t)
    assert v["energy_import_t1"] == (2130115.0, "Wh")
    assert v["energy_import_t2"] == (245467.0, "Wh")
    assert v["energy_export_t1"] == (1000.0, "Wh")
    assert v["power_import"] == (111.0, "W")
    assert v["voltage_l1"] == (229.9, "V")
    assert v["current_l1"] == (1.0, "A")
    assert v["power_import_l1"] == (56.0, "W")
    assert v["tariff"] == (1, None)
    assert v["equipment_id"] == ("E0044007382246019", None)
    assert v["mbus1_gas_volume"] == (246.138, "m3")
    assert v["mbus2_water_volume"] == (12.5, "m3")


def test_timestamps_are_cet_cest_by_flag() -> None:
    [t] = parse_all(GOOD)
    assert isinstance(t, Telegram)
    # 2020-04-26 22:33:25 CEST = 20:33:25 UTC
    assert t.timestamp == datetime(2020, 4, 26, 20, 33, 25, tzinfo=UTC).timestamp()
    gas = next(m for m in t.measurements if m.name == "mbus1_gas_volume")
    assert gas.time == datetime(2020, 4, 26, 20, 30, 1, tzinfo=UTC).timestamp()
    power = next(m for m in t.measurements if m.name == "power_import")
    assert power.time == t.timestamp


@pytest.mark.parametrize(("text", "utc"), [
    ("161113205757W", datetime(2016, 11, 13, 19, 57, 57, tzinfo=UTC)),
    ("200426223325S", datetime(2020, 4, 26, 20, 33, 25, tzinfo=UTC)),
    ("200115120000", datetime(2020, 1, 15, 11, 0, 0, tzinfo=UTC)),  # no flag: EU rules
    ("200715120000", datetime(2020, 7, 15, 10, 0, 0, tzinfo=UTC)),
])
def test_parse_timestamp(text: str, utc: datetime) -> None:
    assert parse_timestamp(text) == utc.timestamp()


@pytest.mark.parametrize("text", ["201332000000W", "200230000000S", "20010100000X", "",
                                  "abcdefghijklW", "200101250000W"])
def test_parse_timestamp_rejects_invalid(text: str) -> None:
    assert parse_timestamp(text) is None


@given(st.integers(min_value=946_684_800, max_value=4_000_000_000))
def test_format_timestamp_round_trips(epoch: int) -> None:
    assert parse_timestamp(format_timestamp(epoch)) == float(epoch)


def test_unpadded_crc_is_accepted() -> None:
    body = b"/NWA-WARMTELINK\r\n\r\n0-0:96.13.0()\r\n!"
    crc = crc16_arc(body)
    telegram = body + f"{crc:X}\r\n".encode()
    out = parse_all(telegram)
    assert len(out) == 1 and isinstance(out[0], Telegram)


def test_dsmr22_without_crc_and_gas_continuation_line() -> None:
    telegram = encode_telegram("ISk5\\2MT382-1004", [
        "1-0:1.8.1(00001.001*kWh)",
        "0-0:17.0.0(0999.00*kW)",
        "0-1:24.1.0(3)",
        "0-1:24.3.0(161107190000)(00)(60)(1)(0-1:24.2.1)(m3)",
        "(00001.001)",
    ], with_crc=False)
    [t] = parse_all(telegram)
    assert isinstance(t, Telegram) and t.crc is None and t.timestamp is None
    v = values(t)
    assert v["energy_import_t1"] == (1001.0, "Wh")
    assert v["power_limit"] == (999000.0, "W")
    assert v["mbus1_gas_volume"] == (1.001, "m3")
    gas = next(m for m in t.measurements if m.name == "mbus1_gas_volume")
    assert gas.time == datetime(2016, 11, 7, 18, 0, tzinfo=UTC).timestamp()


def test_dsmr3_limit_in_amps_is_a_current_limit() -> None:
    [t] = parse_all(encode_telegram("ISk5\\2MT382-1000", ["0-0:17.0.0(016*A)"],
                                    with_crc=False))
    assert isinstance(t, Telegram)
    assert values(t) == {"current_limit": (16.0, "A")}


def test_fluvius_peak_demand_has_its_own_time_and_esmr_star_suffix() -> None:
    [t] = parse_all(encode_telegram("FLU5\\253769484_A", [
        "0-0:96.1.4(50217)",
        "1-0:1.4.0(02.351*kW)",
        "1-0:1.6.0(200509134558S)(02.589*kW)",
        "1-0:1.8.0*255(00052185.7825309*kWh)",
        "1-0:1.8.0*01(00000001.0*kWh)",  # a billing-period value: not the current one
    ]))
    assert isinstance(t, Telegram)
    v = values(t)
    assert v["fluvius_version"] == ("50217", None)
    assert v["power_import_avg"] == (2351.0, "W")
    assert v["power_import_max"] == (2589.0, "W")
    assert v["energy_import"] == (52185782.5309, "Wh")
    peak = next(m for m in t.measurements if m.name == "power_import_max")
    assert peak.time == datetime(2020, 5, 9, 11, 45, 58, tzinfo=UTC).timestamp()
    assert t.version == "50217"


def test_values_with_a_wrong_or_missing_unit_are_not_measurements() -> None:
    [t] = parse_all(encode_telegram("XXX5test", [
        "1-0:1.7.0(00.111)",  # no unit: DSMR fixes kW for 1.7.0
        "1-0:32.7.0(229.9*A)",  # voltage in amperes
        "1-0:31.7.0(abc*A)",
        "0-1:24.2.1(700101010000W)(00000000)",  # unconnected M-Bus channel
        "1-0:13.7.0(0.98)",  # power factor has no unit
        "0-0:17.0.0(016)",  # limit without unit: kW (DSMR 4) or A (DSMR 3)?
    ]))
    assert isinstance(t, Telegram)
    assert values(t) == {"power_factor": (0.98, "/"), "power_import": (111.0, "W")}


def test_unitless_values_take_the_unit_dsmr_fixes_for_the_code() -> None:
    [t] = parse_all(encode_telegram("ISk5\\2MIE5T-200", [
        "1-0:1.8.1(002130.115)", "1-0:32.7.0(229.9)", "1-0:31.7.0(001)",
        "1-0:3.8.0(000010.000)", "1-0:14.7.0(50.0)",
    ]))
    assert isinstance(t, Telegram)
    assert values(t) == {"energy_import_t1": (2130115.0, "Wh"), "voltage_l1": (229.9, "V"),
                         "current_l1": (1.0, "A"), "reactive_energy_import": (10000.0, "varh"),
                         "frequency": (50.0, "Hz")}


def test_short_identification_line_and_lower_case_season_flags() -> None:
    [t] = parse_all(encode_telegram("KAM5", ["0-0:1.0.0(200426223325s)",
                                             "1-0:1.8.0(000001.000*kWh)"]))
    assert isinstance(t, Telegram) and t.manufacturer == "KAM"
    assert t.timestamp == datetime(2020, 4, 26, 20, 33, 25, tzinfo=UTC).timestamp()
    assert parse_timestamp("201226120000w") == \
        datetime(2020, 12, 26, 11, 0, 0, tzinfo=UTC).timestamp()
    [bad] = parse_all(encode_telegram("KA5", []))
    assert isinstance(bad, FrameError)


def test_absolute_active_power() -> None:
    [t] = parse_all(encode_telegram("ESY5Q3D", ["1-0:15.7.0(001.234*kW)"]))
    assert isinstance(t, Telegram) and values(t) == {"power_absolute": (1234.0, "W")}


@pytest.mark.parametrize("line", ["7-0:23.1.0(00123.456*m3)(12-11-07 10:00:00)",
                                  "7-0:23.1.0(12-11-07 10:00:00)(00123.456)"])
def test_ace4000_hourly_gas_line(line: str) -> None:
    [t] = parse_all(encode_telegram("ACE4ACE4000", [line]))
    assert isinstance(t, Telegram)
    [m] = t.measurements
    assert (m.name, m.value, m.unit) == ("gas_volume", 123.456, "m3")
    assert m.time == datetime(2012, 11, 7, 9, 0, 0, tzinfo=UTC).timestamp()  # CET


@pytest.mark.parametrize("end", [b"", b"\r", b" "])
def test_complete_telegram_at_end_of_input_without_line_end(end: bytes) -> None:
    data = GOOD.rstrip(b"\r\n") + end
    p = Parser()
    assert p.feed(data) == []
    [t] = p.flush()
    assert isinstance(t, Telegram) and t.crc is not None
    assert values(t) == values(parse_all(GOOD)[0])  # type: ignore[arg-type]
    v22 = b"/ISk5\\2MT382-1004\r\n\r\n1-0:1.8.1(00001.001*kWh)\r\n!"
    [t22] = parse_all(v22)
    assert isinstance(t22, Telegram) and t22.crc is None
    [cut] = parse_all(GOOD.rstrip(b"\r\n")[:-1])  # CRC cut short: rejected, not guessed
    assert isinstance(cut, ChecksumError)


def test_selection() -> None:
    [t] = parse_all(GOOD)
    assert isinstance(t, Telegram)
    sel = t.select(frozenset({"1-0:1.7.0", "0-1:24.2.1"}))
    assert [m.name for m in sel] == ["power_import", "mbus1_gas_volume"]
    assert len(t.select(None)) == len(t.measurements)


def test_to_json_is_json() -> None:
    [t] = parse_all(GOOD)
    assert isinstance(t, Telegram)
    doc = json.loads(json.dumps(t.to_json()))
    assert doc["type"] == "dsmr-telegram"
    assert doc["crc"] == f"{t.crc:04X}"
    assert {"obis": "1-0:1.7.0", "values": ["00.111*kW"]} in doc["objects"]
    assert any(m["name"] == "power_import" and m["value"] == 111.0
               for m in doc["measurements"])


def test_emulated_meter_telegram_round_trips() -> None:
    meter = DsmrMeter(DsmrEmulation(power_w=1234.0, voltage_v=231.5, gas_m3=12.5))
    [t] = parse_all(meter.telegram(1_700_000_000.0))
    assert isinstance(t, Telegram)
    v = values(t)
    assert v["power_import"] == (1234.0, "W")
    assert v["voltage_l2"] == (231.5, "V")
    assert v["mbus1_gas_volume"] == (12.5, "m3")
    assert t.timestamp == 1_700_000_000.0


# -- rejections -----------------------------------------------------------------------------


def test_bad_crc_is_checksum_error_with_offset() -> None:
    bang = GOOD.rindex(b"!")
    bad = GOOD[: bang + 1] + b"0000\r\n"
    out = parse_all(b"\r\n" + bad + GOOD)
    assert isinstance(out[0], ChecksumError) and out[0].offset == 2
    assert isinstance(out[1], Telegram) and out[1].offset == 2 + len(bad)


def test_truncated_telegram_then_a_good_one() -> None:
    out = parse_all(GOOD[:100] + GOOD)
    assert isinstance(out[0], FrameError) and "truncated" in str(out[0])
    assert out[0].offset == 0
    assert isinstance(out[1], Telegram) and out[1].offset == 100


def test_truncated_at_end_of_input_is_reported_by_flush() -> None:
    p = Parser()
    assert p.feed(GOOD[:50]) == []
    [err] = p.flush()
    assert isinstance(err, FrameError) and err.offset == 0


def test_garbage_between_telegrams_is_one_error_per_run() -> None:
    out = parse_all(b"\xff\xfe\x00junk" + GOOD + b"\r\n\r\n" + b"more" + GOOD)
    kinds = [type(o).__name__ for o in out]
    assert kinds == ["FrameError", "Telegram", "FrameError", "Telegram"]
    assert out[0].offset == 0
    assert isinstance(out[2], FrameError) and out[2].offset == 7 + len(GOOD) + 4
    assert "4 bytes of garbage" in str(out[2])


def test_long_garbage_run_is_reported_without_waiting_for_a_telegram() -> None:
    p = Parser()
    out = p.feed(b"\xff" * (JUNK_REPORT * 2 + 10))
    assert [e.offset for e in out if isinstance(e, FrameError)] == [0, JUNK_REPORT]
    [tail] = p.flush()
    assert isinstance(tail, FrameError) and tail.offset == 2 * JUNK_REPORT


def test_whitespace_between_telegrams_is_not_an_error() -> None:
    out = parse_all(b"\r\n\x00 " + GOOD + b"\r\n")
    assert [type(o).__name__ for o in out] == ["Telegram"]


def test_malformed_data_line() -> None:
    out = parse_all(encode_telegram("XXX5test", ["1-0:1.8.1(001.000*kWh", "x"]))
    assert len(out) == 1 and isinstance(out[0], FrameError)
    assert "malformed data line" in str(out[0])


def test_bad_identification_line() -> None:
    out = parse_all(encode_telegram("12", ["1-0:1.8.1(001.000*kWh)"]))
    assert isinstance(out[0], FrameError) and "identification" in str(out[0])


def test_malformed_crc_line() -> None:
    body = GOOD[: GOOD.rindex(b"!") + 1]
    out = parse_all(body + b"XYZ\r\n" + GOOD)
    assert isinstance(out[0], FrameError) and "CRC line" in str(out[0])
    assert isinstance(out[-1], Telegram)


def test_missing_crc_rejected_when_required() -> None:
    no_crc = encode_telegram("XXX5test", ["1-0:1.8.1(001.000*kWh)"], with_crc=False)
    out = parse_all(no_crc, require_crc=True)
    assert isinstance(out[0], FrameError) and "without CRC" in str(out[0])
    assert isinstance(parse_all(no_crc)[0], Telegram)


def test_oversized_telegram_is_rejected_and_parser_resyncs() -> None:
    big = b"/XXX5big\r\n\r\n" + b"1-0:1.8.1(001.000*kWh)\r\n" * 100
    p = Parser(max_telegram=512)
    out = p.feed(big) + p.feed(GOOD) + p.flush()
    assert isinstance(out[0], FrameError) and "longer than" in str(out[0])
    assert isinstance(out[-1], Telegram)


# -- properties -----------------------------------------------------------------------------

MEANT = encode_telegram("KAM5", [
    "0-0:1.0.0(200426223325s)", "1-0:15.7.0(001.234*kW)", "1-0:32.7.0(229.9)",
    "7-0:23.1.0(00123.456*m3)(12-11-07 10:00:00)"])
chunks = st.lists(st.one_of(st.binary(max_size=40), st.just(GOOD), st.just(GOOD[:70]),
                            st.just(MEANT), st.just(MEANT.rstrip(b"\r\n")),
                            st.just(GOOD.rstrip(b"\r\n")), st.just(b"!"), st.just(b"/"),
                            st.just(b"\r\n")), max_size=8)


@settings(max_examples=300)
@given(chunks)
def test_any_bytes_decode_or_reject(parts: list[bytes]) -> None:
    data = b"".join(parts)
    out = parse_all(data, max_telegram=1024)
    assert all(isinstance(o, Telegram | ProtocolError) for o in out)
    for o in out:
        if isinstance(o, Telegram):
            json.dumps(o.to_json())


@settings(max_examples=300)
@given(chunks)
def test_whole_and_byte_by_byte_agree(parts: list[bytes]) -> None:
    data = b"".join(parts)
    whole = parse_all(data, max_telegram=1024)
    p = Parser(max_telegram=1024)
    split: list[Telegram | ProtocolError] = []
    for i in range(len(data)):
        split += p.feed(data[i:i + 1])
    split += p.flush()
    assert summary(whole) == summary(split)


def test_bang_before_the_next_slash_is_judged_the_same_whole_and_byte_by_byte() -> None:
    """Regression (found by the property above): ``/!`` then a telegram. Seen whole, the
    second ``/`` was visible and the first telegram start was thrown away as garbage; byte by
    byte the ``!`` ended it first. The look-ahead now stops at the first ``!`` or line end."""
    data = b"/!" + b"\x00" * 8 + b"/ISK5\\2M550T-1012\r\n\r\n1-0:1.8.1(002130.115*kWh)\r\n!"
    whole = parse_all(data, max_telegram=1024)
    p = Parser(max_telegram=1024)
    split: list[Telegram | ProtocolError] = []
    for i in range(len(data)):
        split += p.feed(data[i:i + 1])
    split += p.flush()
    assert summary(whole) == summary(split)
    assert "malformed CRC line after '!'" in str(whole[0])


# -- encrypted P1 (Luxembourg Smarty) -------------------------------------------------------

SMARTY_EK = bytes(range(16))
SMARTY_AK = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
SMARTY_TITLE = b"SAG\x10\x00\x00\x00\x01"


def sealed(telegram: bytes, counter: int, key: bytes = SMARTY_EK) -> bytes:
    from edge_agent.protocols.dlms import encrypt_glo
    return encrypt_glo(telegram, key, SMARTY_AK, SMARTY_TITLE, counter)


def test_encrypted_p1_decrypts_to_the_telegram_whole_and_byte_by_byte() -> None:
    from edge_agent.protocols.dsmr_encrypted import EncryptedParser
    data = sealed(GOOD, 1) + sealed(GOOD, 2)
    whole = EncryptedParser(SMARTY_EK, SMARTY_AK)
    out = whole.feed(data) + whole.flush()
    assert [type(o) for o in out] == [Telegram, Telegram]
    assert isinstance(out[0], Telegram) and values(out[0]) == values(parse_all(GOOD)[0])  # type: ignore[arg-type]
    assert whole.sealed[out[1].offset].invocation_counter == 2
    single = EncryptedParser(SMARTY_EK, SMARTY_AK)
    items: list[Telegram | ProtocolError] = []
    for i in range(len(data)):
        items += single.feed(data[i:i + 1])
    assert [type(o) for o in items + single.flush()] == [Telegram, Telegram]


def test_encrypted_p1_wrong_key_bad_crc_and_garbage_are_rejected() -> None:
    from edge_agent.core.errors import DecryptionError
    from edge_agent.protocols.dsmr_encrypted import EncryptedParser
    bad_crc = GOOD.replace(b"229.9", b"229.8")  # the CRC no longer matches the content
    p = EncryptedParser(SMARTY_EK, SMARTY_AK)
    out = p.feed(sealed(GOOD, 1, key=bytes(16)) + sealed(bad_crc, 2) + b"junk") + p.flush()
    assert [type(o) for o in out] == [DecryptionError, ChecksumError, FrameError]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_encrypted_p1_any_bytes_are_decoded_or_rejected(data: bytes) -> None:
    from edge_agent.protocols.dsmr_encrypted import EncryptedParser
    p = EncryptedParser(SMARTY_EK, SMARTY_AK)
    for item in p.feed(b"\xdb" + data) + p.flush():
        assert isinstance(item, Telegram | ProtocolError)


def test_decode_cli_decrypts_p1_with_key_and_auth_key_files(tmp_path: Path) -> None:
    capture = tmp_path / "smarty.hex"
    capture.write_text("# two encrypted telegrams\n" + (sealed(GOOD, 7) + sealed(GOOD, 8)).hex())
    ek, ak = tmp_path / "ek", tmp_path / "ak"
    ek.write_text(f"EK={SMARTY_EK.hex()}\n")
    ak.write_text(f"AK={SMARTY_AK.hex()}\n")
    ek.chmod(0o600)
    ak.chmod(0o600)
    out = io.StringIO()
    assert run_decode("dsmr-p1", capture, out, key_file=ek, auth_key_file=ak) == 0
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["frame"]["type"] for x in lines] == ["dsmr-telegram"] * 2
    m = {r["name"]: (r["value"], r["unit"]) for r in lines[0]["frame"]["measurements"]}
    assert m["power_import"] == (111.0, "W")
    out = io.StringIO()  # without the AK the tag cannot be checked: rejected, exit 1
    assert run_decode("dsmr-p1", capture, out, key_file=ek) == 1
    assert {json.loads(x)["error"] for x in out.getvalue().splitlines()} == {"decryption"}
    assert run_decode("dsmr-p1", capture, io.StringIO(), auth_key_file=ak) == 2


def test_real_smarty_frame_decrypts_to_its_telegram() -> None:
    from edge_agent.cli.capture import load_capture
    from edge_agent.protocols.dsmr_encrypted import EncryptedParser
    path = Path(__file__).parent / "captures" / "nexxtlab_smarty.hex"
    data = load_capture(path.read_bytes())
    ek = bytes.fromhex("D491470F47126332B07D1923B3504188")  # published with the frame
    p = EncryptedParser(ek, SMARTY_AK)
    whole = p.feed(data) + p.flush()
    [t] = whole
    assert isinstance(t, Telegram) and t.header == "Lux5\\253663629_D" and t.crc == 0xCFDE
    assert t.timestamp == datetime(2018, 1, 30, 9, 21, 22, tzinfo=UTC).timestamp()
    v = values(t)
    assert v["energy_import"] == (6695.0, "Wh") and v["energy_export"] == (25.0, "Wh")
    assert v["reactive_power_export"] == (7.0, "var")  # unit-less: kvar, as DSMR fixes it
    assert "power_limit" not in v  # 0-0:17.0.0 without unit: kW or A? not published
    assert p.sealed[0].invocation_counter == 0x0005A8E3
    single = EncryptedParser(ek, SMARTY_AK)
    items: list[Telegram | ProtocolError] = []
    for i in range(len(data)):
        items += single.feed(data[i:i + 1])
    assert [type(o) for o in items + single.flush()] == [Telegram]
    wrong = EncryptedParser(bytes(16), SMARTY_AK)
    [err] = wrong.feed(data) + wrong.flush()
    assert err.reason == "decryption"  # type: ignore[union-attr]
