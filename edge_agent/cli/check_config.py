"""``edge-agent check-config FILE``: exit 0 and a summary, or one line per problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.cli.common import load_site, print_problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path)


def run(args: argparse.Namespace) -> int:
    from edge_agent.core.errors import ConfigError
    from edge_agent.uplink.confirm import delivery_warning

    try:
        cfg = load_site(args.file)
    except ConfigError as exc:
        print_problems(exc)
        print(f"{args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.file}: OK - site {cfg.site}, node {cfg.node}, hardware {cfg.hardware}")
    for ch, cc in cfg.channels.items():
        brokers = ", ".join(str(b) for b in cc.brokers)
        print(f"  channel {ch.value}: {brokers} -> {cfg.topic_prefix(ch)}/…")
        warning = delivery_warning(ch.value, cc, cfg.topic_prefix(ch))
        if warning:
            print(f"  WARNING {warning}")
    print(f"  store: {cfg.state_dir}, commit every {float(cfg.store.commit_interval):g}s, "
          f"budget {int(cfg.store.max_bytes) // (1024 * 1024)} MiB per channel")
    for s in cfg.sensors:
        flag = "" if s.enabled else " (disabled)"
        print(f"  sensor {s.id}: {s.type} -> {s.channel.value}/{s.priority.label}{flag}")
    return 0
