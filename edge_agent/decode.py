"""Field decode tool: run a captured byte stream through a protocol parser, print JSON lines.

``edge-agent decode --protocol NAME [--key FILE] FILE`` prints one JSON object per line:
``{"protocol", "offset", "frame"}`` for each decoded frame and ``{"protocol", "offset",
"error", "detail"}`` for each rejected one. Exit status 0 when it ran (rejections included),
2 for an unknown protocol, an unreadable capture or key file.

Capture files are raw bytes or hex text (see ``load_capture``). The whole capture is fed,
then the parser is flushed, so a frame cut off at the end of the capture is reported too.
A DLMS capture may hold HDLC frames or bare APDUs (it does not start with the 0x7E flag);
an encrypted APDU decoded without ``--key`` is a frame marked ``"decrypted": false``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .errors import EdgeAgentError, ProtocolError

PROTOCOLS: dict[str, str] = {
    "iec62056-21": "iec62056_21",
    "dsmr-p1": "dsmr",
    "modbus-rtu": "modbus_rtu",
    "dlms-hdlc": "dlms_hdlc",
    "ld2410": "ld2410",
    "mr60": "mr60",
}
"""Protocol name on the command line -> module in ``edge_agent.protocols``."""

KEYED = frozenset({"dlms-hdlc"})

_SEPARATORS = re.compile(rb"[\s:,\-]+")
_HEX = re.compile(rb"[0-9A-Fa-f]*")


def load_capture(data: bytes) -> bytes:
    """The bytes of a capture file, given as raw bytes or as hex text.

    Rule: leading lines starting with ``#`` are a header and are dropped. What is left is
    hex text if, with ``#`` comments (to the end of a line), whitespace, ``:``/``-``/``,``
    separators and ``0x`` prefixes removed, it is a non-empty, even-length run of hex digits;
    then those digits are the capture. Otherwise it is raw bytes, kept exactly. (A raw
    capture that happens to consist only of hex digits is therefore read as hex.)
    """
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``decode`` sub-command's arguments (``--protocol``, ``--key``, ``FILE``)."""
    parser.add_argument("--protocol", "-p", required=True, metavar="NAME",
                        help="one of: " + ", ".join(PROTOCOLS))
    parser.add_argument("--key", type=Path, default=None, metavar="FILE",
                        help="key file for encrypted DLMS push (same format as the driver's)")
    parser.add_argument("file", type=Path, metavar="FILE",
                        help="capture: raw bytes or hex text ('#' comments allowed)")


def run_decode(protocol: str, path: Path, out: TextIO, key_file: Path | None = None) -> int:
    """Decode the capture at ``path`` with ``protocol``; JSON lines to ``out``."""
    module_name = PROTOCOLS.get(protocol)
    if module_name is None:
        return _fail(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if key_file is not None and protocol not in KEYED:
        return _fail(f"--key applies only to: {', '.join(sorted(KEYED))}")
    try:
        module = importlib.import_module(f"{__package__}.protocols.{module_name}")
    except ImportError:
        return _fail(f"protocol {protocol!r} is not available in this build")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror or exc}")
    try:
        parser = _make_parser(protocol, module, key_file)
    except (OSError, EdgeAgentError, ValueError) as exc:
        return _fail(f"cannot use key file {key_file}: {exc}")
    items = list(parser.feed(load_capture(raw)))
    flush = getattr(parser, "flush", None)
    if callable(flush):  # the end of the capture: report what is left over
        items += flush()
    for item in items:
        out.write(json.dumps(_record(protocol, item)) + "\n")
    return 0


def _make_parser(protocol: str, module: Any, key_file: Path | None) -> Any:
    if protocol == "dlms-hdlc":  # a capture may be HDLC frames or bare APDUs
        key, auth_key = _load_dlms_keys(key_file) if key_file is not None else (None, None)
        return module.Parser(key=key, auth_key=auth_key, framing="auto")
    return module.Parser()


def _load_dlms_keys(key_file: Path) -> tuple[bytes, bytes | None]:
    """The DLMS driver's key file loader (``load_keys``): one format for both."""
    try:
        driver = importlib.import_module(f"{__package__}.drivers.dlms_hdlc")
        load_keys = driver.load_keys
    except (ImportError, AttributeError) as exc:
        raise ValueError("the DLMS key loader is not available in this build") from exc
    keys = load_keys(key_file)
    if isinstance(keys, tuple):
        return keys[0], keys[1]
    return keys.key, getattr(keys, "auth_key", None)


def _record(protocol: str, item: Any) -> dict[str, Any]:
    if isinstance(item, ProtocolError):
        return {"protocol": protocol, "offset": item.offset, "error": item.reason,
                "detail": str(item)}
    return {"protocol": protocol, "offset": getattr(item, "offset", None),
            "frame": item.to_json()}


def _fail(message: str) -> int:
    print(f"edge-agent decode: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-agent decode", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_decode(args.protocol, args.file, sys.stdout, args.key)


if __name__ == "__main__":
    sys.exit(main())
