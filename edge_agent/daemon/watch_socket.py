"""``edge-agent watch``, daemon side: the local unix socket.

- **Where.** ``watch.sock`` in the service's ``RuntimeDirectory=`` (``/run/edge-agent``,
  ``$RUNTIME_DIRECTORY``), else in the state directory (a run outside systemd).
- **Who.** The socket is mode 0660 and owned by the service's user and group, so only root,
  the service's user and members of its group can connect; the daemon checks the peer's
  credentials (``SO_PEERCRED``) as well and closes on anyone else with one error line.
- **What.** The watcher sends one JSON line (``{"sensors": [...] | null, "summary_every":
  seconds}``); the daemon answers with JSON lines: ``hello``, then ``reading`` lines as
  readings are accepted, ``lost`` when the watcher's bounded queue overflowed, and a
  ``summary`` (backlog and uplink state per channel) every ``summary_every`` seconds.
- **Bounds.** At most ``MAX_WATCHERS`` at once, each with its own thread and bounded queue
  (:mod:`edge_agent.daemon.watch_hub`); a watcher whose socket takes more than
  ``SEND_TIMEOUT`` to accept a write is closed. Nothing here waits on the pipeline's behalf.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import pwd
import socket
import stat
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge_agent.daemon.health import NodeHealth
from edge_agent.daemon.status import runtime_dir
from edge_agent.daemon.watch_hub import SummaryFn, Watcher, WatchHub, numbered, reading_event

log = logging.getLogger("edge_agent.daemon.watch")

SOCKET_NAME = "watch.sock"
SOCKET_MODE = 0o660
SEND_TIMEOUT = 10.0  # s for one write to a watcher's socket, else it is closed
REQUEST_TIMEOUT = 5.0  # s for the watcher's request line
REQUEST_MAX = 4096  # bytes
MAX_AF_UNIX = 100  # bytes of a path bind/connect take directly (the limit is 108)


class WatchSocketError(OSError):
    """The watch socket cannot be opened (another daemon holds it, or the path fails)."""


def socket_path(state_dir: Path, run_dir: Path | None) -> Path:
    return (run_dir if run_dir is not None else state_dir) / SOCKET_NAME


@contextlib.contextmanager
def addressable(path: Path) -> Iterator[str]:
    """A name for ``path`` that fits an AF_UNIX address: the path itself, or, when it is
    too long, the same file reached through ``/proc/self/fd/<dir>/``."""
    if len(os.fsencode(str(path))) <= MAX_AF_UNIX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def peer_allowed(sock: socket.socket) -> tuple[bool, int, int]:
    """(allowed, uid, gid) of the connected peer: root, this process's user, or a member of
    this process's group."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, gid = struct.unpack("3i", creds)
    me_uid, me_gid = os.geteuid(), os.getegid()
    if uid in (0, me_uid) or gid == me_gid:
        return True, uid, gid
    try:
        name = pwd.getpwuid(uid).pw_name
        return me_gid in os.getgrouplist(name, gid), uid, gid
    except (KeyError, OSError):
        return False, uid, gid


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def send_line(sock: socket.socket, obj: dict[str, Any]) -> None:
    sock.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")


