"""Real meter captures (../shared/samples, next to the repository) decode to their values."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge_agent.cli.decode import load_capture, run_decode
from edge_agent.core.errors import ChecksumError, DecryptionError, FrameError, ProtocolError
from edge_agent.protocols import dlms, dsmr

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="no sample captures here")


def raw(name: str) -> bytes:
    """A sample's bytes after its '# source' comment line."""
    data = (SAMPLES / name).read_bytes()
    if not data.startswith(b"#"):
        return data
    return data[data.index(b"\n") + 1:]


def hex_lines(name: str) -> list[bytes]:
    """A hex sample: one frame per non-comment line."""
    return [bytes.fromhex(line) for line in raw(name).decode("ascii").splitlines()
            if line.strip() and not line.startswith("#")]


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


# -- DSMR P1 --------------------------------------------------------------------------------


def telegrams(name: str) -> tuple[list[dsmr.Telegram], list[ProtocolError]]:
    p = dsmr.Parser()
    out = p.feed(raw(name)) + p.flush()
    return ([o for o in out if isinstance(o, dsmr.Telegram)],
            [o for o in out if isinstance(o, ProtocolError)])


def values(t: dsmr.Telegram) -> dict[str, object]:
    return {m.name: m.value for m in t.measurements}


def test_dsmr_v42_kaifa() -> None:
    [t], errors = telegrams("dsmr_ndokter-dsmr_parser_1.txt")
    assert errors == [] and t.crc == 0x6796 and t.version == "42"
    assert t.timestamp == utc(2016, 11, 13, 19, 57, 57)  # 161113205757W
    v = values(t)
    assert v["energy_import_t1"] == 1581123.0 and v["energy_import_t2"] == 1435706.0
    assert v["power_import"] == 2027.0 and v["tariff"] == 2
    assert v["current_l2"] == 6.0 and v["power_import_l2"] == 1247.0
    assert v["power_failures"] == 15 and v["long_power_failures"] == 7
    assert v["mbus1_gas_volume"] == 981.443
    gas = next(m for m in t.measurements if m.name == "mbus1_gas_volume")
    assert gas.time == utc(2016, 11, 29, 19, 0, 0)  # 161129200000W


def test_dsmr_v5() -> None:
    [t], errors = telegrams("dsmr_ndokter-dsmr_parser_2.txt")
    assert errors == [] and t.crc == 0x6EEE and t.version == "50"
    v = values(t)
    assert v["energy_import_t1"] == 4426.0 and v["energy_export_t1"] == 2444.0
    assert (v["voltage_l1"], v["voltage_l3"]) == (230.0, 229.0)
    assert (v["current_l1"], v["current_l3"]) == (0.48, 0.86)
    assert v["power_import_l3"] == 142.0
    assert v["equipment_id"] == "K8EG004046395507"
    assert v["mbus1_gas_volume"] == 0.107


def test_dsmr_v5_two_mbus_channels_summer_time() -> None:
    [t], errors = telegrams("dsmr_ndokter-dsmr_parser_3.txt")
    assert errors == []
    assert t.timestamp == utc(2020, 4, 26, 20, 33, 25)  # 200426223325S
    v = values(t)
    assert "mbus1_gas_volume" not in v  # (00000000): an unconnected channel
    assert v["mbus2_gas_volume"] == 246.138
    assert v["voltage_sags_l3"] == 192


def test_dsmr_unpadded_crc_heat_meter() -> None:
    [t], errors = telegrams("dsmr_ndokter-dsmr_parser_4.txt")
    assert errors == [] and t.crc == 0xB9F
    assert values(t)["mbus1_heat_energy"] == 240.860e9  # GJ -> J


@pytest.mark.parametrize("name", ["dsmr_ndokter-dsmr_parser_5.txt",
                                  "dsmr_ndokter-dsmr_parser_6.txt"])
