"""The field decode tool: capture loading, every protocol's samples, rejections, errors."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from edge_agent.cli.decode import PROTOCOLS, add_arguments, load_capture, main, run_decode
from edge_agent.devices.dlms_hdlc.emulator import (
    array,
    notification,
    obis,
    scaler_unit,
    structure,
    u32,
)
from edge_agent.protocols import ld2410, mr60
from edge_agent.protocols.dlms import encrypt_glo

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
SAMPLE_PROTOCOL = {
    "dlms": "dlms-hdlc", "dsmr": "dsmr-p1", "iec62056-21": "iec62056-21",
    "ld2410": "ld2410", "modbus": "modbus-rtu", "mr60bha1": "mr60", "mr60fda1": "mr60",
}
NOT_CAPTURES = {
    # AES-GCM test vector (EK, AK, title, counter, plaintext, ciphertext on six lines): its
    # bytes are no frame, so the tool must reject them (tests/protocols checks the vector)
    "dlms_u9n-dlms-cosem_4.txt",
}


def decode(protocol: str, path: Path) -> tuple[int, list[dict[str, object]]]:
    out = io.StringIO()
    rc = run_decode(protocol, path, out)
    return rc, [json.loads(line) for line in out.getvalue().splitlines()]


# --- load_capture ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    b"53 59 02 A1\n00 01 0F 5F 54 43\n",
    b"# a header line\n# another\n5359 02a1 0001 0f5f 5443",
    b"0x53, 0x59, 0x02, 0xA1, 0x00, 0x01, 0x0F, 0x5F, 0x54, 0x43",
    b"53:59:02:a1:00:01:0f:5f:54:43  # inline comment\n# comment line\n",
    b"53-59-02-A1-00-01\r\n0F-5F-54-43\r\n",
])
def test_hex_text(text: bytes) -> None:
    assert load_capture(text) == bytes.fromhex("535902A100010F5F5443")


def test_raw_bytes_kept_exactly() -> None:
    raw = bytes(range(256))
    assert load_capture(raw) == raw
    telegram = b"/ISK5\\2M550T-1012\r\n\r\n1-0:1.8.1(000581.161*kWh)\r\n!ABCD\r\n"
    assert load_capture(telegram) == telegram
    assert load_capture(b"# source: somewhere\n" + telegram) == telegram  # header dropped
    assert load_capture(b"abc") == b"abc"  # odd number of hex digits: raw
    assert load_capture(b"") == b""
    assert load_capture(b"# only a comment\n") == b""


# --- run_decode --------------------------------------------------------------------------------


def test_ld2410_frames_and_rejections(tmp_path: Path) -> None:
    good = ld2410.encode_report(ld2410.Report(ld2410.TargetState.MOVING, 120, 50, 0, 0, 120))
    bad = ld2410.encode_report(ld2410.Report(ld2410.TargetState.MOVING, 120, 50, 0, 0, 120),
                               check=7)
    f = tmp_path / "cap.bin"
    f.write_bytes(b"\x00\x01" + good + bad + good)
    rc, lines = decode("ld2410", f)
    assert rc == 0
    assert [ln.get("error") for ln in lines] == ["frame", None, "checksum", None]
    assert lines[0]["offset"] == 0 and "noise" in str(lines[0]["detail"])
    assert lines[1] == {"protocol": "ld2410", "offset": 2, "frame": lines[1]["frame"]}
    assert lines[1]["frame"]["target_state"] == "moving"  # type: ignore[index]
    assert lines[2]["offset"] == 2 + len(good)


def test_mr60_hex_capture(tmp_path: Path) -> None:
    f = tmp_path / "cap.txt"
    f.write_text("# heart rate, then a bad checksum\n"
                 + mr60.encode(0x85, 0x02, b"\x48").hex(" ") + "\n"
                 + mr60.encode(0x85, 0x02, b"\x48", bad_checksum=True).hex(" ") + "\n")
    rc, lines = decode("mr60", f)
    assert rc == 0
    assert lines[0]["frame"] == {"control": "0x85", "command": "0x02", "name": "heart_rate",
                                 "value": 72, "data": "48"}
    assert lines[1]["error"] == "checksum" and lines[1]["offset"] == 10


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="samples folder absent")
@pytest.mark.parametrize("prefix", sorted(SAMPLE_PROTOCOL))
def test_samples_decode(prefix: str) -> None:
    protocol = SAMPLE_PROTOCOL[prefix]
    assert protocol in PROTOCOLS
    files = sorted(SAMPLES.glob(f"{prefix}_*.txt"))
    if not files:
        pytest.skip(f"no {prefix} samples")
    for f in files:
        rc, lines = decode(protocol, f)
        assert rc == (1 if f.name in NOT_CAPTURES else 0), f.name
        if f.name in NOT_CAPTURES:
            assert lines and all("error" in ln for ln in lines), f.name
        else:
            assert any("frame" in ln for ln in lines), f.name
        for ln in lines:
            assert ln["protocol"] == protocol
            assert ("frame" in ln) != ("error" in ln)


def test_unknown_protocol_and_unreadable_file(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert run_decode("nope", tmp_path, out) == 2
    assert "unknown protocol 'nope'" in capsys.readouterr().err
    assert run_decode("mr60", tmp_path / "missing.bin", out) == 2
    assert "cannot read" in capsys.readouterr().err
    assert run_decode("mr60", tmp_path / "missing.bin", out, key_file=tmp_path / "k") == 2
    assert "--key applies only to" in capsys.readouterr().err
    assert out.getvalue() == ""


def test_empty_capture_runs(tmp_path: Path) -> None:
    f = tmp_path / "empty"
    f.write_bytes(b"")
    assert decode("ld2410", f) == (1, [])  # nothing decoded is not a success


def test_cli_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--protocol", "mr60", "--key", "k.txt", "cap.bin"])
    assert (args.protocol, args.key, args.file) == ("mr60", Path("k.txt"), Path("cap.bin"))
    f = tmp_path / "cap.txt"
    f.write_text(mr60.encode(0x80, 0x01, b"\x01").hex())
    assert main(["-p", "mr60", str(f)]) == 0
    assert json.loads(capsys.readouterr().out)["frame"]["value"] is True


def test_key_file_for_dlms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "cap.txt"
    f.write_text("7e a0 07 03 21 93 0f 01 7e\n")
    assert run_decode("dlms-hdlc", f, io.StringIO(), key_file=tmp_path / "absent.key") == 2
    assert "key file" in capsys.readouterr().err


# --- DLMS bare APDUs, keys, end of capture ---------------------------------------------------

EK = bytes(range(16))
AK = bytes(range(0xD0, 0xE0))
TITLE = b"EMU\x00\x00\x00\x00\x01"


def _push(value: int) -> bytes:
    return notification(array(structure(obis(1, 0, 1, 7, 0), u32(value), scaler_unit(0, 27))))


def _key_file(tmp_path: Path, mode: int = 0o600) -> Path:
    f = tmp_path / "meter.key"
    f.write_text(f"EK={EK.hex()}\nAK={AK.hex()}\n")
    f.chmod(mode)
    return f


def _power(line: dict[str, object]) -> object:
    frame = line["frame"]
    assert isinstance(frame, dict)
    return {m["name"]: m["value"] for m in frame["measurements"]}["power_import"]


def test_dlms_bare_apdus_with_and_without_key(tmp_path: Path) -> None:
    f = tmp_path / "cap.txt"
    f.write_text((_push(1500) + encrypt_glo(_push(1600), EK, AK, TITLE, 42)).hex(" "))
    rc, lines = decode("dlms-hdlc", f)
    assert rc == 0 and len(lines) == 2
    assert _power(lines[0]) == 1500.0
    second = lines[1]["frame"]
    assert isinstance(second, dict) and lines[1]["offset"] == len(_push(1500))
    assert (second["type"], second["decrypted"], second["invocation_counter"]) == \
        ("dlms-ciphered-apdu", False, 42)

    out = io.StringIO()
    assert run_decode("dlms-hdlc", f, out, key_file=_key_file(tmp_path)) == 0
    keyed = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [_power(ln) for ln in keyed] == [1500.0, 1600.0]
    assert keyed[1]["frame"]["encrypted"] is True


def test_dlms_key_file_open_to_others_is_refused(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "cap.bin"
    f.write_bytes(_push(1))
    assert run_decode("dlms-hdlc", f, io.StringIO(), key_file=_key_file(tmp_path, 0o640)) == 2
    assert "group/others" in capsys.readouterr().err


def test_truncated_frame_at_end_of_capture_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "cap.txt"
    f.write_text("01 03 01 21 00 01 D5 FC\n01 03 02 03\n")  # the answer is cut off
    rc, lines = decode("modbus-rtu", f)
    assert rc == 0
    assert "frame" in lines[0]
    assert lines[1]["error"] == "frame" and lines[1]["offset"] == 8
    assert "truncated" in str(lines[1]["detail"])


@pytest.mark.parametrize("protocol", ["ld2410", "mr60"])
def test_radar_garbage_only_capture_is_reported(tmp_path: Path, protocol: str) -> None:
    f = tmp_path / "cap.bin"
    f.write_bytes(b"this is no radar capture\x00\xff")
    rc, lines = decode(protocol, f)
    assert rc == 1  # only rejections
    assert len(lines) == 1
    assert lines[0]["error"] == "frame" and lines[0]["offset"] == 0
    assert "26 bytes of noise" in str(lines[0]["detail"])


@pytest.mark.parametrize("protocol", ["ld2410", "mr60"])
def test_radar_truncated_tail_is_reported(tmp_path: Path, protocol: str) -> None:
    if protocol == "ld2410":
        good = ld2410.encode_report(ld2410.Report(ld2410.TargetState.MOVING, 120, 50, 0, 0, 120))
    else:
        good = mr60.encode(0x85, 0x02, b"\x48")
    f = tmp_path / "cap.bin"
    f.write_bytes(good + good[:7])  # the second frame is cut off
    rc, lines = decode(protocol, f)
    assert rc == 0
    assert "frame" in lines[0]
    assert lines[1]["error"] == "frame" and lines[1]["offset"] == len(good)
    assert "truncated frame (7 bytes)" in str(lines[1]["detail"])
    assert len(lines) == 2
