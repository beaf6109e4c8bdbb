"""Key-side faults: a damaged period key file under the real agent process."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.store.ranges import RangeSet
from edge_agent.tools.consumer import Consumer
from hil.common import PREFIX, wait_for
from hil.faults.rig import (
    AgentProcess,
    Result,
    agent_log_tail,
    drain_and_stop,
    judge,
    quiet_site,
    read_store,
    site,
)
from hil.faults.scenarios import GatedBroker


def _flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x04
    path.write_bytes(bytes(data))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


DAMAGE: list[tuple[str, Callable[[Path], None]]] = [("bit flip", _flip_bit), ("emptied", _empty)]


class _Watch:
    """What the platform sees beyond the consumer's ranges: alarm seqs, reported corrupt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.alarms = RangeSet()
        self.corrupt = RangeSet()

    def __call__(self, kind: str, msg: dict[str, Any]) -> None:
        with self._lock:
            if kind == "alarm":
                self.alarms.add(*msg["seq"])
            elif kind == "health":
                for a, b, why in msg.get("store", {}).get("evicted_ranges", []):
                    if why == "corrupt":
                        self.corrupt.add(a, b)

    def alarms_above(self, top: int) -> int:
        with self._lock:
            return sum(b - max(a, top + 1) + 1 for a, b in self.alarms if b > top)

    def corrupt_copy(self) -> RangeSet:
        with self._lock:
            return RangeSet(self.corrupt)


def _accepted(work: Path, above: int) -> bool:
    """The agent (running) has accepted readings above ``above``: seq.last moved."""
    try:
        data = (work / "state" / "store" / "ot" / "seq.last").read_bytes()
    except FileNotFoundError:
        return False
    return len(data) >= 8 and int.from_bytes(data[:8], "little") > above


def _current_key(kdir: Path) -> tuple[Path, int]:
    live = [(int(p.stem.split("-")[2]), p) for p in kdir.glob("*.key")
            if not p.name.startswith("damaged-")]
    kid, path = max(live)
    return path, kid


def _run_once(agent: AgentProcess, c: Consumer, watch: _Watch, sealed: RangeSet,
              up_for: float = 1.0) -> tuple[bool, int]:
    """Start the agent, wait until it delivers new readings and a new alarm (and reports
    ``sealed`` as corrupt), keep it up ``up_for`` s, stop it. Returns (ran and delivered
    and exited 0, alarms delivered above what the platform had before the start)."""
    top = c.snapshot().ranges.max() if c.snapshot().ranges else 0
    agent.start()
    delivered = wait_for(lambda: c.snapshot().ranges.max() > top, 20)
    alarm_ok = wait_for(lambda: watch.alarms_above(top) > 0, 20)
    wait_for(lambda: all(watch.corrupt_copy().covers(a, b) for a, b in sealed), 10)
    time.sleep(up_for)
    alive = agent.alive
    code = agent.stop()
    return alive and delivered and alarm_ok and code == 0, watch.alarms_above(top)


def damaged_key(work: Path, offline: float = 1.5, starts: int = 3) -> Result:
    """Per kind of damage: the agent runs with its broker refused (readings are accepted and
    sealed with the day's period key), stops; the key file is damaged; the agent is started
    ``starts`` times against the broker. Each start must stay up and deliver (alarms
    included); the undelivered range sealed with the damaged key must be reported
    ``corrupt``, nothing else lost; the new key must have a new id."""
    res = Result("damaged-key", f"period key file {' / '.join(n for n, _ in DAMAGE)} between "
                 f"runs; agent started x{starts} after each (real agent)")
    g = GatedBroker(work / "broker")
    watch = _Watch()
    saw: list[str] = []
    ok_all = True
    try:
        c = Consumer("127.0.0.1", g.broker.port, PREFIX, keep_messages=False,
                     on_message=watch).start()
        c.client.reconnect_delay_set(1, 1)
        agent = AgentProcess(site(work, [g.proxy.url], load_rate=1000, alarm_rate=5),
                             work / "agent.log")
        kdir = work / "state" / "keys" / "ot"
        for name, damage in DAMAGE:
            g.proxy.refuse = True
            g.proxy.cut()
            accepted = read_store(work / "state").top if kdir.exists() else 0
            agent.start()
            wait_for(functools.partial(_accepted, work, accepted), 20)  # up and committing
            time.sleep(offline)
            clean_stop = agent.stop() == 0
            before = read_store(work / "state")
            sealed = before.pending  # undelivered, all sealed with today's key
            path, kid = _current_key(kdir)
            damage(path)
            g.proxy.refuse = False
            up = alarms = 0
            for i in range(starts):
                ran, n = _run_once(agent, c, watch, sealed if i == 0 else RangeSet())
                up += int(ran)
                alarms += n
            reported = watch.corrupt_copy()
            named = all(reported.covers(a, b) for a, b in sealed)
            over = [(a, b) for a, b in reported if b > before.top]  # reported, never sealed
            _, new_kid = _current_key(kdir)
            aside = len(list(kdir.glob(f"damaged-*-{path.name}")))
            ok = (clean_stop and up == starts and named and not over and new_kid > kid
                  and aside == 1 and sealed.count() > 0)
            ok_all &= ok
            res.figures[name] = (f"{sealed.count()} corrupt named, starts {up}/{starts} up, "
                                 f"alarms {alarms} after, "
                                 f"kid {kid}->{new_kid}")
            saw.append(f"{name}: seq {list(sealed)[:3]} sealed with key {kid} reported "
                       f"corrupt: {named}; {up}/{starts} starts stayed up and delivered "
                       f"(alarms too); key moved aside: {aside == 1}; new key id {new_kid}")
        drained = drain_and_stop(AgentProcess(quiet_site(work, [g.proxy.url]),
                                              work / "agent.log"), c)
        view = read_store(work / "state")
        judge(res, c, view, resends=len(DAMAGE) * (starts + 1) + 1,
              extra_ok=ok_all and drained)
        c.stop()
    finally:
        g.close()
    res.saw = "; ".join(saw) + f"; {res.received} of {res.accepted} seqs, evicted (reported) " \
        f"{res.evicted}"
    if not res.ok:
        res.notes.append(agent_log_tail(work / "agent.log"))
    return res