def test_dsmr_fluvius(name: str) -> None:
    [t], errors = telegrams(name)
    assert errors == [] and t.version == "50217"
    v = values(t)
    assert v["fluvius_version"] == "50217"
    assert {"power_import_avg", "power_import_max", "mbus1_gas_volume",
            "mbus2_water_volume", "current_limit_l1"} <= set(v)


def test_dsmr_fluvius_values() -> None:
    [t], _ = telegrams("dsmr_ndokter-dsmr_parser_5.txt")
    v = values(t)
    assert v["energy_import_t2"] == 15758.0 and v["energy_export_t2"] == 11.0
    assert v["power_import_avg"] == 2351.0 and v["power_import_max"] == 2589.0
    assert v["mbus1_gas_volume"] == 112.384 and v["mbus2_water_volume"] == 872.234
    peak = next(m for m in t.measurements if m.name == "power_import_max")
    assert peak.time == utc(2020, 5, 9, 11, 45, 58)  # 200509134558S


def test_dsmr_sagemcom_wh_and_varh() -> None:
    [t], errors = telegrams("dsmr_ndokter-dsmr_parser_7.txt")
    assert errors == []
    v = values(t)
    assert v["energy_import"] == 6545766.0 and v["power_import"] == 286.0
    assert v["reactive_energy_export"] == 3897726.0 and v["reactive_power_export"] == 166.0


def test_dsmr_iskra_ie() -> None:
    [t], errors = telegrams("dsmr_ndokter-dsmr_parser_8.txt")
    assert errors == []
    v = values(t)
    assert v["power_export"] == 270.0 and v["voltage_l3"] == 243.3
    assert v["energy_export_t2"] == 10282.0


def test_dsmr_eon_hungary() -> None:
    [t], errors = telegrams("dsmr_ndokter-dsmr_parser_9.txt")
    assert errors == []
    v = values(t)
    assert v["energy_import"] == 173640.0 and v["energy_export"] == 627177.0
    assert v["frequency"] == 50.0 and v["power_export"] == 2601.0
    assert v["reactive_energy_q3"] == 160487.0 and v["current_limit_l1"] == 200.0
    assert v["energy_absolute"] == 800817.0


def test_dsmr_v22_and_v3_without_crc() -> None:
    [t22], errors = telegrams("dsmr_ndokter-dsmr_parser_10.txt")
    assert errors == [] and t22.crc is None
    assert values(t22)["mbus1_gas_volume"] == 1.001
    assert values(t22)["power_import"] == 1010.0
    [t3], errors = telegrams("dsmr_ndokter-dsmr_parser_11.txt")
    assert errors == [] and t3.crc is None
    assert values(t3)["energy_import_t1"] == 12345678.0
    assert values(t3)["current_limit"] == 16.0


@pytest.mark.parametrize(("name", "energy"), [
    ("dsmr_ndokter-dsmr_parser_12.txt", 52185782.5309),
    ("dsmr_ndokter-dsmr_parser_13.txt", 32549506.1662),
])
def test_dsmr_easymeter_with_trailing_garbage(name: str, energy: float) -> None:
    [t], errors = telegrams(name)
    assert values(t)["energy_import"] == energy
    assert len(errors) == 1  # the lines after '!' are not a telegram
    assert not isinstance(errors[0], ChecksumError)


# -- DLMS/COSEM -----------------------------------------------------------------------------

DLMS_TEST_KEY = b"MYDUMMYGLOBALKEY"  # EK = AK in the u9n/dlms-cosem cipher test


def dlms_items(name: str, **kw: Any) -> list[dlms.Frame | ProtocolError]:
    p = dlms.Parser(framing="auto", **kw)
    return p.feed(load_capture((SAMPLES / name).read_bytes())) + p.flush()


def dlms_values(n: dlms.Notification) -> dict[str, object]:
    return {m.name: (m.value, m.unit) for m in n.measurements}


