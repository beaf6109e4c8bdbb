"""``edge-agent replay``: the welfare rules over recorded or synthetic readings.

Opens no hardware and no broker: reads the site config (sensors and ``welfare:``), feeds
the JSON-lines readings through the same rules the daemon runs, on a simulated clock, and
prints one JSON line per welfare event. Exit 0; 1 if any input line was malformed (each
is named by its line number on stderr, the rest is still replayed); 2 on usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

import msgspec

from edge_agent.config import SiteConfig
from edge_agent.welfare.engine import Welfare
from edge_agent.welfare.events import Observation
from edge_agent.welfare.replay import ReplayLineError, parse_line
from edge_agent.welfare.replay import run as replay_events


class _Source:
    """The readings of one file, counting what was read and what was malformed."""

    def __init__(self, name: str, stream: BinaryIO, err: TextIO) -> None:
        self.name = name
        self.stream = stream
        self.err = err
        self.readings = 0
        self.unsynced = 0
        self.bad = 0

    def __iter__(self) -> Iterator[Observation]:
        for n, line in enumerate(self.stream, 1):
            if not line.strip():
                continue
            try:
                obs = parse_line(line)
            except ReplayLineError as exc:
                self.bad += 1
                print(f"{self.name}:{n}: malformed reading: {exc}", file=self.err)
                continue
            self.readings += 1
            self.unsynced += not obs.synced
            yield obs


def run_replay(cfg: SiteConfig, file: str, out: TextIO, err: TextIO,
               until: float | None = None) -> int:
    if not cfg.welfare:
        print(f"replay: {cfg.source}: no welfare: rules to replay", file=err)
        return 2
    types = {s.id: s.type for s in cfg.sensors}
    with contextlib.ExitStack() as stack:
        try:
            stream: BinaryIO = sys.stdin.buffer if file == "-" \
                else stack.enter_context(Path(file).open("rb"))
        except OSError as exc:
            print(f"replay: cannot read {file}: {exc.strerror or exc}", file=err)
            return 2
        started = time.perf_counter()
        src = _Source("<stdin>" if file == "-" else file, stream, err)
        enc = msgspec.json.Encoder()
        events = 0
        for ev in replay_events(Welfare(cfg.welfare, types), src, until=until):
            out.write(enc.encode(ev.to_dict()).decode() + "\n")
            events += 1
    took = time.perf_counter() - started
    print(f"replay: {src.readings} readings ({src.unsynced} unsynced, ignored), "
          f"{src.bad} malformed, {events} events in {took:.2f}s", file=err)
    return 1 if src.bad else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", type=Path, required=True,
                        help="site YAML with a welfare: block")
    parser.add_argument("file", help='readings, one {"t","sensor","name","v"} per line '
                                     "(- = stdin)")
    parser.add_argument("--until", type=float, default=None,
                        help="also fire the timers due up to this time (epoch s)")
    parser.epilog = ("example: edge-agent replay -c /etc/edge-agent/site.yaml week.jsonl "
                     "> events.jsonl")


def run(args: argparse.Namespace) -> int:
    from edge_agent.cli.common import load_site, print_problems
    from edge_agent.core.errors import ConfigError

    try:
        cfg = load_site(args.config)
    except ConfigError as exc:
        print_problems(exc)
        return 2
    return run_replay(cfg, args.file, sys.stdout, sys.stderr, until=args.until)
