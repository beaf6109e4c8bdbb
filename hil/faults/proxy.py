"""A loopback TCP proxy that can stall, delay, refuse and cut connections (network faults).

    with FaultProxy(upstream_port) as p:   # listens on 127.0.0.1:p.port
        p.stall()      # freeze open connections: no bytes either way, no FIN (half-open)
        p.resume()     # (new connections still pass unless stall(new_too=True))
        p.delay = 0.2  # seconds added before each forwarded chunk
        p.cut()        # close every connection now (RST)
        p.refuse = True  # accept, then close at once (broker refusing)
        p.close_on = lambda chunk: b"/data" in chunk  # client bytes that close the
                         # connection (a broker that disconnects on a denied publish)

Threads and sockets only, loopback only.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType


class FaultProxy:
    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind(("127.0.0.1", port))
        self._lsock.listen(16)
        self.port: int = self._lsock.getsockname()[1]
        self.delay = 0.0
        self.refuse = False
        self.close_on: Callable[[bytes], bool] | None = None
        self.closed_on = 0  # connections closed by close_on
        self._forward = threading.Event()
        self._forward.set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._frozen: set[int] = set()
        self._threads: list[threading.Thread] = []
        self.accepted = 0
        self.refused = 0
        self._accept = threading.Thread(target=self._accept_loop, name="proxy-accept",
                                         daemon=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._accept.start()
        return self

    def stall(self, new_too: bool = False) -> None:
        """Freeze the open connections (no bytes, no FIN); new ones work unless new_too."""
        with self._lock:
            self._frozen.update(id(a) for a, _ in self._pairs)
            self._frozen.update(id(b) for _, b in self._pairs)
        if new_too:
            self._forward.clear()

    def resume(self) -> None:
        with self._lock:
            self._frozen.clear()
        self._forward.set()

    def _stalled(self, sock: socket.socket) -> bool:
        return not self._forward.is_set() or id(sock) in self._frozen

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def cut(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()
        self._forward.set()
        self.cut()
        with contextlib.suppress(OSError):
            self._lsock.close()
        self._accept.join(2)
        for t in list(self._threads):
            t.join(2)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._lsock], [], [], 0.1)
                if not r:
                    continue
                client, _ = self._lsock.accept()
            except (OSError, ValueError):
                return
            if self.refuse:
                self.refused += 1
                client.close()
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                self.refused += 1
                client.close()
                continue
            self.accepted += 1
            with self._lock:
                self._pairs.append((client, up))
            for a, b in ((client, up), (up, client)):
                t = threading.Thread(target=self._pipe, args=(a, b, a is client), daemon=True,
                                     name="proxy-pipe")
                self._threads.append(t)
                t.start()
            self._threads = [t for t in self._threads if t.is_alive()]

    def _pipe(self, src: socket.socket, dst: socket.socket, from_client: bool = False) -> None:
        try:
            while not self._stop.is_set():
                if self._stalled(src):
                    time.sleep(0.01)  # stalled: read nothing, send nothing, close nothing
                    continue
                r, _, _ = select.select([src], [], [], 0.1)
                if not r:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                if from_client and self.close_on is not None and self.close_on(data):
                    self.closed_on += 1
                    break  # never forwarded; both sides closed below
                if self.delay:
                    time.sleep(self.delay)
                while self._stalled(src) and not self._stop.is_set():
                    time.sleep(0.01)
                dst.sendall(data)
        except (OSError, ValueError):  # ValueError: the other side closed the socket
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
            with self._lock:
                self._pairs = [p for p in self._pairs if src not in p]