def test_dlms_aidon_hdlc_push() -> None:
    [n] = dlms_items("dlms_u9n-dlms-cosem_1.txt")
    assert isinstance(n, dlms.Notification) and not n.encrypted
    assert n.time_text == "2019-12-16T07:59:40" and n.timestamp is None  # no UTC deviation
    v = dlms_values(n)
    assert v["power_import"] == (1122.0, "W") and v["reactive_power_import"] == (1507.0, "var")
    assert v["voltage_l1"] == (230.7, "V") and v["current_l2"] == (7.5, "A")
    assert v["energy_import"] == (10049926.0, "Wh")
    assert v["reactive_energy_import"] == (6614347.0, "varh")


def test_dlms_kamstrup_hdlc_push() -> None:
    [n] = dlms_items("dlms_u9n-dlms-cosem_2.txt")
    assert isinstance(n, dlms.Notification) and n.list_id == "Kamstrup_V0001"
    v = dlms_values(n)
    assert v["power_import"] == (826.0, "W")
    assert v["current_l1"] == (2.37, "A")  # implied scaler -2
    assert (v["voltage_l1"], v["voltage_l3"]) == ((232.0, "V"), (236.0, "V"))


def test_dlms_bare_ciphered_apdu_without_key_is_shown_not_decrypted() -> None:
    [c] = dlms_items("dlms_u9n-dlms-cosem_3.txt")
    assert isinstance(c, dlms.CipheredApdu)
    assert (c.security_control, c.invocation_counter) == (0x30, 485)
    assert c.system_title == bytes.fromhex("2f19229199164103")
    assert c.to_json()["decrypted"] is False


def test_dlms_bare_ciphered_apdu_decrypts_with_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "meter.key"
    key_file.write_text(f"# test meter\nEK={DLMS_TEST_KEY.hex()}\nAK={DLMS_TEST_KEY.hex()}\n")
    key_file.chmod(0o600)
    out = io.StringIO()
    assert run_decode("dlms-hdlc", SAMPLES / "dlms_u9n-dlms-cosem_3.txt", out,
                      key_file=key_file) == 0
    [line] = [json.loads(x) for x in out.getvalue().splitlines()]
    frame = line["frame"]
    assert frame["type"] == "dlms-data-notification" and frame["encrypted"] is True
    assert frame["invoke_id"] == 0x1DB and frame["system_title"] == "2f19229199164103"
    # the plaintext is the plain DataNotification of sample 5
    [plain] = dlms_items("dlms_u9n-dlms-cosem_5.txt")
    assert isinstance(plain, dlms.Notification)
    assert frame["body"] == dlms.jsonable(plain.body)


def test_dlms_bare_ciphered_apdu_with_wrong_key_is_rejected() -> None:
    [err] = dlms_items("dlms_u9n-dlms-cosem_3.txt", key=bytes(16), auth_key=DLMS_TEST_KEY)
    assert isinstance(err, DecryptionError) and "tag mismatch" in str(err)


def test_dlms_bare_plain_notification() -> None:
    [n] = dlms_items("dlms_u9n-dlms-cosem_5.txt")
    assert isinstance(n, dlms.Notification) and not n.encrypted
    assert n.invoke_id == 0x1DB and n.time_text is None
    assert isinstance(n.body, bytes) and len(n.body) == 34


def test_dlms_green_book_gcm_vector() -> None:
    # not a capture: six lines EK, AK, system title, invocation counter, plaintext,
    # ciphertext || tag. Wrapped as a general-glo-ciphering APDU it must decrypt.
    ek, ak, title, counter, plain, sealed = hex_lines("dlms_u9n-dlms-cosem_4.txt")
    body = b"\x30" + counter + sealed
    apdu = bytes([0xDB, len(title)]) + title + bytes([len(body)]) + body
    assert dlms.decrypt_glo(apdu, 0, ek, ak) == (plain, title)
    with pytest.raises(DecryptionError):
        dlms.decrypt_glo(apdu[:-1] + bytes([apdu[-1] ^ 1]), 0, ek, ak)
    # as a capture it is rejected as a whole, never half-decoded
    items = dlms_items("dlms_u9n-dlms-cosem_4.txt")
    assert items and all(isinstance(i, FrameError) for i in items)
