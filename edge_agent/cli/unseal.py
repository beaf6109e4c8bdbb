"""``edge-agent unseal``: the platform's side, as a reference decryptor.

Payload JSON lines in (a file or stdin), opened JSON lines out. Each signed payload is
checked against the enrolled node keys (``--nodes``: a file of enrolment records or a
directory of ``*.pub``). Exit 0 when every line opened, 1 when some did not, 2 for an
unreadable key, node list or input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge_agent.security.nodekey import NodeKeyError, NodeKeys
from edge_agent.security.seal import SealError, load_private_key, open_sealed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", type=Path, required=True,
                        help="the platform's private key (PEM)")
    parser.add_argument("--nodes", type=Path, help="enrolled node public keys: a file of "
                        "enrolment records or a directory of *.pub (edge-agent keys export)")
    parser.add_argument("--allow-unsigned", action="store_true",
                        help="also open archived unsigned payloads (suite without +ed25519)")
    parser.add_argument("file", nargs="?", default="-",
                        help="payload JSON lines (default: stdin)")


def run(args: argparse.Namespace) -> int:
    return run_unseal(args.key, args.file, sys.stdout, sys.stderr, nodes=args.nodes,
                      allow_unsigned=args.allow_unsigned)


def run_unseal(key_file: Path, source: str, out: Any, err: Any,
               nodes: Path | None = None, allow_unsigned: bool = False) -> int:
    """``edge-agent unseal``: payload JSON lines in, opened JSON lines out. Each signed
    payload is checked against the enrolled node keys (``nodes``: a file or a directory)."""
    try:
        key = load_private_key(key_file)
    except (OSError, SealError) as exc:
        print(f"unseal: {exc}", file=err)
        return 2
    node_keys = None
    if nodes is not None:
        try:
            node_keys = NodeKeys.load(nodes)
        except (OSError, UnicodeDecodeError, NodeKeyError) as exc:
            print(f"unseal: enrolled node keys: {exc}", file=err)
            return 2
    bad = 0
    stream = None
    try:
        stream = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
        for n, line in enumerate(stream, 1):
            line = line.strip()
            if not line:
                continue
            try:
                opened = open_sealed(line, key, node_keys, allow_unsigned=allow_unsigned)
            except SealError as exc:
                bad += 1
                print(f"unseal: line {n}: {exc}", file=err)
                continue
            print(json.dumps(opened, separators=(",", ":")), file=out)
    except OSError as exc:
        print(f"unseal: cannot read {source}: {exc.strerror or exc}", file=err)
        return 2
    except UnicodeDecodeError as exc:
        print(f"unseal: cannot read {source}: not UTF-8 text ({exc.reason})", file=err)
        return 2
    finally:
        if stream is not None and stream is not sys.stdin:
            stream.close()
    return 1 if bad else 0
