"""``edge-agent unseal``: the platform's side, as a reference decryptor.

Payload JSON lines in (a file or stdin), opened JSON lines out. A line may also be what
``mosquitto_sub -v`` prints (topic, a space, the payload): the topic is kept in the output.
Lines that are not sealed data messages (status, health, clear data, other text) are
skipped and counted. Each signed payload is checked against the enrolled node keys
(``--nodes``: a file of enrolment records or a directory of ``*.pub``). Exit 0 when every
sealed line opened, 1 when some did not (or nothing was sealed), 2 for an unreadable key,
node list or input.
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
                        help="payload JSON lines, or 'TOPIC PAYLOAD' lines as mosquitto_sub "
                             "-v prints them (default: stdin)")


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
    bad = opened_n = skipped = 0
    stream = None
    try:
        stream = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
        for n, line in enumerate(stream, 1):
            line = line.strip()
            if not line:
                continue
            topic, msg = sealed_message(line)
            if msg is None:
                skipped += 1
                continue
            try:
                opened = open_sealed(msg, key, node_keys, allow_unsigned=allow_unsigned)
            except SealError as exc:
                bad += 1
                print(f"unseal: line {n}: {exc}", file=err)
                continue
            opened_n += 1
            if topic is not None:
                opened = {"topic": topic, **opened}
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
    if skipped:
        print(f"unseal: skipped {skipped} line(s) that are not sealed data messages "
              "(status, health, clear data or other text)", file=err)
    if not opened_n and not bad:
        print("unseal: no sealed data message in the input", file=err)
        return 1
    return 1 if bad else 0


def sealed_message(line: str) -> tuple[str | None, dict[str, Any] | None]:
    """(topic or None, the sealed message) of a payload line or a ``TOPIC PAYLOAD`` line;
    (topic, None) when it is not a sealed data message."""
    topic: str | None = None
    payload = line
    if not line.startswith("{"):
        topic, _, payload = line.partition(" ")
        payload = payload.strip()
    try:
        msg = json.loads(payload)
    except ValueError:
        return topic, None
    if not isinstance(msg, dict) or "sealed" not in msg:
        return topic, None
    return topic, msg
