"""The daemon as systemd runs it: an :class:`Agent` plus readiness, watchdog, reload and
status.

    svc = Service(path, cfg, SENSOR_TYPES, stop=stop_event)   # builds the Agent (may raise)
    svc.run()                                                 # until ``stop`` is set

- ``READY=1`` once every thread is started; ``STOPPING=1`` on the way out.
- ``WATCHDOG=1`` every half ``WATCHDOG_USEC``, and only while the pipeline is alive:
  every channel writer and uplink has a fresh heartbeat, every sensor thread runs or is
  scheduled for restart by the supervisor. A stuck thread withholds the pings and systemd
  restarts the service (the store keeps what was accepted).
- ``request_reload()`` (SIGHUP): the file is read again. An invalid file is rejected with
  the usual ``FILE:LINE: path: message`` lines (and so is one the loader fails on in any
  other way) and the running pipeline is untouched; a valid
  one replaces it: the old pipeline stops gracefully (queued readings committed, in-flight
  batches returned to the store), the new one opens the same store files, so buffered data
  and sequence numbers carry over.
- ``<state_dir>/status.json`` every ``status_interval`` seconds (``edge-agent status``; under
  systemd written to ``$RUNTIME_DIRECTORY``, a tmpfs, with a link in the state dir), and
  the Prometheus textfile when ``metrics.textfile`` is configured (rewritten when a figure
  changes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge_agent.config.diff import changes
from edge_agent.config.schema import SiteConfig
from edge_agent.core.errors import ConfigError, EdgeAgentError
from edge_agent.core.mounts import on_volatile_fs
from edge_agent.daemon.metrics import Textfile
from edge_agent.daemon.runtime import Agent
from edge_agent.daemon.sdnotify import Notifier, watchdog_interval
from edge_agent.daemon.status import (
    Liveness,
    Reload,
    StatusFile,
    runtime_dir,
    snapshot,
    write_status,
)
from edge_agent.devices.registry import SensorType
from edge_agent.security import events as secevents

log = logging.getLogger("edge_agent.daemon.service")

WRITER_BUDGET = 10.0  # s without a writer heartbeat (it beats every <= 0.5 s) = stuck
UPLINK_BUDGET = 30.0  # s: a connect attempt is bounded by 5 s TCP + 10 s CONNACK


class Service:
    def __init__(self, config_path: Path, cfg: SiteConfig,
                 sensor_types: Mapping[str, SensorType], *, stop: threading.Event,
                 notifier: Notifier | None = None,
                 agent_factory: Callable[[SiteConfig], Agent] | None = None,
                 loader: Callable[[Path], SiteConfig] | None = None,
                 status_interval: float = 2.0, poll: float = 1.0,
                 writer_budget: float = WRITER_BUDGET, uplink_budget: float = UPLINK_BUDGET,
                 watchdog: float | None = None, fixed_log_level: bool = False,
                 run_dir: Path | None = None) -> None:
        self.config_path = config_path
        self.cfg = cfg
        self.stop = stop
        self.notifier = notifier if notifier is not None else Notifier.from_env()
        self._types = sensor_types
        self._factory = agent_factory or (lambda c: Agent(c, sensor_types))
        self._loader = loader or self._load
        self.status_interval = status_interval
        self.watchdog_every = watchdog if watchdog is not None else watchdog_interval()
        self.poll = poll if self.watchdog_every is None else min(poll, self.watchdog_every / 2)
        self.writer_budget = writer_budget
        self.uplink_budget = uplink_budget
        self._fixed_log_level = fixed_log_level
        self._reload = threading.Event()
        self.reloads = 0
        self.last_reload: dict[str, Any] = {}
        self.started_at = time.time()
        self.watchdog_pings = 0
        self._problems: list[str] = []
        self._status_failed = False
        self._next_metrics = 0.0
        self._textfile: Textfile | None = None
        # status.json on the service's tmpfs (/run/edge-agent) when systemd gives one
        self.run_dir = run_dir if run_dir is not None else runtime_dir()
        self.agent = self._factory(cfg)  # EdgeAgentError / OSError: the caller exits 2

    def _load(self, path: Path) -> SiteConfig:
        from edge_agent.config import load_config

        return load_config(path, self._types)

    # ------------------------------------------------------------------ control

    def request_reload(self) -> None:
        """Signal-safe: only sets a flag; the service loop does the work."""
        self._reload.set()

    def run(self) -> None:
        """Run until ``stop`` is set. Raises EdgeAgentError when a core thread fails."""
        self.agent.start()
        self.notifier.ready(self._summary())
        next_ping = 0.0
        next_status = 0.0
        try:
            while True:
                now = time.monotonic()
                if self._reload.is_set():
                    self._reload.clear()
                    self._do_reload()
                self.agent.supervise_once()
                if (self.watchdog_every is not None and now >= next_ping
                        and self._check_alive()):
                    self.notifier.watchdog()
                    self.watchdog_pings += 1
                    next_ping = now + self.watchdog_every
                if now >= next_status:
                    self._write_status("running")
                    next_status = now + self.status_interval
                if self.stop.wait(self.poll):
                    break
        finally:
            self.notifier.stopping()
            try:
                self.agent.shutdown()
            finally:
                self._write_status("stopped", alive=False)

    # ------------------------------------------------------------------ liveness

    def liveness(self) -> list[str]:
        """Why the pipeline is not alive (empty list = alive)."""
        a = self.agent
        now = a.clock.monotonic()
        out: list[str] = []
        for ch, w in a.writers.items():
            if not w.thread.is_alive():
                out.append(f"writer {ch.value} stopped")
            elif now - w.heartbeat > self.writer_budget:
                out.append(f"writer {ch.value} stuck for {now - w.heartbeat:.0f}s")
        for ch, u in a.uplinks.items():
            beat = getattr(u, "heartbeat", now)
            if not u.alive:
                out.append(f"uplink {ch.value} stopped")
            elif now - beat > self.uplink_budget:
                out.append(f"uplink {ch.value} stuck for {now - beat:.0f}s")
        for r in a.sensors:
            t = r.thread
            if t is None or not (t.is_alive() or r.restart_at > 0.0):
                out.append(f"sensor {r.sensor.id} dead and not scheduled for restart")
        return out

    def _check_alive(self) -> bool:
        problems = self.liveness()
        if problems != self._problems:
            if problems:
                log.error("pipeline not alive, withholding watchdog pings: %s",
                          "; ".join(problems))
                self.notifier.status("NOT ALIVE: " + "; ".join(problems))
            else:
                log.info("pipeline alive again")
                self.notifier.status(self._summary())
            self._problems = problems
        return not problems

    # ------------------------------------------------------------------ reload

    def _do_reload(self) -> None:
        path = self.config_path
        self.notifier.reloading(f"reloading {path}")
        log.info("reloading configuration from %s", path)
        try:
            new = self._loader(path)
        except ConfigError as exc:
            for p in exc.problems:
                log.error("%s", p.format())
            log.error("reload rejected: %s has %d problem(s); the running configuration "
                      "stays in force", path, len(exc.problems))
            secevents.emit("config", "rejected",
                           detail=f"reload of {path}: {len(exc.problems)} problem(s)")
            self._reloaded(False, f"{len(exc.problems)} problem(s); first: "
                                  f"{exc.problems[0].format()}" if exc.problems else "invalid")
            return
        except Exception as exc:  # a loader bug must not take the running pipeline down
            log.exception("reload rejected: reading %s failed (%s); the running configuration "
                          "stays in force", path, type(exc).__name__)
            secevents.emit("config", "rejected", detail=f"reload of {path}: unreadable")
            self._reloaded(False, f"cannot read: {type(exc).__name__}: {exc}")
            return
        old = self.cfg
        self.agent.shutdown()
        try:
            agent = self._factory(new)
        except (EdgeAgentError, OSError) as exc:
            log.error("new configuration cannot start (%s); going back to the previous one", exc)
            self.agent = self._factory(old)  # failing here too: the caller exits, systemd retries
            self.agent.start()
            self._reloaded(False, f"cannot start: {exc}")
            return
        self.agent = agent
        self.cfg = new
        if not self._fixed_log_level:
            logging.getLogger().setLevel(new.logging.level.upper())
        self.agent.start()
        self._next_metrics = 0.0
        what = changes(old, new)
        log.info("configuration reloaded: %s; %s", self._summary(),
                 "changed: " + "; ".join(what) if what else "nothing changed")
        self._reloaded(True, None)

    def _reloaded(self, ok: bool, error: str | None) -> None:
        self.reloads += 1
        self.last_reload = {"time": time.time(), "ok": ok, "error": error}
        self._problems = []
        self.notifier.ready(self._summary() if ok else f"reload rejected: {error}")
        self._write_status("running")

    # ------------------------------------------------------------------ reporting

    def _summary(self) -> str:
        c = self.cfg
        return (f"running: site {c.site} node {c.node}, {len(self.agent.sensors)} sensors, "
                f"channels {','.join(ch.value for ch in c.channels)}")

    def status_document(self, state: str = "running") -> StatusFile:
        live = Liveness(problems=list(self._problems), watchdog_interval=self.watchdog_every,
                        watchdog_pings=self.watchdog_pings)
        reload = Reload(**self.last_reload, count=self.reloads) if self.reloads else None
        return snapshot(self.agent, state=state, config=self.config_path,
                        started_at=self.started_at, interval=self.status_interval,
                        liveness=live, reload=reload)

    def _write_status(self, state: str, alive: bool = True) -> None:
        try:
            doc = self.status_document(state)
            write_status(self.cfg.state_dir, doc, self.run_dir)
            mc = self.cfg.metrics
            now = time.monotonic()
            if mc.textfile is not None and (now >= self._next_metrics or state == "stopped"):
                self._next_metrics = now + float(mc.interval)
                if self._textfile is None or self._textfile.path != mc.textfile:
                    self._textfile = Textfile(mc.textfile)
                    if not on_volatile_fs(mc.textfile.parent):
                        log.info("metrics textfile %s is not on a tmpfs: each rewrite (every "
                                 "%g s while figures change) is a file-system journal commit "
                                 "on the card; a directory under /run costs none "
                                 "(configs/README.md, Metrics)", mc.textfile, float(mc.interval))
                self._textfile.write(doc, alive and not self._problems, now)
        except Exception as exc:  # reporting must never stop the pipeline
            if not self._status_failed:
                log.warning("cannot write status/metrics: %s", exc)
            self._status_failed = True
        else:
            self._status_failed = False
