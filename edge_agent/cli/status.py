"""``edge-agent status``: what the running daemon is doing, read from its status file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.cli import common


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", type=Path, default=common.DEFAULT_CONFIG,
                        help=f"site YAML file (default: {common.DEFAULT_CONFIG})")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="read <DIR>/status.json directly (no config needed)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from edge_agent.core.errors import ConfigError
    from edge_agent.daemon.status import run_status

    state_dir: Path | None = args.state_dir
    if state_dir is None:
        try:
            state_dir = common.load_site(args.config).state_dir
        except ConfigError as exc:
            common.print_problems(exc)
            fallback = common.DEFAULT_STATE_DIR
            if not fallback.is_dir():
                print("status: cannot find the state directory; give --state-dir DIR",
                      file=sys.stderr)
                return 2
            # status needs only the state dir: the service's StateDirectory= is the default
            print(f"status: the config has problems (above); reading {fallback}",
                  file=sys.stderr)
            state_dir = fallback
    return run_status(state_dir, args.json, sys.stdout, sys.stderr)
