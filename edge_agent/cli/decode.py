"""Field decode tool: run a captured byte stream through a protocol parser, print JSON lines.

``edge-agent decode --protocol NAME [--key FILE [--auth-key FILE]] FILE`` prints one JSON
object per line: ``{"protocol", "offset", "frame"}`` for each decoded frame and
``{"protocol", "offset", "error", "detail"}`` for each rejected one, each line as soon as it
is decoded.

Exit status: 0 when at least one frame was decoded; 1 when the capture held only rejected
frames, or nothing at all (an empty file is not a success); 2 for usage errors (unknown
protocol, unreadable capture or key file). A closed output pipe (``| head -1``) ends the
run quietly, with the status of what was decoded until then.

Capture files are raw bytes or hex text (see ``edge_agent.cli.capture``). The capture is read
and fed to the parser in chunks, so memory stays bounded whatever its size; each parser
bounds its partial frame. At the end the parser is flushed, so a frame cut off at the end
of the capture is reported too. A DLMS capture may hold HDLC frames or bare APDUs (it does
not start with the 0x7E flag); an encrypted APDU decoded without ``--key`` is a frame
marked ``"decrypted": false``; ``--model`` names the meter model of a push whose values come
without scalers (Swiss VSE lists, as the sensor's ``model:``). ``--key`` also decodes
encrypted P1 (``dsmr-p1``, Luxembourg Smarty); ``--auth-key`` takes the authentication key
from a file of its own (``AK=<hex>``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from edge_agent.cli.capture import CaptureError, iter_capture, load_capture
from edge_agent.core.errors import EdgeAgentError, ProtocolError
from edge_agent.devices.dlms_hdlc.keys import load_auth_key
from edge_agent.devices.registry import DECODE_PROTOCOLS, DecodeProtocol
from edge_agent.protocols.dlms.cosem import METER_MODELS

__all__ = ["PROTOCOLS", "add_arguments", "load_capture", "main", "run_decode"]

PROTOCOLS: Mapping[str, DecodeProtocol] = DECODE_PROTOCOLS
"""Protocol name on the command line -> what the device declares (edge_agent.devices)."""

FEED = 4096  # bytes fed to the parser at a time: one feed's output stays small
EXIT_DECODED, EXIT_NOTHING, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``decode`` sub-command's arguments (``--protocol``, ``--key``, ``FILE``)."""
    parser.add_argument("--protocol", "-p", required=True, metavar="NAME",
                        choices=list(PROTOCOLS), help="one of: " + ", ".join(PROTOCOLS))
    parser.add_argument("--key", type=Path, default=None, metavar="FILE",
                        help="key file for encrypted DLMS push or P1 (same format as the "
                             "driver's)")
    parser.add_argument("--auth-key", type=Path, default=None, metavar="FILE",
                        help="authentication key file (AK=<hex>), when not in --key's file")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="dlms-hdlc meter model for pushes without scalers: "
                             + ", ".join(sorted(METER_MODELS)))
    parser.add_argument("file", type=Path, metavar="FILE",
                        help="capture: raw bytes or hex text ('#' comments allowed)")


def run_decode(protocol: str, path: Path, out: TextIO, key_file: Path | None = None,
               auth_key_file: Path | None = None, model: str | None = None) -> int:
    """Decode the capture at ``path`` with ``protocol``; JSON lines to ``out``."""
    proto = PROTOCOLS.get(protocol)
    if proto is None:
        return _fail(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if key_file is not None and not proto.keyed:
        keyed = sorted(name for name, p in PROTOCOLS.items() if p.keyed)
        return _fail(f"--key applies only to: {', '.join(keyed)}")
    if auth_key_file is not None and key_file is None:
        return _fail("--auth-key needs --key (the encryption key)")
    if model is not None and (protocol != "dlms-hdlc" or model not in METER_MODELS):
        return _fail(f"--model applies to dlms-hdlc and is one of: "
                     f"{', '.join(sorted(METER_MODELS))}")
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the last chunk
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror or exc}")
    try:
        keys = proto.load_keys(key_file) if key_file is not None and proto.load_keys else None
        if keys is not None and auth_key_file is not None:
            keys = (keys[0], load_auth_key(auth_key_file))
        parser = proto.parser(keys)
        if model is not None:
            parser.model = model
    except (OSError, EdgeAgentError, ValueError) as exc:
        f.close()
        return _fail(f"cannot use key file {key_file}: {exc}")
    frames = 0
    try:
        with f:
            for item in _decoded(parser, iter_capture(f)):
                if not isinstance(item, ProtocolError):
                    frames += 1
                out.write(json.dumps(_record(proto, item)) + "\n")
            out.flush()
    except BrokenPipeError:
        _quiet_closed_pipe(out)
    except CaptureError as exc:
        return _fail(f"{path}: {exc}")
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror or exc}")
    return EXIT_DECODED if frames else EXIT_NOTHING


def _decoded(parser: Any, chunks: Iterator[bytes]) -> Iterator[Any]:
    """Feed the capture in pieces of at most FEED bytes; then flush the parser."""
    for chunk in chunks:
        for i in range(0, len(chunk), FEED):
            yield from parser.feed(chunk[i:i + FEED])
    flush = getattr(parser, "flush", None)
    if callable(flush):  # the end of the capture: report what is left over
        yield from flush()


def _quiet_closed_pipe(out: TextIO) -> None:
    """The reader went away: point the stream at /dev/null so that Python's own flush at
    exit does not fail again (and print a traceback)."""
    try:
        fd = out.fileno()
    except (OSError, ValueError):  # not a real file (io.StringIO)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _record(proto: DecodeProtocol, item: Any) -> dict[str, Any]:
    if isinstance(item, ProtocolError):
        return {"protocol": proto.name, "offset": item.offset, "error": item.reason,
                "detail": str(item)}
    return {"protocol": proto.name, "offset": getattr(item, "offset", None),
            "frame": proto.frame(item)}


def _fail(message: str) -> int:
    print(f"edge-agent decode: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    """``edge-agent decode`` (arguments from :func:`add_arguments`)."""
    return run_decode(args.protocol, args.file, sys.stdout, args.key, args.auth_key, args.model)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-agent decode", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_decode(args.protocol, args.file, sys.stdout, args.key, args.auth_key, args.model)


if __name__ == "__main__":
    sys.exit(main())
