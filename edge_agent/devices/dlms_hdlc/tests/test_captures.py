"""Real HAN pushes from other projects' test suites (captures/, first line names the source).

Each decodes to the values its meter's documentation gives, or is rejected as ``layout``
when its scalers are not known; never a number at the wrong scale.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.cli.capture import load_capture
from edge_agent.core.clock import SystemClock
from edge_agent.core.errors import ProtocolError
from edge_agent.core.model import Channel, Priority
from edge_agent.devices.base import SensorContext, SensorSpec
from edge_agent.devices.dlms_hdlc.driver import DlmsSensor
from edge_agent.devices.dlms_hdlc.options import DlmsOptions
from edge_agent.hal.emulated import EmulatedHardware
from edge_agent.protocols import dlms
from edge_agent.protocols.dlms.axdr import ber_length
from edge_agent.protocols.obis import ObisCode

CAPTURES = Path(__file__).parent / "captures"


def capture(name: str) -> bytes:
    return load_capture((CAPTURES / name).read_bytes())


def decode(data: bytes) -> list[dlms.Frame | ProtocolError]:
    p = dlms.Parser(framing="auto")
    return p.feed(data) + p.flush()


def values(name: str) -> dict[str, tuple[object, str | None]]:
    [n] = decode(capture(name))
    assert isinstance(n, dlms.Notification), n
    return {m.name: (m.value, m.unit) for m in n.measurements}


def test_kaifa_swedish_list_without_scalers_uses_the_model_table() -> None:
    v = values("amshan_kaifa_se_list.hex")
    assert v["current_l1"] == (6.781, "A")  # sent as 6781 (mA), no scaler-unit in the push
    assert v["current_l2"] == (0.79, "A") and v["current_l3"] == (6.125, "A")
    assert v["voltage_l1"] == (232.2, "V") and v["voltage_l3"] == (228.9, "V")  # 0.1 V
    assert v["power_import"] == (2816.0, "W") and v["reactive_power_export"] == (66.0, "var")
    assert v["energy_import"] == (4786979.0, "Wh")
    assert v["equipment_id"] == ("7340734073407340", None)


@pytest.mark.parametrize(("name", "expect"), [
    ("amshan_kaifa_no_list_2.hex", {"power_import": (9745.0, "W"),
                                    "current_l1": (33.813, "A"), "voltage_l1": (216.8, "V"),
                                    "voltage_l2": (0.0, "V"), "voltage_l3": (218.8, "V")}),
    ("amshan_kaifa_no_list_3.hex", {"power_import": (4904.0, "W"),
                                    "current_l3": (9.525, "A"), "voltage_l3": (220.5, "V"),
                                    "energy_import": (79591144.0, "Wh"),
                                    "reactive_energy_export": (3210932.0, "varh")}),
])
def test_kaifa_norwegian_positional_lists(name: str, expect: dict[str, object]) -> None:
    v = values(name)
    for key, want in expect.items():
        assert v[key] == want, key


def test_kaifa_list_1_without_list_id_is_a_layout_rejection() -> None:
    [err] = decode(capture("amshan_kaifa_no_list_1.hex"))
    assert isinstance(err, dlms.LayoutError) and err.reason == "layout"


@pytest.mark.parametrize(("name", "expect"), [
    ("amshan_kamstrup_se_list_real_sample.hex", {"current_l1": (2.37, "A"),
                                                 "voltage_l3": (236.0, "V")}),
    ("amshan_kamstrup_no_list_2_single_phase_real_sample.hex",
     {"current_l1": (45.12, "A"), "energy_import": (77452500.0, "Wh"),
      "power_import": (10050.0, "W")}),
    ("amshan_kamstrup_no_list_1_single_phase_real_sample.hex",
     {"current_l1": (8.96, "A"), "power_import": (1896.0, "W")}),
    ("amshan_aidon_no_list_3.hex", {"current_l1": (1.3, "A"), "voltage_l1": (227.6, "V"),
                                    "energy_import": (22721380.0, "Wh")}),
    ("amshan_aidon_se_list.hex", {"current_l2": (7.5, "A"), "voltage_l2": (249.9, "V")}),
])
def test_kamstrup_and_aidon_captures(name: str, expect: dict[str, object]) -> None:
    v = values(name)
    for key, want in expect.items():
        assert v[key] == want, key


def test_every_capture_decodes_or_is_rejected_alike_whole_and_byte_by_byte() -> None:
    for path in sorted(CAPTURES.iterdir()):
        data = load_capture(path.read_bytes())
        whole = decode(data)
        p = dlms.Parser(framing="auto")
        single: list[dlms.Frame | ProtocolError] = []
        for i in range(len(data)):
            single += p.feed(data[i:i + 1])
        single += p.flush()
        assert [type(x) for x in whole] == [type(x) for x in single], path.name
        assert whole, path.name


# -- a list whose scalers are not known is rejected, and the driver publishes nothing --------

def _octets(raw: bytes) -> bytes:
    return b"\x09" + ber_length(len(raw)) + raw


def _obis(code: str) -> bytes:
    c = ObisCode.parse(code)
    assert c is not None
    return _octets(bytes([c.a, c.b, c.c, c.d, c.e, c.f]))


def _u32(v: int) -> bytes:
    return b"\x06" + v.to_bytes(4, "big")


def scalerless(list_id: bytes | None) -> bytes:
    """A flat push (OBIS, value, ...) with no scaler-unit: an L1 current of 6781 (mA)."""
    items = ([_obis("1-0:0.2.129"), _octets(list_id)] if list_id else []) + [
        _obis("1-0:1.7.0"), _u32(2816), _obis("1-0:31.7.0"), _u32(6781)]
    body = b"\x02" + bytes([len(items)]) + b"".join(items)
    return b"\xe6\xe7\x00\x0f\x40\x00\x00\x00\x00" + body


@pytest.mark.parametrize("list_id", [None, b"XYZ_042"])
def test_scalerless_list_of_unknown_meter_is_rejected_as_layout(list_id: bytes | None) -> None:
    [err] = decode(scalerless(list_id))
    assert isinstance(err, dlms.LayoutError) and err.reason == "layout"
    assert "has no scaler-unit" in str(err)


def test_driver_publishes_nothing_from_a_scalerless_list_and_counts_layout() -> None:
    hw = EmulatedHardware(SystemClock())
    try:
        ctx = SensorContext(hw, SystemClock(), logging.getLogger("test"), None)
        spec = SensorSpec("m", "dlms-hdlc", Channel.OT, Priority.NORMAL, 0.0)
        sensor = DlmsSensor(spec, ctx, DlmsOptions())
        frame = dlms.encode_frame(scalerless(b"XYZ_042"))
        assert list(sensor.feed(frame)) == []
        assert sensor.stats.errors["layout"] == 1
        kaifa = dlms.encode_frame(scalerless(b"KFM_001"))
        samples = {s.name: s.value for s in sensor.feed(kaifa)}
        assert samples["current_l1"] == 6.781
    finally:
        hw.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 2**32 - 1).map(_u32),
                          st.sampled_from([_obis("1-0:31.7.0"), _obis("1-0:32.7.0"),
                                           _obis("1-0:1.8.0"), _obis("1-0:0.2.129")]),
                          st.sampled_from([b"KFM_001", b"Kamstrup_V0001", b"?"]).map(_octets),
                          st.binary(max_size=20).map(_octets)), max_size=20))
def test_any_flat_or_positional_list_is_decoded_or_rejected(items: list[bytes]) -> None:
    body = b"\x02" + bytes([len(items)]) + b"".join(items)
    apdu = b"\xe6\xe7\x00\x0f\x40\x00\x00\x00\x00" + body
    whole = decode(apdu)
    p = dlms.Parser(framing="auto")
    single: list[dlms.Frame | ProtocolError] = []
    for i in range(len(apdu)):
        single += p.feed(apdu[i:i + 1])
    single += p.flush()
    assert [type(x) for x in whole] == [type(x) for x in single]
    for item in whole:
        assert isinstance(item, dlms.Notification | ProtocolError)
        if isinstance(item, dlms.Notification):
            for m in item.measurements:  # a number only ever comes with a known scale
                if m.unit == "A":
                    assert item.list_id in dlms.MODELS


# -- Swiss VSE pushes, general block transfer (scs/smartmeter-datacollector captures) ---------


def model_values(name: str, model: str | None,
                 key: bytes | None = None) -> list[dlms.Frame | ProtocolError]:
    p = dlms.Parser(key, framing="auto", model=model)
    return p.feed(capture(name)) + p.flush()


@pytest.mark.parametrize(("name", "model", "expect"), [
    # values as the source project's own tests expect them
    ("scs_iskra_am550_unencrypted_valid_data_cfg2026.hex", "iskra-am550",
     {"power_import": (27.0, "W"), "energy_import": (15207.0, "Wh"),
      "energy_export": (8987.0, "Wh"), "voltage_l1": (234.7, "V"), "current_l1": (0.12, "A")}),
    ("scs_lg_e360_unencrypted_valid_data_cfg2026.hex", "lg-e360",
     {"power_import": (11.0, "W"), "energy_import": (21956.0, "Wh"),
      "voltage_l1": (235.7, "V"), "current_l1": (0.06, "A")}),
    ("scs_lg_e450_unencrypted_valid_data_cfg2026.hex", "lg-e450",  # block transfer
     {"power_import": (28.0, "W"), "energy_import": (482939.0, "Wh"),
      "reactive_energy_export": (344697.0, "varh"), "voltage_l2": (236.0, "V"),
      "current_l1": (0.09, "A")}),
    ("scs_lg_e450_unencrypted_valid_data1.hex", "lg-e450",
     {"power_import": (777.0, "W"), "energy_import": (25149419.0, "Wh")}),
])
def test_vse_pushes_with_the_configured_model(name: str, model: str,
                                              expect: dict[str, object]) -> None:
    [n] = model_values(name, model)
    assert isinstance(n, dlms.Notification)
    v = {m.name: (m.value, m.unit) for m in n.measurements}
    for key, want in expect.items():
        assert v[key] == want, key


@pytest.mark.parametrize("name", [
    "scs_iskra_am550_unencrypted_valid_data_cfg2026.hex",
    "scs_lg_e450_unencrypted_valid_data_cfg2026.hex",
    "scs_lg_e570_unencrypted_valid_data_cfg2026.hex",
])
def test_vse_push_without_a_model_is_a_layout_rejection(name: str) -> None:
    [err] = model_values(name, None)
    assert isinstance(err, dlms.LayoutError) and "model" in str(err)


def test_block_transfer_of_a_ciphered_push_decrypts() -> None:
    # L+G E570; the source names the key (security control 0x20: encrypted, no tag)
    key = bytes.fromhex("101112131415161718191A1B1C1D1E1F")
    [err] = model_values("scs_lg_e570_encrypted_valid_data.hex", None, key)
    assert isinstance(err, dlms.LayoutError)  # decrypted, but E570 scalers are not known
    [wrong] = model_values("scs_lg_e570_encrypted_valid_data.hex", None, bytes(16))
    assert isinstance(wrong, ProtocolError) and not isinstance(wrong, dlms.LayoutError)


def test_blocks_out_of_sequence_are_rejected_never_joined() -> None:
    out = model_values("scs_lg_e450_unencrypted_invalid_data.hex", "lg-e450")
    assert out and all(isinstance(o, ProtocolError) and o.reason == "frame" for o in out)


def _gbt(number: int, data: bytes, last: bool) -> bytes:
    return (bytes([0xE0, 0xC0 if last else 0x40]) + number.to_bytes(2, "big") + b"\x00\x00"
            + ber_length(len(data)) + data)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.binary(max_size=40), st.booleans()),
                max_size=6))
def test_any_block_sequence_is_decoded_or_rejected_alike_whole_and_byte_by_byte(
        blocks: list[tuple[int, bytes, bool]]) -> None:
    data = b"".join(dlms.encode_frame((dlms.LLC if i == 0 else b"") + _gbt(n, d, last))
                    for i, (n, d, last) in enumerate(blocks))
    whole = decode(data)
    p = dlms.Parser(framing="auto")
    single: list[dlms.Frame | ProtocolError] = []
    for i in range(len(data)):
        single += p.feed(data[i:i + 1])
    single += p.flush()
    assert [type(x) for x in whole] == [type(x) for x in single]
    assert all(isinstance(x, dlms.Notification | dlms.CipheredApdu | dlms.HdlcFrame
                          | ProtocolError) for x in whole)


# -- M-Bus-wrapped pushes (Austria: Kaifa MA309) ----------------------------------------------

TINETZ_KEY = bytes.fromhex("101112131415161718191A1B1C1D1E1F")  # published with the example


def test_mbus_wrapped_ciphered_push_decodes_to_the_documented_values() -> None:
    [n] = model_values("tinetz_kaifa_ma309_example.hex", None, TINETZ_KEY)
    assert isinstance(n, dlms.Notification) and n.encrypted
    assert n.time_text == "2021-07-19T15:46:35"
    v = {m.name: (m.value, m.unit) for m in n.measurements}
    assert v["voltage_l1"] == (230.8, "V") and v["current_l1"] == (0.0, "A")
    assert v["energy_import"] == (9108.0, "Wh") and v["reactive_energy_import"] == (96.0, "varh")
    assert v["equipment_id"] == ("1KFM0100000035", None)


def test_mbus_segments_out_of_order_or_corrupt_are_rejected() -> None:
    data = capture("tinetz_kaifa_ma309_example.hex")
    first, second = data[:256], data[256:]
    assert first[-1] == 0x16 and second[0] == 0x68
    p = dlms.Parser(TINETZ_KEY, framing="mbus")
    out = p.feed(second + first) + p.flush()
    assert [type(o).__name__ for o in out] == ["FrameError", "FrameError"]
    bad = bytearray(data)
    bad[100] ^= 1
    p = dlms.Parser(TINETZ_KEY, framing="mbus")
    out = p.feed(bytes(bad)) + p.flush()
    assert next(o.reason for o in out if isinstance(o, ProtocolError)) == "checksum"
    assert not [o for o in out if isinstance(o, dlms.Notification)]


def test_driver_reads_mbus_wrapped_pushes(tmp_path: Path) -> None:
    key_file = tmp_path / "meter.key"
    key_file.write_text(f"EK={TINETZ_KEY.hex()}\n")
    key_file.chmod(0o600)
    hw = EmulatedHardware(SystemClock())
    try:
        ctx = SensorContext(hw, SystemClock(), logging.getLogger("test"), None)
        spec = SensorSpec("m", "dlms-hdlc", Channel.OT, Priority.NORMAL, 0.0)
        options = DlmsOptions(key_file=key_file, wrapping="mbus")
        sensor = DlmsSensor(spec, ctx, options, (TINETZ_KEY, None))
        samples = {s.name: s.value for s in sensor.feed(capture("tinetz_kaifa_ma309_example.hex"))}
        assert samples["voltage_l1"] == 230.8 and samples["energy_import"] == 9108.0
    finally:
        hw.close()


def _mbus(ci: int, data: bytes) -> bytes:
    user = bytes([0x53, 0xFF, ci, 0x01, 0x67]) + data
    return bytes([0x68, len(user), len(user), 0x68]) + user + bytes([sum(user) & 0xFF, 0x16])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0x1F), st.binary(max_size=60)), max_size=5))
def test_any_mbus_segments_are_decoded_or_rejected_alike_whole_and_byte_by_byte(
        segments: list[tuple[int, bytes]]) -> None:
    data = b"".join(_mbus(ci, d) for ci, d in segments)
    p = dlms.Parser(framing="mbus")
    whole = p.feed(data) + p.flush()
    p = dlms.Parser(framing="mbus")
    single: list[dlms.Frame | ProtocolError] = []
    for i in range(len(data)):
        single += p.feed(data[i:i + 1])
    single += p.flush()
    assert [type(x) for x in whole] == [type(x) for x in single]


def test_netz_noe_example_values_follow_their_scaler_unit() -> None:
    key = bytes.fromhex("36C66639E48A8CA4D6BC8B282A793BBB")  # published with the example
    [n] = model_values("netznoe_evn_example.hex", None, key)
    assert isinstance(n, dlms.Notification) and n.time_text == "2021-09-27T09:47:15"
    v = {m.name: (m.value, m.unit) for m in n.measurements}
    assert v["energy_import"] == (12937.0, "Wh") and v["voltage_l1"] == (233.7, "V")
    assert v["power_factor"] == (1.0, "/") and v["current_l1"] == (0.0, "A")
