"""``edge-agent``: one command line, sub-commands.

This module only builds the parser and dispatches. Each sub-command is a module in
``edge_agent.cli`` with ``add_arguments(parser)`` and ``run(args) -> exit status``; its heavy
imports wait until ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from edge_agent import __version__

# sub-command -> (module in edge_agent.cli, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run the daemon in the foreground (systemd runs this)"),
    "check-config": ("check_config", "validate a site YAML file"),
    "demo": ("demo", "the whole system on emulated hardware, with live view"),
    "decode": ("decode", "decode a capture file of a device protocol"),
    "status": ("status", "what the running daemon is doing (from its status file)"),
    "doctor": ("doctor", "on-site checklist: config, keys, devices, brokers, clock"),
    "keys": ("keys", "create, rotate and shred the node's keys"),
    "unseal": ("unseal", "open sealed IT payloads (platform side, reference)"),
    "replay": ("replay", "run the welfare rules over recorded readings (simulated clock)"),
    "watch": ("watch", "readings as the running daemon accepts them, backlog, uplink state"),
}


# one example per sub-command, shown under its --help (and in the man page)
EXAMPLES: dict[str, str] = {
    "run": "edge-agent run -c /etc/edge-agent/site.yaml      (systemd runs exactly this)",
    "check-config": "edge-agent check-config /etc/edge-agent/site.yaml",
    "demo": "edge-agent demo --duration 60",
    "decode": "edge-agent decode --protocol dsmr-p1 p1-capture.bin | head",
    "status": "edge-agent status            (or: edge-agent status --json | jq .channels)",
    "doctor": "sudo -u edge-agent edge-agent doctor -c /etc/edge-agent/site.yaml",
    "keys": ("sudo edge-agent keys init -c /etc/edge-agent/site.yaml --owner edge-agent\n"
             "  edge-agent keys status -c /etc/edge-agent/site.yaml"),
    "unseal": ("mosquitto_sub -v -t 'edge/+/+/it/#' | edge-agent unseal --key platform-it.key "
               "--nodes nodes/"),
    "replay": "edge-agent replay -c /etc/edge-agent/site.yaml readings.jsonl",
    "watch": "sudo edge-agent watch --sensor meter-main      (or: --json | jq .)",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``command``) only that sub-command's arguments: the
    others' modules are not imported, so the daemon starts without loading the demo,
    doctor or unseal code."""
    p = argparse.ArgumentParser(prog="edge-agent", description=(
        "Store-and-forward sensor agent: durable encrypted buffering, OT/IT MQTT channels."))
    p.add_argument("-V", "--version", action="version", version=f"edge-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text,
                            epilog=f"example:\n  {EXAMPLES[name]}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        if command is None or command == name:
            module = importlib.import_module(f"edge_agent.cli.{module_name}")
            module.add_arguments(sp)
            sp.set_defaults(func=module.run)
    return p


EXIT_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader went away
EXIT_INTERRUPTED = 130  # 128 + SIGINT


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # the sub-command is the first word that is not an option (the top level has only flags)
    command = next((a for a in argv if not a.startswith("-")), "")
    try:
        args = build_parser(command).parse_args(argv)  # --help, --version print too
        rc: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:  # `edge-agent status | head -1`: the reader has what it wanted
        quiet_closed_stdout()
        return EXIT_PIPE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return rc


def quiet_closed_stdout() -> None:
    """Point stdout at /dev/null so that Python's own flush at exit does not fail again
    (and print "Exception ignored ... BrokenPipeError")."""
    import os

    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # not a real file (tests' StringIO)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
