"""A serial device on a pseudo-terminal: the device side runs on the pty master in a thread.

The host (a driver) opens ``PtyDevice.path`` with ``serial.serial_for_url(path, ...)``. The
path is a stable symlink to the current ``/dev/pts/N`` (like ``/dev/serial/by-id/...``), so
after ``unplug()`` opening fails and reads on an open port fail, and after ``replug()`` the
same path works again.

Subclass and override the hooks, which run on the device thread:

- ``on_data(data)``: bytes the host wrote;
- ``on_tick(now)``: called about every ``tick`` seconds (``now`` = the clock's monotonic time),
  for devices that push (DSMR P1, DLMS push, radars).

Send bytes with ``write(data)`` (thread-safe, bounded queue; returns False when dropped).
``line_speed()`` tells the baud rate the host set on the port (a pty carries no real baud
rate, but the host's termios setting is visible, so baud switches can be checked).
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import select
import shutil
import tempfile
import termios
import threading
import tty
from pathlib import Path

from edge_agent.core.clock import Clock, SystemClock

_SPEEDS = {
    getattr(termios, f"B{b}"): b
    for b in (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
}


class PtyDevice:
    """Device side of a serial line on a pty. ``start()`` once, ``stop()`` once."""

    tick = 0.02  # seconds between on_tick calls (and the longest command latency)

    def __init__(self, name: str = "tty", *, link_dir: Path | None = None,
                 queue_max: int = 256, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._own_dir = link_dir is None
        self._dir = Path(tempfile.mkdtemp(prefix="edge-agent-pty-")) if link_dir is None \
            else link_dir
        self._link = self._dir / name
        self._out: queue.Queue[bytes] = queue.Queue(maxsize=queue_max)
        self._pending = b""
        self._cmds: queue.Queue[tuple[str, threading.Event]] = queue.Queue(maxsize=16)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self.dropped = 0  # writes dropped because the queue was full or the device unplugged
        self._outage: tuple[float, float] | None = None  # scripted (after, duration), once
        self._outage_started: float | None = None
        self.error: BaseException | None = None  # set if the device thread died

    # -- public API (any thread) ------------------------------------------------------------

    @property
    def path(self) -> str:
        """The stable port path for ``serial_for_url``."""
        return str(self._link)

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def start(self) -> None:
        """Create the pty and start the device thread."""
        if self._thread is not None:
            raise RuntimeError("PtyDevice already started")
        self._open_pty()
        self._thread = threading.Thread(target=self._run, name=f"pty-{self._link.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, close the pty and remove the link. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_pty()
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def unplug(self) -> None:
        """Vanish: close the pty (host reads fail) and remove the link (opens fail)."""
        self._command("unplug")

    def replug(self) -> None:
        """Come back on a new pty behind the same path."""
        self._command("replug")

    def script_outage(self, after: float, duration: float) -> None:
        """Unplug once, ``after`` seconds after start, and replug ``duration`` seconds later."""
        if after < 0 or duration < 0:
            raise ValueError("outage times must be >= 0")
        self._outage = (after, duration)

    def write(self, data: bytes) -> bool:
        """Queue bytes for the host. False (and counted in ``dropped``) if not queued."""
        if not self.plugged:
            self.dropped += 1
            return False
        try:
            self._out.put_nowait(bytes(data))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def line_speed(self) -> int | None:
        """The baud rate the host configured on the port, or None when unplugged/unknown."""
        fd = self._slave
        if fd is None:
            return None
        try:
            attrs = termios.tcgetattr(fd)
        except OSError:
            return None
        return _SPEEDS.get(attrs[5])

    def __enter__(self) -> PtyDevice:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- hooks (device thread) --------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        """Bytes written by the host."""

    def on_tick(self, now: float) -> None:
        """Periodic hook; ``now`` is monotonic seconds."""

    def on_replug(self) -> None:
        """Called on the device thread after a replug (reset protocol state)."""

    # -- internals ----------------------------------------------------------------------------

    def _command(self, name: str) -> None:
        done = threading.Event()
        if self._thread is None or not self._thread.is_alive():
            self._apply(name)
            return
        self._cmds.put((name, done), timeout=1)
        done.wait(timeout=5)

    def _apply(self, name: str) -> None:
        if name == "unplug":
            self._close_pty()
        elif name == "replug" and self._master is None:
            self._open_pty()
            self.on_replug()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF mangling before the host opens the port
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self._link.with_name(self._link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self._link)

    def _close_pty(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._pending = b""
        while True:
            try:
                self._out.get_nowait()
            except queue.Empty:
                break

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            self.error = exc
            raise

    def _loop(self) -> None:
        next_tick = started = self.clock.monotonic()
        while not self._stop.is_set():
            while True:
                try:
                    name, done = self._cmds.get_nowait()
                except queue.Empty:
                    break
                self._apply(name)
                done.set()
            if self._master is None:
                self._stop.wait(self.tick)
            else:
                self._io(self._master)
            now = self.clock.monotonic()
            if now >= next_tick:
                next_tick = now + self.tick
                self._scripted_outage(now - started, now)
                self.on_tick(now)

    def _scripted_outage(self, elapsed: float, now: float) -> None:
        if self._outage is None:
            return
        after, duration = self._outage
        if self._outage_started is None:
            if elapsed >= after:
                self._outage_started = now
                self._apply("unplug")
        elif now - self._outage_started >= duration:
            self._outage = None  # done: it happens once
            self._apply("replug")

    def _io(self, master: int) -> None:
        if not self._pending:
            with contextlib.suppress(queue.Empty):
                self._pending = self._out.get_nowait()
        wlist = [master] if self._pending else []
        rl, wl, _ = select.select([master], wlist, [], self.tick)
        if rl:
            data = _read(master)
            if data:
                self.on_data(data)
        if wl and self._pending and self._master == master:
            try:
                n = os.write(master, self._pending)
                self._pending = self._pending[n:]
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""
    except OSError as exc:
        if exc.errno == errno.EIO:  # no host has the port open
            return b""
        raise