class WatchServer:
    """Listens on the watch socket and serves each watcher from its own thread."""

    def __init__(self, path: Path, hub: WatchHub, summary: SummaryFn,
                 hello: dict[str, Any]) -> None:
        self.path = path
        self.hub = hub
        self.summary = summary
        self.hello = hello
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[threading.Thread] = set()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.served = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Bind (mode 0660, the process's group) and start the accept thread. Raises
        WatchSocketError when a live daemon already listens there, OSError otherwise."""
        with addressable(self.path) as addr:
            if self._alive(addr):
                raise WatchSocketError(f"another daemon listens on {self.path}")
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                    os.unlink(self.path)  # left by a daemon that did not stop cleanly
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(addr)  # created under the process umask (0077 under systemd)
                os.chmod(self.path, SOCKET_MODE)  # then opened up to the group only
                sock.listen(8)
                sock.settimeout(0.5)
            except OSError:
                sock.close()
                raise
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="watch-accept",
                                        daemon=True)
        self._thread.start()
        log.info("live view: edge-agent watch connects to %s (mode 0660, group %s)",
                 self.path, group_name(os.getegid()))

    @staticmethod
    def _alive(addr: str) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(addr)
        except OSError:
            return False
        finally:
            probe.close()
        return True

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self.hub.close_all()
        with self._conns_lock:  # a watcher's thread blocked in a write returns at once
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                    os.unlink(self.path)
        for t in list(self._clients):
            t.join(timeout)

    # ------------------------------------------------------------------ serving

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if not self._stop.is_set():
                    log.warning("live view: accept failed: %s", exc)
                    self._stop.wait(1.0)
                continue
            t = threading.Thread(target=self._serve, args=(conn,), name="watch-client",
                                 daemon=True)
            self._clients = {c for c in self._clients if c.is_alive()} | {t}
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        watcher: Watcher | None = None
        with self._conns_lock:
            self._conns.add(conn)
        try:
            conn.settimeout(SEND_TIMEOUT)
            ok, uid, gid = peer_allowed(conn)
            if not ok:
                log.warning("live view: refused uid %d gid %d (not root, not in group %s)",
                            uid, gid, group_name(os.getegid()))
                send_line(conn, {"type": "error", "message": (
                    f"not allowed: only root and the group {group_name(os.getegid())!r} "
                    "may watch")})
                return
            request = self._request(conn)
            if request is None:
                return
            sensors, every = request
            watcher = Watcher(sensors=sensors)
            if not self.hub.add(watcher):
                send_line(conn, {"type": "error", "message": (
                    f"too many watchers: {self.hub.max_watchers} are connected already")})
                watcher = None
                return
            self.served += 1
            send_line(conn, {"type": "hello", **self.hello,
                             "queue": watcher.limit, "summary_every": every})
            self._stream(conn, watcher, every)
        except (OSError, ValueError):
            pass  # the watcher went away or is too slow: it sees the connection close
        except Exception:  # a bug here must not take anything else down: say so, go on
            log.exception("live view: serving a watcher failed")
        finally:
            if watcher is not None:
                self.hub.remove(watcher)
            with self._conns_lock:
                self._conns.discard(conn)
            conn.close()

    def _request(self, conn: socket.socket) -> tuple[frozenset[str] | None, float] | None:
        conn.settimeout(REQUEST_TIMEOUT)
        data = b""
        while b"\n" not in data and len(data) < REQUEST_MAX:
            chunk = conn.recv(REQUEST_MAX - len(data))
            if not chunk:
                break
            data += chunk
        conn.settimeout(SEND_TIMEOUT)
        try:
            req = json.loads(data.split(b"\n", 1)[0] or b"{}")
            if not isinstance(req, dict):
                raise ValueError("not an object")
            raw = req.get("sensors")
            sensors = None if raw is None else frozenset(str(s) for s in raw)
            every = min(60.0, max(0.5, float(req.get("summary_every", 5.0))))
        except (ValueError, TypeError) as exc:
            send_line(conn, {"type": "error", "message": f"bad request: {exc}"})
            return None
        return sensors, every

    def _stream(self, conn: socket.socket, watcher: Watcher, every: float) -> None:
        next_summary = time.monotonic()
        while not self._stop.is_set() and not watcher.closed:
            now = time.monotonic()
            if now >= next_summary:
                send_line(conn, {"type": "summary", **self.summary(), "lost": watcher.lost,
                                 "watchers": self.hub.count()})
                next_summary = now + every
            batches, lost = watcher.take(max(0.0, next_summary - time.monotonic()))
            if lost:
                send_line(conn, {"type": "lost", "count": lost, "total": watcher.lost})
            lines = [json.dumps(reading_event(b.channel, seq, r), separators=(",", ":"))
                     for b in batches for seq, r in numbered(b)]
            if lines:
                conn.sendall(("\n".join(lines) + "\n").encode())


def summary_of(model: NodeHealth) -> dict[str, Any]:
    """The summary line's content: backlog and uplink state per channel (no values)."""
    return {"time": model.time, "channels": {
        name: {"backlog": ch.store.backlog_total,
               "oldest_undelivered": ch.store.oldest_undelivered,
               "accepted": ch.store.accepted,
               "connected": ch.uplink.connected, "broker": ch.uplink.broker,
               "last_error": ch.uplink.last_error, "inflight": ch.uplink.inflight,
               "delivery": ch.delivery.state}
        for name, ch in model.channels.items()}}


def open_watch(state_dir: Path, hub: WatchHub, summary: SummaryFn,
               hello: dict[str, Any]) -> WatchServer | None:
    """Start the live view's socket; the agent runs on without it when it cannot (logged)."""
    server = WatchServer(socket_path(state_dir, runtime_dir()), hub, summary, hello)
    try:
        server.start()
    except OSError as exc:
        log.warning("live view not available (edge-agent watch): %s: %s", server.path, exc)
        return None
    return server
