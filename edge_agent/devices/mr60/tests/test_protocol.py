"""Seeed MR60FDA1/MR60BHA1 frames: frames seen on real radars, every rejection, fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError
from edge_agent.protocols import mr60
from edge_agent.protocols.mr60 import Frame, Parser

SAMPLES = Path(__file__).resolve().parents[5] / "shared" / "samples"

# Frames as MR60BHA1/MR60FDA1 radars send them (sums checked by hand).
KNOWN: list[tuple[str, str, object]] = [
    ("5359010100010FBE5443", "heartbeat", 0x0F),
    ("535901020001 0FBF5443", "reset", 0x0F),
    ("5359800300010131 5443", "body_movement", 1),
    ("53598004000200 6B9D5443", "distance", 107),
    ("535980050006 805500400000 4C5443", "direction", (-85, 64, 0)),
    ("5359850500058182898680CD5443", "heart_waveform", (129, 130, 137, 134, 128)),
    ("535985020001598D5443", "heart_rate", 89),
]


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


@pytest.mark.parametrize(("hexa", "name", "value"), KNOWN, ids=[k[1] for k in KNOWN])
def test_known_frames(hexa: str, name: str, value: object) -> None:
    raw = bytes.fromhex(hexa)
    [f] = Parser().feed(raw)
    assert isinstance(f, Frame)
    assert (f.name, f.value) == (name, value)
    assert mr60.encode(f.control, f.command, f.data) == raw
    j = f.to_json()
    assert j["name"] == name and j["data"] == f.data.hex()


def test_reports_table() -> None:
    cases = [
        (0x80, 0x01, b"\x01", "presence", True), (0x80, 0x01, b"\x00", "presence", False),
        (0x80, 0x02, b"\x02", "motion", "moving"), (0x80, 0x02, b"\x01", "motion", "stationary"),
        (0x81, 0x01, b"\x03", "breath_state", "slow"),
        (0x81, 0x02, b"\x10", "respiration_rate", 16),
        (0x81, 0x05, b"\x01\x02\x03\x04\x05", "breath_waveform", (1, 2, 3, 4, 5)),
        (0x83, 0x01, b"\x01", "fall", True), (0x83, 0x05, b"\x00", "residence", False),
        (0x84, 0x02, b"\x01", "sleep_state", "light"), (0x84, 0x03, b"\x01\x02", "awake_minutes",
                                                         258),
        (0x02, 0xA1, b"MR60FDA1", "product_info", "MR60FDA1"),
        (0x02, 0xA4, b"\x01\xff", "product_info", "01ff"),
        (0x99, 0x01, b"\xab", "unknown", "ab"),
    ]
    for control, command, data, name, value in cases:
        [f] = Parser().feed(mr60.encode(control, command, data))
        assert isinstance(f, Frame) and (f.name, f.value) == (name, value), (control, command)
    assert Parser().feed(mr60.encode(0x85, 0x05, bytes(5)))[0].waveform  # type: ignore[union-attr]


def test_query_and_answer() -> None:
    q = mr60.query(mr60.CTRL_HUMAN, 0x01)
    assert q == bytes.fromhex("5359808100010FBD5443")
    [f] = Parser().feed(q)
    assert isinstance(f, Frame) and f.query and f.name == "presence" and f.value is None
    [a] = Parser().feed(mr60.encode(0x80, 0x81, b"\x01"))
    assert isinstance(a, Frame) and a.query and a.value is True and a.to_json()["query"]


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="samples folder absent")
def test_field_samples() -> None:
    files = sorted(SAMPLES.glob("mr60*.txt"))
    if not files:
        pytest.skip("no mr60 samples")
    for f in files:
        hexes = [ln for ln in f.read_text().splitlines() if not ln.startswith("#")]
        items = Parser().feed(bytes.fromhex(" ".join(hexes)))
        assert items and all(isinstance(i, Frame) for i in items), f.name


GOOD = mr60.encode(0x85, 0x02, b"\x48")
REJECTS: list[tuple[str, bytes, type[ProtocolError], str]] = [
    ("checksum", mr60.encode(0x85, 0x02, b"\x48", bad_checksum=True), ChecksumError, "checksum"),
    ("footer", GOOD[:-1] + b"\x00", FrameError, "footer"),
    ("length", b"\x53\x59\x85\x02\xff\xff" + bytes(4), FrameError, "data length"),
    ("flag", mr60.encode(0x83, 0x01, b"\x02"), FrameError, "bad fall report"),
    ("enum", mr60.encode(0x80, 0x02, b"\x07"), FrameError, "unknown code 7"),
    ("breath enum", mr60.encode(0x81, 0x01, b"\x00"), FrameError, "unknown code 0"),
    ("size u8", mr60.encode(0x85, 0x02, b"\x48\x00"), FrameError, "expected 1"),
    ("size u16", mr60.encode(0x80, 0x04, b"\x48"), FrameError, "expected 2"),
    ("size wave", mr60.encode(0x85, 0x05, b"\x48"), FrameError, "expected 5"),
    ("size direction", mr60.encode(0x80, 0x05, b"\x48"), FrameError, "expected 6"),
]


@pytest.mark.parametrize(("label", "bad", "cls", "words"), REJECTS, ids=[r[0] for r in REJECTS])
def test_rejections_then_resync(label: str, bad: bytes, cls: type[ProtocolError],
                                words: str) -> None:
    items = Parser().feed(b"\x01\x02\x03" + bad + GOOD)
    assert isinstance(items[0], FrameError) and "3 bytes of noise" in str(items[0])
    err = items[1]
    assert type(err) is cls and err.offset == 3 and words in str(err), label
    assert len(items) == 3 and isinstance(items[2], Frame) and items[2].value == 0x48


def test_noise_and_incomplete_frames_are_bounded() -> None:
    p = Parser()
    out = p.feed(b"\x00" * 5000)
    assert len(out) == 1 and out[0].offset == 0
    [noise] = p.feed(b"\x53\x59\x80\x01" + mr60.MAX_DATA.to_bytes(2, "big"))
    assert "904 bytes of noise" in str(noise)
    p.feed(bytes(mr60.MAX_DATA))
    assert len(p._buf) <= mr60.MAX_DATA + 9
    assert p.feed(b"\x53") == []  # a lone first header byte waits


frames = st.builds(
    lambda c, k, d: mr60.encode(c, k, d),
    st.sampled_from([0x01, 0x02, 0x80, 0x81, 0x83, 0x84, 0x85, 0x99]),
    st.integers(0, 255),
    st.binary(max_size=8),
)


@given(st.lists(st.one_of(frames, st.binary(max_size=10),
                          st.sampled_from([GOOD, GOOD[:5], b"\x53\x59"])), max_size=8))
def test_frames_and_junk_same_whole_or_bytewise(parts: list[bytes]) -> None:
    data = b"".join(parts)
    out = Parser().feed(data)
    assert all(isinstance(i, (Frame, ProtocolError)) for i in out)
    assert [key(i) for i in out] == [key(i) for i in feed_bytewise(data)]
    for i in out:
        if isinstance(i, Frame):
            assert isinstance(i.to_json(), dict)


@given(st.binary(max_size=300))
def test_any_bytes_decoded_or_rejected(data: bytes) -> None:
    out = Parser().feed(data)
    assert all(isinstance(i, (Frame, ProtocolError)) for i in out)
    assert [key(i) for i in out] == [key(i) for i in feed_bytewise(data)]


@given(st.lists(st.tuples(st.integers(0x80, 0x85), st.integers(0, 0x7F), st.binary(max_size=6)),
                max_size=6), st.binary(max_size=6).filter(lambda b: 0x53 not in b))
def test_every_well_formed_frame_is_accounted_for(specs: list[tuple[int, int, bytes]],
                                                  noise: bytes) -> None:
    data = b"".join(noise + mr60.encode(c, k, d) for c, k, d in specs)
    out = Parser().feed(data)
    decided = [i for i in out if isinstance(i, Frame) or "noise" not in str(i)]
    assert len(decided) == len(specs)  # each frame decoded, or rejected for its payload


def test_flush_reports_noise_and_truncated_frame() -> None:
    good = mr60.encode(0x85, 0x02, b"\x48")
    p = Parser()
    assert p.feed(b"junk") == []
    out = p.flush()
    assert len(out) == 1 and isinstance(out[0], FrameError) and out[0].offset == 0
    assert "4 bytes of noise" in str(out[0])
    assert p.flush() == []
    p = Parser()
    assert len(p.feed(good + good[:6])) == 1
    out = p.flush()
    assert len(out) == 1 and isinstance(out[0], FrameError)
    assert out[0].offset == len(good) and "truncated frame (6 bytes)" in str(out[0])
    p = Parser()  # a lone first header byte at the end is noise, not a frame
    assert p.feed(b"ab" + mr60.HEADER[:1]) == []
    out = p.flush()
    assert len(out) == 1 and "3 bytes of noise" in str(out[0])
    again = p.feed(good)
    assert len(again) == 1 and isinstance(again[0], Frame) and again[0].offset == 3
