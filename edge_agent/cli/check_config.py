"""``edge-agent check-config FILE``: exit 0 and a summary, or one line per problem.

It checks everything that needs no hardware, no network and no clock: the file itself and
the files it names (present, parseable, owner-only where secret; cli/filechecks.py).
``edge-agent doctor`` runs the same and adds the machine, the network and time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.cli.common import load_site, print_problems

if TYPE_CHECKING:
    from edge_agent.config.schema import SiteConfig

EXAMPLE = """\
example:
  edge-agent check-config /etc/edge-agent/site.yaml
  (then: sudo edge-agent doctor -c /etc/edge-agent/site.yaml on the node itself)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the site YAML file")


def file_problems(cfg: SiteConfig, file: Path) -> list[str]:
    """The failed checks of the files the site file names, located in it. (Warnings, such
    as a store key the agent will create on first start, are doctor's to show.)"""
    from edge_agent.cli.filechecks import FAIL, static_checks
    from edge_agent.config import locate

    fails: list[str] = []
    for c in static_checks(cfg):
        if c.status != FAIL:
            continue
        where = c.where or c.name
        line = locate(file, c.where) if c.where else 1
        fix = f" (fix: {c.fix})" if c.fix else ""
        fails.append(f"{file}:{line}: {where}: {c.detail}{fix}")
    return fails


def run(args: argparse.Namespace) -> int:
    from edge_agent.core.errors import ConfigError
    from edge_agent.uplink.confirm import delivery_warning

    try:
        cfg = load_site(args.file)
    except ConfigError as exc:
        print_problems(exc)
        n = len(exc.problems)
        partial = exc.partial
        if partial is not None:  # the files it names can still be checked
            from edge_agent.config.schema import SiteConfig

            assert isinstance(partial, SiteConfig)
            fails = file_problems(partial, args.file)
            for line in fails:
                print(line, file=sys.stderr)
            n += len(fails)
        print(f"{args.file}: {n} problem(s)", file=sys.stderr)
        return 1
    fails = file_problems(cfg, args.file)
    if fails:
        for line in fails:
            print(line, file=sys.stderr)
        print(f"{args.file}: {len(fails)} problem(s) with the files it names", file=sys.stderr)
        return 1
    print(f"{args.file}: OK - site {cfg.site}, node {cfg.node}, hardware {cfg.hardware}")
    for w in cfg.warnings:
        print(f"  WARNING {w.format()}")
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
    print("  (files checked; hardware, network and time: edge-agent doctor)")
    return 0
