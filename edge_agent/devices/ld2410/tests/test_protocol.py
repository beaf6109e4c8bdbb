"""HLK-LD2410 frames: known-good frames from the spec, every rejection, fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError
from edge_agent.protocols import ld2410
from edge_agent.protocols.ld2410 import CommandFrame, Parser, Report, TargetState

SAMPLES = Path(__file__).resolve().parents[5] / "shared" / "samples"

BASIC = bytes.fromhex("F4F3F2F1 0D00 02AA 02 5100 00 0000 3B 0000 5500 F8F7F6F5")
# engineering: state moving, 1.20 m, gates 0..8 for both, two extra bytes (light, out pin)
ENGINEERING = bytes.fromhex(
    "F4F3F2F1 2300 01AA 01 7800 50 0000 00 7800 08 08"
    "0A0B0C0D0E0F101112 141516171819 1A1B1C 6401 5500 F8F7F6F5")
FIRMWARE_ACK = bytes.fromhex("FDFCFBFA 0C00 A001 0000 0001 0201 16240622 04030201")


def key(item: object) -> tuple[object, ...]:
    if isinstance(item, ProtocolError):
        return (type(item).__name__, item.offset, str(item))
    return (item, getattr(item, "offset", None))


def feed_bytewise(data: bytes) -> list[object]:
    p = Parser()
    out: list[object] = []
    for b in data:
        out += p.feed(bytes([b]))
    return out


def test_basic_report_from_spec() -> None:
    [r] = Parser().feed(BASIC)
    assert isinstance(r, Report)
    assert r.state is TargetState.STATIONARY
    assert (r.moving_distance, r.moving_energy) == (0x51, 0)
    assert (r.stationary_distance, r.stationary_energy, r.detection_distance) == (0, 0x3B, 0)
    assert not r.engineering
    assert r.to_json()["target_state"] == "stationary"
    assert ld2410.encode_report(r) == BASIC


def test_engineering_report_from_spec() -> None:
    [r] = Parser().feed(ENGINEERING)
    assert isinstance(r, Report) and r.engineering
    assert r.state is TargetState.MOVING and r.moving_distance == 120
    assert r.moving_gate_energy == tuple(range(0x0A, 0x13))
    assert r.stationary_gate_energy == tuple(range(0x14, 0x1D))
    assert r.extra == b"\x64\x01"
    assert r.to_json()["moving_gate_energy"][0] == 10
    assert ld2410.encode_report(r) == ENGINEERING


def test_firmware_ack() -> None:
    [f] = Parser().feed(FIRMWARE_ACK)
    assert isinstance(f, CommandFrame) and f.is_ack
    assert f.status == 0 and f.command == ld2410.CMD_READ_FIRMWARE
    assert f.firmware_version() == "V1.02.22062416"
    assert f.to_json()["firmware"] == "V1.02.22062416"


def test_command_builders() -> None:
    assert ld2410.enable_config() == bytes.fromhex("FDFCFBFA 0400 FF00 0100 04030201")
    assert ld2410.end_config() == bytes.fromhex("FDFCFBFA 0200 FE00 04030201")
    assert ld2410.read_firmware() == bytes.fromhex("FDFCFBFA 0200 A000 04030201")
    assert ld2410.engineering_mode(True) == bytes.fromhex("FDFCFBFA 0200 6200 04030201")
    assert ld2410.engineering_mode(False) == bytes.fromhex("FDFCFBFA 0200 6300 04030201")
    [c] = Parser().feed(ld2410.enable_config())
    assert isinstance(c, CommandFrame) and not c.is_ack and c.name == "enable_config"
    assert c.value == b"\x01\x00" and c.to_json()["kind"] == "command"


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="samples folder absent")
def test_field_samples() -> None:
    files = sorted(SAMPLES.glob("ld2410_*.txt"))
    if not files:
        pytest.skip("no ld2410 samples")
    for f in files:
        hexes = [ln for ln in f.read_text().splitlines() if not ln.startswith("#")]
        items = Parser().feed(bytes.fromhex(" ".join(hexes)))
        assert len(items) == 1 and isinstance(items[0], Report), f.name


def _with_body(body: bytes, header: bytes = ld2410.REPORT_HEADER,
               footer: bytes = ld2410.REPORT_FOOTER) -> bytes:
    return header + len(body).to_bytes(2, "little") + body + footer


BODY = BASIC[6:-4]
REJECTS: list[tuple[str, bytes, type[ProtocolError], str]] = [
    ("bad footer", BASIC[:-1] + b"\x00", FrameError, "footer"),
    ("unknown type", _with_body(b"\x03" + BODY[1:]), FrameError, "report type"),
    ("bad head", _with_body(b"\x02\xab" + BODY[2:]), FrameError, "head"),
    ("bad tail", _with_body(BODY[:-2] + b"\x56\x00"), FrameError, "tail"),
    ("check byte", _with_body(BODY[:-1] + b"\x01"), ChecksumError, "check byte"),
    ("state", _with_body(BODY[:2] + b"\x04" + BODY[3:]), FrameError, "target state"),
    ("basic length", _with_body(BODY[:-2] + b"\x00\x55\x00"), FrameError, "expected 13"),
    ("short", _with_body(b"\x02\xaa\x00\x55\x00"), FrameError, "too short"),
    ("no gates", _with_body(ENGINEERING[6:17] + b"\x55\x00"), FrameError, "gate counts"),
    ("too many gates", _with_body(ENGINEERING[6:17] + b"\x09\x08" + bytes(19) + b"\x55\x00"),
     FrameError, "gates"),
    ("gate mismatch", _with_body(ENGINEERING[6:17] + b"\x08\x08" + bytes(5) + b"\x55\x00"),
     FrameError, "does not match"),
    ("impossible length", ld2410.REPORT_HEADER + b"\xff\x00" + bytes(8), FrameError, "length"),
    ("ack without status", _with_body(b"\xff\x01", ld2410.COMMAND_HEADER, ld2410.COMMAND_FOOTER),
     FrameError, "status"),
    ("command footer", ld2410.enable_config()[:-1] + b"\x00", FrameError, "footer"),
]


@pytest.mark.parametrize(("label", "bad", "cls", "words"), REJECTS, ids=[r[0] for r in REJECTS])
def test_rejections_then_resync(label: str, bad: bytes, cls: type[ProtocolError],
                                words: str) -> None:
    items = Parser().feed(b"\x11\x22" + bad + BASIC)
    assert isinstance(items[0], FrameError) and items[0].offset == 0  # the noise before
    assert "2 bytes of noise" in str(items[0])
    err = items[1]
    assert type(err) is cls and err.offset == 2 and words in str(err), label
    assert items[-1] == Parser().feed(BASIC)[0]  # the good frame after is found
    assert all(isinstance(i, ProtocolError) for i in items[:-1])
    assert len(items) == 3  # the rejected frame's remains are resynced silently


def test_noise_is_bounded_and_reported() -> None:
    p = Parser()
    out = p.feed(b"\x00" * 10_000)
    assert [e.offset for e in out] == [0, 4096]
    assert len(p._buf) == 0
    out = p.feed(BASIC)
    assert isinstance(out[0], FrameError) and out[0].offset == 8192
    assert "1808 bytes" in str(out[0]) and isinstance(out[1], Report)


def test_incomplete_frame_is_bounded() -> None:
    p = Parser()
    assert p.feed(ld2410.REPORT_HEADER + ld2410.MAX_LENGTH.to_bytes(2, "little")) == []
    p.feed(bytes(ld2410.MAX_LENGTH))
    assert len(p._buf) <= ld2410.MAX_LENGTH + 10


def test_partial_input_waits() -> None:
    p = Parser()
    assert p.feed(BASIC[:3]) == []
    assert p.feed(BASIC[3:-1]) == []
    [r] = p.feed(BASIC[-1:])
    assert isinstance(r, Report) and r.offset == 0


reports = st.builds(
    Report,
    state=st.sampled_from(TargetState),
    moving_distance=st.integers(0, 0xFFFF),
    moving_energy=st.integers(0, 100),
    stationary_distance=st.integers(0, 0xFFFF),
    stationary_energy=st.integers(0, 100),
    detection_distance=st.integers(0, 0xFFFF),
)


@given(st.lists(reports, max_size=5), st.binary(max_size=8).filter(
    lambda b: 0xF4 not in b and 0xFD not in b))
def test_roundtrip_with_noise(items: list[Report], noise: bytes) -> None:
    data = b"".join(noise + ld2410.encode_report(r) for r in items)
    out = Parser().feed(data)
    assert [r for r in out if isinstance(r, Report)] == items
    assert all(isinstance(e, FrameError) for e in out if not isinstance(e, Report))


@given(st.binary(max_size=300))
def test_any_bytes_decoded_or_rejected(data: bytes) -> None:
    out = Parser().feed(data)
    assert all(isinstance(i, (Report, CommandFrame, ProtocolError)) for i in out)
    assert [key(i) for i in out] == [key(i) for i in feed_bytewise(data)]


@given(st.lists(st.one_of(st.binary(max_size=12), st.sampled_from(
    [BASIC, ENGINEERING, FIRMWARE_ACK, BASIC[:9], ld2410.enable_config()])), max_size=8))
def test_frames_and_junk_same_whole_or_bytewise(parts: list[bytes]) -> None:
    data = b"".join(parts)
    out = Parser().feed(data)
    assert [key(i) for i in out] == [key(i) for i in feed_bytewise(data)]
    for i in out:
        if not isinstance(i, ProtocolError):
            assert isinstance(i.to_json(), dict)


def test_flush_reports_noise_and_truncated_frame() -> None:
    good = ld2410.encode_report(ld2410.Report(ld2410.TargetState.MOVING, 120, 50, 0, 0, 120))
    p = ld2410.Parser()
    assert p.feed(b"junk") == []
    out = p.flush()
    assert len(out) == 1 and isinstance(out[0], FrameError) and out[0].offset == 0
    assert p.flush() == []
    p = ld2410.Parser()
    assert len(p.feed(good + good[:8])) == 1
    out = p.flush()
    assert len(out) == 1 and isinstance(out[0], FrameError)
    assert out[0].offset == len(good) and "truncated" in str(out[0])
    p = ld2410.Parser()  # a lone partial header at the end is noise, not a frame
    assert p.feed(b"ab" + ld2410.REPORT_HEADER[:2]) == []
    out = p.flush()
    assert len(out) == 1 and "4 bytes of noise" in str(out[0])
    again = p.feed(good)  # the parser goes on after a flush
    assert len(again) == 1 and isinstance(again[0], Report) and again[0].offset == 4
