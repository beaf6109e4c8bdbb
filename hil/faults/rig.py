"""The rig: the real agent process, a consumer on the platform side, the offline store check."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from edge_agent.core.model import Channel
from edge_agent.security.keys import load_key
from edge_agent.store.channel_store import ChannelStore
from edge_agent.store.ranges import RangeSet
from edge_agent.tools.consumer import ChannelRecord, Consumer
from edge_agent.uplink.session import ALARM_SLACK
from hil.common import PREFIX, PY, REPO, wait_for, write_site

LOAD = "  - {{id: gen, type: load, channel: ot, rate: {rate}, chunk: 0.02}}\n"
ALARM = "  - {{id: sos, type: load, channel: ot, priority: alarm, rate: {rate}}}\n"


@dataclass
class Result:
    name: str
    injected: str
    saw: str = ""
    ok: bool = False
    accepted: int = 0  # sequence numbers handed out (top)
    received: int = 0  # distinct seqs the consumer saw
    evicted: int = 0  # reported by the store (all reasons)
    silent_loss: int = 0  # accepted, not received, not pending, not reported
    duplicates: int = 0
    dup_bound: int = 0
    order_violations: int = 0
    figures: dict[str, str | int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row(self) -> list[str]:
        figs = ", ".join(f"{k} {v}" for k, v in self.figures.items())
        return [self.name, self.injected, str(self.accepted), str(self.received),
                str(self.evicted), str(self.silent_loss), f"{self.duplicates}/{self.dup_bound}",
                str(self.order_violations), figs, "PASS" if self.ok else "FAIL"]


HEADERS = ["scenario", "injected", "accepted", "received", "evicted (reported)",
           "silent loss", "dups/bound", "order viol.", "figures", "verdict"]


class AgentProcess:
    """``python -m edge_agent run -c CFG``, restartable, killable."""

    def __init__(self, cfg: Path, log: Path) -> None:
        self.cfg, self.log = cfg, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [PY, "-m", "edge_agent", "run", "-c", str(self.cfg)],
                stdout=subprocess.DEVNULL, stderr=err, cwd=REPO,
                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def running_count(self) -> int:
        """How many starts so far reached "running" (logged once start-up is done)."""
        try:
            return self.log.read_text(errors="replace").count(": running: site ")
        except FileNotFoundError:
            return 0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def consumer(port: int, keep: bool = False) -> Consumer:
    c = Consumer("127.0.0.1", port, PREFIX, keep_messages=keep)
    c.client.reconnect_delay_set(0.05, 0.5)  # type: ignore[arg-type]  # paho takes floats
    return c.start()


@dataclass
class StoreView:
    top: int
    evicted: RangeSet
    evicted_by_reason: dict[str, int]
    pending: RangeSet
    quarantined_files: int


def read_store(state: Path, channel: Channel = Channel.OT) -> StoreView:
    """Open the store offline (the agent has stopped): accepted, evicted, still pending."""
    key = load_key(state / "keys" / f"{channel.value}.key")
    s = ChannelStore(state / "store", channel, key)
    try:
        pending = s.pending_ranges()
        qdir = s.dir / "quarantine"
        return StoreView(s.next_seq - 1, s.evicted_ranges(), dict(s.stats().evicted),
                         pending, len(list(qdir.iterdir())) if qdir.exists() else 0)
    finally:
        s.close()


class Snapshots(Protocol):
    """What the platform saw so far: a Consumer, or several judged as one."""

    def snapshot(self) -> ChannelRecord: ...


def judge(res: Result, c: Snapshots, view: StoreView, resends: int, batch_max: int = 500,
          window: int = 8, extra_ok: bool = True) -> Result:
    """No gap except reported evictions (pending = still durable), bounded dups, lane order."""
    rec = c.snapshot()
    received = rec.ranges
    missing = RangeSet()
    for a, b in received.gaps(1, view.top) if view.top else []:
        missing.add(a, b)
    silent = 0
    for a, b in missing:
        for lo, hi in _subtract(a, b, view.evicted, view.pending):
            silent += hi - lo + 1
    res.accepted = view.top
    res.received = sum(b - a + 1 for a, b in received if a <= view.top) if view.top else 0
    res.evicted = sum(b - a + 1 for a, b in view.evicted)
    res.silent_loss = silent
    res.duplicates = rec.duplicates
    res.dup_bound = max(1, resends) * (window + ALARM_SLACK) * batch_max
    res.order_violations = rec.lane_order_violations
    if rec.bad:
        res.notes.append(f"bad messages: {rec.bad[:3]}")
    res.ok = (silent == 0 and rec.duplicates <= res.dup_bound
              and rec.lane_order_violations == 0 and not rec.bad and extra_ok)
    return res


def stuck_ranges(c: Consumer, settle: float = 2.0) -> list[tuple[int, int]]:
    """Numbers below the highest the consumer has seen that are still missing ``settle``
    seconds later, while the agent runs and delivers: batches leased from the store and
    neither sent nor returned (they would only go out after a restart, behind newer data).
    Call it only while nothing is evicted and no broker drops messages."""
    top = c.snapshot().ranges.max()
    time.sleep(settle)
    return c.snapshot().ranges.gaps(1, top) if top else []


def _subtract(a: int, b: int, *sets: RangeSet) -> list[tuple[int, int]]:
    """Parts of a..b covered by none of ``sets``."""
    cover = RangeSet()
    for s in sets:
        for x, y in s:
            if y >= a and x <= b:
                cover.add(max(a, x), min(b, y))
    return cover.gaps(a, b)


def drain_and_stop(agent: AgentProcess, c: Consumer, timeout: float = 30.0) -> bool:
    """Run the agent until its health says the backlog is empty, then SIGTERM it."""
    if not agent.alive:
        agent.start()
    n0 = len(c.snapshot().health)

    def empty() -> bool:
        h = c.snapshot().health
        if len(h) <= n0:
            return False
        backlog: dict[str, int] = h[-1].get("store", {}).get("backlog", {"x": 1})
        return bool(sum(backlog.values()) == 0)
    ok = wait_for(empty, timeout)
    agent.stop()
    return ok


def site(workdir: Path, brokers: list[str], load_rate: int = 200, alarm_rate: float = 0,
         extra_ot: str = "", store: str = "", keepalive: str = "") -> Path:
    sensors = LOAD.format(rate=load_rate) if load_rate else ""
    if alarm_rate:
        sensors += ALARM.format(rate=alarm_rate)
    if keepalive:
        extra_ot += f"    keepalive: {keepalive}\n"
    return write_site(workdir, brokers, sensors=sensors, store=store, extra_ot=extra_ot)


def quiet_site(workdir: Path, brokers: list[str], extra_ot: str = "") -> Path:
    """The same site without sensors: used to drain what is left after a fault."""
    return write_site(workdir, brokers, sensors="  []\n", extra_ot=extra_ot,
                      name="site-quiet.yaml")


def agent_log_tail(log: Path, n: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    return ""


def progress(c: Consumer) -> int:
    return c.snapshot().readings


def wait_progress(c: Consumer, more: int, timeout: float = 15.0) -> bool:
    start = progress(c)
    return wait_for(lambda: progress(c) >= start + more, timeout)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


MQTT3 = "    mqtt_version: 3\n    echo_timeout: 1s\n"  # a 3.1.1 channel, confirmed by echo


class AclBroker:
    """mosquitto with an ACL file the rig rewrites and reloads (SIGHUP) while it runs.
    ``allow()``: the node may write and read back its own topics; ``deny(suffix)``: that
    one topic under the prefix is read-only, which mosquitto enforces on MQTT 3.1.1 by
    acknowledging the publish and dropping it."""

    def __init__(self, work: Path) -> None:
        from edge_agent.tools.mosquitto import Mosquitto

        work.mkdir(parents=True, exist_ok=True)
        self.acl = work / "acl"
        self.allow(reload=False)
        self.broker = Mosquitto(work, extra=f"acl_file {self.acl}\n")
        self.broker.start()

    def _write(self, text: str, reload: bool) -> None:
        self.acl.write_text(text + "topic read #\n")  # the platform's consumer reads all
        if reload and self.broker.proc is not None:
            self.broker.proc.send_signal(signal.SIGHUP)

    def allow(self, reload: bool = True) -> None:
        self._write(f"topic readwrite {PREFIX}/#\n", reload)

    def deny(self, suffix: str, reload: bool = True) -> None:
        others = "".join(f"topic readwrite {PREFIX}/{t}\n"
                         for t in ("status", "health", "data", "alarm") if t != suffix)
        self._write(others + f"topic read {PREFIX}/{suffix}\n", reload)

    def close(self) -> None:
        self.broker.stop()
