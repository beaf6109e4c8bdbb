"""``edge-agent watch``: readings as the running daemon accepts them, per sensor, with the
backlog and uplink state of each channel (a summary line every few seconds).

It reads the daemon's local socket (``/run/edge-agent/watch.sock`` under systemd, else
``<state_dir>/watch.sock``), which only root and the service's group may open. Readings of
the IT channel and of any sensor with a ``subject:`` show ``sealed`` and the subject's
pseudonym instead of their value (docs: README, "Live view").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from edge_agent.cli import common

RUN_DIR = Path("/run/edge-agent")  # the service's RuntimeDirectory=
EXIT_NOT_RUNNING = 3  # as `status` says for a daemon that is not running


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", type=Path, default=common.DEFAULT_CONFIG,
                        help=f"site YAML file, for its state dir (default: "
                             f"{common.DEFAULT_CONFIG})")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="look for <DIR>/watch.sock (no config needed)")
    parser.add_argument("--socket", type=Path, default=None,
                        help=f"the daemon's watch socket (default: {RUN_DIR}/watch.sock, "
                             "then the state dir's)")
    parser.add_argument("--sensor", action="append", default=None, metavar="ID",
                        help="only this sensor (repeat for more)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line, as the daemon sends them")
    parser.add_argument("--every", type=float, default=5.0, metavar="SECONDS",
                        help="a summary line this often (default: 5)")
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                        help="stop after this many seconds (default: until Ctrl-C)")


class WatchError(Exception):
    """Cannot watch: the message says which socket and what to do."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def run(args: argparse.Namespace) -> int:
    try:
        sock = connect(candidates(args))
    except WatchError as exc:
        print(f"watch: {exc}", file=sys.stderr)
        return exc.status
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        with sock:
            request = {"sensors": args.sensor, "summary_every": args.every}
            # refused before it read the request: its error line follows all the same
            with contextlib.suppress(OSError):
                sock.sendall(json.dumps(request).encode() + b"\n")
            return follow(sock, sys.stdout, sys.stderr, as_json=args.json, deadline=deadline)
    except KeyboardInterrupt:  # Ctrl-C is how a person stops watching: not an error
        return 0


# ---------------------------------------------------------------------- finding the socket


def candidates(args: argparse.Namespace) -> list[Path]:
    if args.socket is not None:
        return [args.socket]
    state_dir: Path | None = args.state_dir
    if state_dir is None:
        from edge_agent.core.errors import ConfigError

        try:
            state_dir = common.load_site(args.config).state_dir
        except ConfigError:
            state_dir = common.DEFAULT_STATE_DIR  # the service's StateDirectory=
    return [RUN_DIR / "watch.sock", state_dir / "watch.sock"]


def connect(paths: list[Path]) -> socket.socket:
    """A connection to the first socket a daemon listens on (WatchError says why none)."""
    from edge_agent.daemon.watch_socket import addressable

    for path in paths:
        try:
            os.stat(path)
        except FileNotFoundError:
            continue
        except PermissionError:
            raise WatchError(denied(path)) from None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with addressable(path) as addr:
                sock.connect(addr)
        except PermissionError:
            sock.close()
            raise WatchError(denied(path)) from None
        except OSError:  # refused: left by a daemon that stopped; try the next one
            sock.close()
            continue
        return sock
    raise WatchError("the daemon is not running (no live socket at "
                     f"{' or '.join(str(p) for p in paths)}); start it with "
                     "`systemctl start edge-agent`, or give --socket PATH",
                     EXIT_NOT_RUNNING)


def denied(path: Path) -> str:
    from edge_agent.daemon.watch_socket import group_name

    group = "edge-agent"  # the service's group; the socket's own when we may look at it
    for p in (path, *path.parents):  # the socket, or the first directory we may look at
        try:
            group = group_name(os.stat(p).st_gid)
            break
        except OSError:
            continue
    return (f"cannot open {path}: permission denied. Only root and the group {group!r} may "
            f"watch: run it with sudo, or add yourself to the group (sudo usermod -aG "
            f"{group} $USER, then log in again)")


# ---------------------------------------------------------------------- showing lines


def lines(sock: socket.socket, deadline: float | None) -> Iterator[dict[str, Any]]:
    """The daemon's JSON lines until it closes the connection or the deadline passes."""
    buf = b""
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(min(left, 1.0))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError as exc:
            raise WatchError(f"connection to the daemon lost: {exc}") from None
        if not chunk:
            return
        buf += chunk
        *complete, buf = buf.split(b"\n")
        for raw in complete:
            if raw:
                yield json.loads(raw)


def follow(sock: socket.socket, out: IO[str], err: IO[str], *, as_json: bool,
           deadline: float | None) -> int:
    try:
        for ev in lines(sock, deadline):
            kind = ev.get("type")
            if kind == "error":
                print(f"watch: the daemon refused: {ev.get('message')}", file=err)
                return 1
            if as_json:
                out.write(json.dumps(ev) + "\n")
            else:
                text = render(ev)
                if text is not None:
                    out.write(text + "\n")
            out.flush()
    except WatchError as exc:
        print(f"watch: {exc}", file=err)
        return 1
    if deadline is not None and time.monotonic() >= deadline:
        return 0
    print("watch: the daemon closed the connection (it stopped, or reloaded its "
          "configuration: run watch again)", file=err)
    return 1


def clock(t: float | None) -> str:
    if t is None:
        return "--:--:--"
    lt = time.localtime(t)
    return time.strftime("%H:%M:%S", lt) + f".{int((t % 1) * 1000):03d}"


def render(ev: dict[str, Any]) -> str | None:
    kind = ev.get("type")
    if kind == "reading":
        if ev.get("sealed"):
            value = "sealed"
        else:
            v = ev.get("value")
            value = f"{v:g}" if isinstance(v, float) else str(v)
            if ev.get("unit"):
                value += f" {ev['unit']}"
        alarm = "  ALARM" if ev.get("priority") == "alarm" else ""
        return (f"{clock(ev.get('time'))}  {ev.get('channel', '?'):2}  "
                f"{ev.get('sensor', '?'):<16} {ev.get('name', '?'):<16} {value:<14} "
                f"{ev.get('pseudonym') or '-':<18} seq {ev.get('seq')}{alarm}")
    if kind == "summary":
        parts = []
        for name, ch in sorted(ev.get("channels", {}).items()):
            state = (f"connected to {ch.get('broker')}" if ch.get("connected")
                     else "DISCONNECTED" + (f" ({ch['last_error']})" if ch.get("last_error")
                                            else ""))
            parts.append(f"{name}: backlog {ch.get('backlog')}, {state}")
        lost = f" | lost {ev['lost']} lines" if ev.get("lost") else ""
        return f"-- {clock(ev.get('time'))}  " + " | ".join(parts) + lost
    if kind == "lost":
        return (f"-- lost {ev.get('count')} readings here (this terminal was too slow; "
                f"{ev.get('total')} since start; the daemon kept them all)")
    if kind == "hello":
        return (f"-- watching site {ev.get('site')} node {ev.get('node')}, channels "
                f"{','.join(ev.get('channels', []))}; IT and subject readings show "
                "'sealed' and the pseudonym (Ctrl-C stops)")
    return None
