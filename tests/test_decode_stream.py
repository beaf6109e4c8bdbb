"""``edge-agent decode`` streams: bounded memory on floods of sync bytes, exit status, a closed
pipe, and the chunked capture reader agrees with the whole-file rule."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.capture import iter_capture
from edge_agent.decode import run_decode
from edge_agent.protocols import dlms_hdlc, dsmr, iec62056_21, ld2410, modbus_rtu, mr60

FLOODS = {  # the byte(s) that start a frame in each protocol
    "dsmr-p1": b"/", "iec62056-21": b"/", "dlms-hdlc": b"\x7e", "modbus-rtu": b"\x01",
    "ld2410": ld2410.REPORT_HEADER, "mr60": mr60.HEADER,
}
FLOOD_BYTES = 2 * 1024 * 1024


def _max_rss_kib(args: list[str]) -> tuple[int, int, bytes]:
    """Run a child and return (exit status, its own peak resident set in KiB, stderr)."""
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert p.stderr is not None
    with p.stderr:
        err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, usage.ru_maxrss, err


@pytest.mark.parametrize("protocol", sorted(FLOODS))
def test_decode_memory_is_bounded_on_a_flood_of_sync_bytes(tmp_path: Path,
                                                            protocol: str) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(FLOODS[protocol] * 4)
    flood = tmp_path / "flood.bin"
    pattern = FLOODS[protocol]
    flood.write_bytes(pattern * (FLOOD_BYTES // len(pattern)))
    cmd = [sys.executable, "-m", "edge_agent.cli", "decode", "--protocol", protocol]
    rc0, base, _ = _max_rss_kib([*cmd, str(small)])
    rc, peak, err = _max_rss_kib([*cmd, str(flood)])
    assert (rc0, rc) == (1, 1), err.decode()  # nothing but rejections
    # bounded by a constant well below the input's size: nothing grows with the input
    assert peak - base < 1024, (base, peak)


def _parse(parser: object, data: bytes, step: int = 4096) -> list[object]:
    out: list[object] = []
    for i in range(0, len(data), step):
        out += parser.feed(data[i:i + step])  # type: ignore[attr-defined]
    out += parser.flush()  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize(("name", "make", "pattern", "per_kib"), [
    ("dsmr-p1", dsmr.Parser, b"/", 4), ("iec62056-21", iec62056_21.Parser, b"/", 9),
    ("dlms-hdlc", dlms_hdlc.Parser, b"\x7e", 1), ("modbus-rtu", modbus_rtu.Parser, b"\x01", 4),
    ("ld2410", ld2410.Parser, ld2410.REPORT_HEADER, 0), ("mr60", mr60.Parser, mr60.HEADER, 0),
])
def test_a_flood_of_sync_bytes_is_reported_in_runs_not_per_byte(
        name: str, make: type, pattern: bytes, per_kib: int) -> None:
    """At most a few errors per KiB of flood (one per run), whatever the chunking."""
    data = pattern * (256 * 1024 // len(pattern))
    for step in (4096, 1000, len(data)):
        assert len(_parse(make(), data, step)) <= per_kib * 256 + 3, (name, step)
    parser = make()
    parser.feed(data)
    assert len(parser._buf) <= 64 * 1024  # the partial frame kept is bounded


def _write(path: Path, protocol: str, good: int, bad: int = 0) -> Path:
    frame = ld2410.encode_report(ld2410.Report(ld2410.TargetState.MOVING, 120, 50, 0, 0, 120))
    broken = ld2410.encode_report(ld2410.Report(ld2410.TargetState.MOVING, 120, 50, 0, 0, 120),
                                  check=7)
    path.write_bytes(frame * good + broken * bad)
    return path


def test_exit_status(tmp_path: Path) -> None:
    assert run_decode("ld2410", _write(tmp_path / "a", "ld2410", 2, 1), io.StringIO()) == 0
    assert run_decode("ld2410", _write(tmp_path / "b", "ld2410", 0, 2), io.StringIO()) == 1
    (tmp_path / "empty").write_bytes(b"")
    assert run_decode("ld2410", tmp_path / "empty", io.StringIO()) == 1
    assert run_decode("ld2410", tmp_path / "missing", io.StringIO()) == 2
    assert run_decode("nope", tmp_path / "a", io.StringIO()) == 2
    r = subprocess.run([sys.executable, "-m", "edge_agent.cli", "decode", str(tmp_path / "a")],
                       capture_output=True)
    assert r.returncode == 2  # usage: --protocol missing


def test_lines_are_written_as_decoded(tmp_path: Path) -> None:
    class Recorder(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.sizes: list[int] = []

        def write(self, s: str) -> int:
            self.sizes.append(len(s))
            return super().write(s)

    out = Recorder()
    assert run_decode("ld2410", _write(tmp_path / "a", "ld2410", 3), out) == 0
    assert len(out.sizes) == 3  # one write per line, not one at the end


def test_closed_pipe_is_no_traceback(tmp_path: Path) -> None:
    cap = _write(tmp_path / "a", "ld2410", 20_000)
    p = subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "decode", "--protocol", "ld2410",
                          str(cap)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    first = p.stdout.readline()
    assert b'"frame"' in first
    p.stdout.close()  # what `| head -1` does
    with p.stderr:
        err = p.stderr.read()
    assert p.wait(30) == 0
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()


# --- the chunked capture reader agrees with the whole-file rule -------------------------------

_SEPARATORS = re.compile(rb"[\s:,\-]+")
_HEX = re.compile(rb"[0-9A-Fa-f]*")


def whole_file_rule(data: bytes) -> bytes:
    """The rule as it was applied to a whole capture held in memory."""
    body = data
    while body.startswith(b"#"):
        end = body.find(b"\n")
        body = b"" if end == -1 else body[end + 1:]
    text = b"\n".join(line.split(b"#", 1)[0] for line in body.splitlines())
    tokens = [t[2:] if t[:2] in (b"0x", b"0X") else t for t in _SEPARATORS.split(text)]
    digits = b"".join(tokens)
    if digits and len(digits) % 2 == 0 and _HEX.fullmatch(digits):
        return bytes.fromhex(digits.decode("ascii"))
    return body


pieces = st.lists(st.sampled_from([b"0x", b"0X", b"a", b"F", b"0", b"7e", b" ", b"\n", b"\r\n",
                                   b":", b",", b"-", b"#", b"# c\n", b"x", b"/", b"\x00",
                                   b"\t"]), max_size=30)


@settings(max_examples=400)
@given(pieces, st.integers(1, 9))
def test_chunked_reader_matches_the_rule(parts: list[bytes], chunk: int) -> None:
    data = b"".join(parts)
    assert b"".join(iter_capture(io.BytesIO(data), chunk)) == whole_file_rule(data)
