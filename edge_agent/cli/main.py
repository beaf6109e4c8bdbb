"""``edge-agent``: one command line, sub-commands."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from edge_agent import __version__


def _load(path: Path):  # type: ignore[no-untyped-def]
    from edge_agent.config import load_config
    from edge_agent.devices.registry import SENSOR_TYPES

    return load_config(path, SENSOR_TYPES)


def cmd_check_config(args: argparse.Namespace) -> int:
    from edge_agent.core.errors import ConfigError
    from edge_agent.uplink.confirm import delivery_warning

    try:
        cfg = _load(args.file)
    except ConfigError as exc:
        for p in exc.problems:
            print(p.format(), file=sys.stderr)
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


def cmd_run(args: argparse.Namespace) -> int:
    import threading

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
        cfg = _load(args.config)
    except ConfigError as exc:
        for p in exc.problems:
            print(p.format(), file=sys.stderr)
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
        return 1 if _transient(exc) else 2
    try:
        services[0].run()
    except (EdgeAgentError, OSError) as exc:
        log.error("stopped on error: %s", exc)
        return 1
    if received:
        log.info("stopped on %s", signal.Signals(received[0]).name)
    return 0


def _transient(exc: BaseException) -> bool:
    import errno

    from edge_agent.core.errors import DurabilityError, StoreFullError

    if isinstance(exc, StoreFullError | DurabilityError):
        return True
    return (isinstance(exc, OSError) and not isinstance(exc, PermissionError)
            and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO))


DEFAULT_CONFIG = Path("/etc/edge-agent/site.yaml")


DEFAULT_STATE_DIR = Path("/var/lib/edge-agent")  # systemd StateDirectory=edge-agent


def cmd_status(args: argparse.Namespace) -> int:
    from edge_agent.core.errors import ConfigError
    from edge_agent.daemon.status import run_status

    state_dir: Path | None = args.state_dir
    if state_dir is None:
        try:
            state_dir = _load(args.config).state_dir
        except ConfigError as exc:
            for p in exc.problems:
                print(p.format(), file=sys.stderr)
            if not DEFAULT_STATE_DIR.is_dir():
                print("status: cannot find the state directory; give --state-dir DIR",
                      file=sys.stderr)
                return 2
            # status needs only the state dir: the service's StateDirectory= is the default
            print(f"status: the config has problems (above); reading {DEFAULT_STATE_DIR}",
                  file=sys.stderr)
            state_dir = DEFAULT_STATE_DIR
    assert state_dir is not None
    return run_status(state_dir, args.json, sys.stdout, sys.stderr)


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge_agent.cli.doctor import run_doctor

    return run_doctor(args.config, sys.stdout, as_json=args.json, timeout=args.timeout)


def cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent.cli.demo import run_demo

    return run_demo(duration=args.duration, config=args.config)


def cmd_decode(args: argparse.Namespace) -> int:
    try:
        from edge_agent.cli.decode import run_decode
    except ImportError:
        print("decode: not available in this build", file=sys.stderr)
        return 2
    return run_decode(args.protocol, args.file, sys.stdout, key_file=args.key,
                      auth_key_file=args.auth_key, model=args.model)


def cmd_unseal(args: argparse.Namespace) -> int:
    from edge_agent.security.seal import run_unseal

    return run_unseal(args.key, args.file, sys.stdout, sys.stderr, nodes=args.nodes,
                      allow_unsigned=args.allow_unsigned)


def cmd_replay(args: argparse.Namespace) -> int:
    from edge_agent.cli.replay import run_replay
    from edge_agent.core.errors import ConfigError

    try:
        cfg = _load(args.config)
    except ConfigError as exc:
        for p in exc.problems:
            print(p.format(), file=sys.stderr)
        return 2
    return run_replay(cfg, args.file, sys.stdout, sys.stderr, until=args.until)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-agent", description=(
        "Store-and-forward sensor agent: durable encrypted buffering, OT/IT MQTT channels."))
    p.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the daemon in the foreground (systemd runs this)")
    r.add_argument("-c", "--config", type=Path, required=True, help="site YAML file")
    r.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("check-config", help="validate a site YAML file")
    c.add_argument("file", type=Path)
    c.set_defaults(func=cmd_check_config)

    d = sub.add_parser("demo", help="the whole system on emulated hardware, with live view")
    d.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: until Ctrl-C)")
    d.add_argument("--config", type=Path, default=None, help="demo YAML (default: bundled)")
    d.set_defaults(func=cmd_demo)

    from edge_agent.devices.registry import DECODE_PROTOCOLS  # the devices' own protocols

    k = sub.add_parser("decode", help="decode a capture file of a device protocol")
    k.add_argument("--protocol", required=True, choices=list(DECODE_PROTOCOLS))
    keyed = ", ".join(n for n, proto in DECODE_PROTOCOLS.items() if proto.keyed)
    k.add_argument("--key", type=Path, default=None, help=f"key file ({keyed} encrypted push)")
    k.add_argument("--auth-key", type=Path, default=None,
                   help="authentication key file (AK=<hex>), when not in --key's file")
    k.add_argument("--model", default=None, help="dlms-hdlc meter model (pushes without "
                                                 "scalers, e.g. iskra-am550)")
    k.add_argument("file", type=Path)
    k.set_defaults(func=cmd_decode)

    st = sub.add_parser("status", help="what the running daemon is doing (from its status file)")
    st.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG,
                    help=f"site YAML file (default: {DEFAULT_CONFIG})")
    st.add_argument("--state-dir", type=Path, default=None,
                    help="read <DIR>/status.json directly (no config needed)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_status)

    dr = sub.add_parser("doctor", help="on-site checklist: config, keys, devices, brokers, clock")
    dr.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG,
                    help=f"site YAML file (default: {DEFAULT_CONFIG})")
    dr.add_argument("--json", action="store_true", help="machine-readable output")
    dr.add_argument("--timeout", type=float, default=5.0, help="network timeout per check (s)")
    dr.set_defaults(func=cmd_doctor)

    from edge_agent.cli.keys import add_parser as add_keys_parser

    add_keys_parser(sub)
    u = sub.add_parser("unseal", help="open sealed IT payloads (platform side, reference)")
    u.add_argument("--key", type=Path, required=True, help="the platform's private key (PEM)")
    u.add_argument("--nodes", type=Path, help="enrolled node public keys: a file of "
                   "enrolment records or a directory of *.pub (edge-agent keys export)")
    u.add_argument("--allow-unsigned", action="store_true",
                   help="also open archived unsigned payloads (suite without +ed25519)")
    u.add_argument("file", nargs="?", default="-", help="payload JSON lines (default: stdin)")
    u.set_defaults(func=cmd_unseal)

    rp = sub.add_parser("replay", help="welfare rules over recorded readings (JSON lines)")
    rp.add_argument("-c", "--config", type=Path, required=True, help="site YAML with welfare:")
    rp.add_argument("file", help='readings, one {"t","sensor","name","v"} per line (- = stdin)')
    rp.add_argument("--until", type=float, default=None,
                    help="also fire the timers due up to this time (epoch s)")
    rp.set_defaults(func=cmd_replay)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
