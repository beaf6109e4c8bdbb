"""``edge-agent run -c FILE``: the daemon in the foreground (systemd runs exactly this).

Exit 0 after SIGTERM/SIGINT; 2 for what a restart cannot fix (a bad config, a loose key
file: the unit's RestartPreventExitStatus=2); 1 for the rest (systemd restarts it).
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from edge_agent.cli.common import load_site, print_problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", type=Path, required=True, help="site YAML file")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    # Handlers first: a SIGTERM during start-up must still mean "stop cleanly".
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    services: list[Any] = []  # SIGHUP before start-up is done: the file is being read anyway
    signal.signal(signal.SIGHUP, lambda signum, frame: [s.request_reload() for s in services])

    from edge_agent.core.errors import ConfigError, EdgeAgentError
    from edge_agent.daemon import logsetup
    from edge_agent.daemon.service import Service
    from edge_agent.devices.registry import SENSOR_TYPES
    from edge_agent.security import events as secevents

    try:
        cfg = load_site(args.config)
    except ConfigError as exc:
        print_problems(exc)
        secevents.emit("config", "rejected", detail=f"{args.config}: {len(exc.problems)} "
                       "problem(s)")
        return 2
    logsetup.setup(args.log_level or cfg.logging.level)
    log = logging.getLogger("edge_agent")
    try:
        services.append(Service(args.config, cfg, SENSOR_TYPES, stop=stop,
                                fixed_log_level=args.log_level is not None))
    except (EdgeAgentError, OSError) as exc:
        log.error("cannot start: %s", exc)
        if isinstance(exc, PermissionError):  # KeyFileError: a loose or missing secret file
            secevents.emit("key", "failure", detail=str(exc))
        # 2 tells systemd not to restart (RestartPreventExitStatus=2): only for what a
        # restart cannot fix. A full or failing disk can clear: exit 1, restarted.
        return 1 if transient(exc) else 2
    try:
        services[0].run()
    except (EdgeAgentError, OSError) as exc:
        log.error("stopped on error: %s", exc)
        return 1
    if received:
        log.info("stopped on %s", signal.Signals(received[0]).name)
    return 0


def transient(exc: BaseException) -> bool:
    """A start-up failure a restart may cure (full or failing disk)."""
    from edge_agent.core.errors import DurabilityError, StoreFullError

    if isinstance(exc, StoreFullError | DurabilityError):
        return True
    return (isinstance(exc, OSError) and not isinstance(exc, PermissionError)
            and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO))


