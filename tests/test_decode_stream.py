"""``edge-agent decode`` streams: bounded memory on floods of sync bytes, exit status, a closed
pipe, and the chunked capture reader agrees with the whole-file rule."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.cli.capture import iter_capture
from edge_agent.cli.decode import run_decode
from edge_agent.protocols import dlms, dsmr, iec62056_21, ld2410, modbus_rtu, mr60

FLOODS = {  # the byte(s) that start a frame in each protocol
    "dsmr-p1": b"/", "iec62056-21": b"/", "dlms-hdlc": b"\x7e", "modbus-rtu": b"\x01",
    "ld2410": ld2410.REPORT_HEADER, "mr60": mr60.HEADER,
    "dlms-hdlc APDU": b"\xdb",  # bare APDUs: a general-glo-ciphering tag
}
FLOOD_BYTES = 2 * 1024 * 1024


CHILD = r"""
import os, sys
from pathlib import Path
from edge_agent.cli.decode import run_decode

def kib(field):
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(field))

protocol, small, flood = sys.argv[1:4]
with open(os.devnull, "w") as out:
    first = run_decode(protocol, Path(small), out)  # imports and warms up the parser
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak resident set (VmHWM) starts again from here
    base = kib("VmRSS")
    rc = run_decode(protocol, Path(flood), out)
    print(first, rc, kib("VmHWM") - base)
"""


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK),
                    reason="needs Linux /proc/self/clear_refs to reset the peak RSS")
@pytest.mark.parametrize("protocol", sorted(FLOODS))
def test_decode_memory_is_bounded_on_a_flood_of_sync_bytes(tmp_path: Path,
                                                            protocol: str) -> None:
    """The peak resident set of a decode of a multi-MB flood, measured in a child process
    from after the imports: bounded by a constant well below the input's size."""
    small = tmp_path / "small.bin"
    small.write_bytes(FLOODS[protocol] * 4)
    flood = tmp_path / "flood.bin"
    pattern = FLOODS[protocol]
    flood.write_bytes(pattern * (FLOOD_BYTES // len(pattern)))
    r = subprocess.run([sys.executable, "-c", CHILD, protocol.split()[0], str(small),
                        str(flood)],
                       capture_output=True, text=True, check=True)
    rc0, rc, growth_kib = (int(x) for x in r.stdout.split())
    assert growth_kib < 1024, growth_kib  # the flood is 2 MiB: nothing grows with it
    assert (rc0, rc) == (1, 1)  # nothing but rejections


def _parse(parser: object, data: bytes, step: int = 4096) -> list[object]:
    out: list[object] = []
    for i in range(0, len(data), step):
        out += parser.feed(data[i:i + step])  # type: ignore[attr-defined]
    out += parser.flush()  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize(("name", "make", "pattern", "per_kib"), [
    ("dsmr-p1", dsmr.Parser, b"/", 4), ("iec62056-21", iec62056_21.Parser, b"/", 9),
    ("dlms-hdlc", dlms.Parser, b"\x7e", 1), ("modbus-rtu", modbus_rtu.Parser, b"\x01", 4),
    ("ld2410", ld2410.Parser, ld2410.REPORT_HEADER, 0), ("mr60", mr60.Parser, mr60.HEADER, 0),
    ("iec62056-21 SOH", iec62056_21.Parser, b"\x01", 4),
    ("iec62056-21 STX", iec62056_21.Parser, b"\x02", 4),
    ("dlms-hdlc bare APDUs", lambda: dlms.Parser(framing="apdu"), b"\xdb", 4),
])
def test_a_flood_of_sync_bytes_is_reported_in_runs_not_per_byte(
        name: str, make: Callable[[], Any], pattern: bytes, per_kib: int) -> None:
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
    r = subprocess.run([sys.executable, "-m", "edge_agent", "decode", str(tmp_path / "a")],
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
    p = subprocess.Popen([sys.executable, "-m", "edge_agent", "decode", "--protocol", "ld2410",
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
