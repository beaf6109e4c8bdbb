"""A clustered broker tier: a 3-node NATS cluster (MQTT 3.1.1, JetStream, streams on all
three nodes), a channel with ``failover: any`` pointed at the three MQTT listeners, and a
backlog draining through it when the node the agent is connected to is SIGKILLed.

The agent must move on to a surviving node, and an independent subscriber on the *other*
surviving node must receive every accepted reading (duplicates allowed, gaps not).
Figures: failover time, drain rate through the cluster, and (``baseline=True``) the same
drain through one mosquitto with the same channel settings, measured in the same run.
"""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt

from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from edge_agent.uplink.session import ALARM_SLACK, start_node
from hil.bench.prefill import fill
from hil.common import PREFIX, wait_for
from hil.faults.natscluster import NatsCluster
from hil.faults.rig import (
    MQTT3,
    AgentProcess,
    Result,
    agent_log_tail,
    judge,
    quiet_site,
    read_store,
)

PER_RECORD = 500  # readings per stored record and per message (the product default)
WINDOW = 8
SEED = "hil/n1/ot"  # the rig's site/node/channel: where failover: any starts
ANY = MQTT3 + "    failover: any\n"


def distinct(c: Consumer) -> int:
    return sum(b - a + 1 for a, b in c.received())


def connections(log: Path) -> list[str]:
    """The broker URLs the agent connected to, in order (from its log)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    return [line.rsplit("connected to ", 1)[1].strip() for line in text.splitlines()
            if "connected to mqtt://" in line]


def v3_consumer(port: int) -> Consumer:
    c = Consumer("127.0.0.1", port, PREFIX, client_id=f"platform-{port}",
                 keep_messages=False, protocol=mqtt.MQTTv311)
    c.client.reconnect_delay_set(0.05, 0.5)  # type: ignore[arg-type]  # paho takes floats
    return c.start(timeout=20.0)


def cluster_failover(work: Path, backlog: int = 1_000_000, kill_at: float = 0.25,
                     baseline: bool = True, timeout: float = 300.0) -> Result:
    res = Result("cluster-failover",
                 f"3-node NATS cluster (MQTT 3.1.1, JetStream R3), failover: any; SIGKILL "
                 f"the agent's node at {kill_at:.0%} of a {backlog:,}-reading drain")
    work.mkdir(parents=True, exist_ok=True)
    fill(work / "state", backlog, PER_RECORD, 4 * 1024**2)
    start = start_node(SEED, 3)
    watch = (start + 2) % 3  # survives the kill; not where the agent moves next
    log = work / "agent.log"
    with NatsCluster(work / "nats") as cl:
        c = v3_consumer(cl.nodes[watch].mqtt_port)
        agent = AgentProcess(quiet_site(work, cl.urls, extra_ot=ANY), log)
        agent.start()
        try:
            ok_first = wait_for(lambda: distinct(c) > 0, 60)
            t_first = time.monotonic()
            ok_part = wait_for(lambda: distinct(c) >= backlog * kill_at, timeout)
            t_kill = time.monotonic()
            before = distinct(c)
            conns = connections(log)
            victim = cl.urls.index(conns[-1]) if conns else -1
            if victim not in (-1, watch):  # never the subscriber's own node
                cl.kill(victim)
            ok_reconn = wait_for(lambda: len(connections(log)) > len(conns), 60)
            t_reconn = time.monotonic() - t_kill
            # more new readings than could have been in flight at the kill: these went
            # through the node the agent moved to
            beyond = before + (WINDOW + ALARM_SLACK + 1) * PER_RECORD
            ok_over = wait_for(lambda: distinct(c) >= min(beyond, backlog), 60)
            t_over = time.monotonic() - t_kill
            ok_all = wait_for(lambda: distinct(c) >= backlog, timeout)
            t_done = time.monotonic()
            alive = agent.alive
        finally:
            agent.stop()
            c.stop()
        view = read_store(work / "state")
        moved = connections(log)[len(conns):]
        ok_moved = bool(moved) and all(u != cl.urls[victim] for u in moved)
        judge(res, c, view, resends=2, extra_ok=(
            ok_first and ok_part and ok_reconn and ok_over and ok_all and alive and ok_moved
            and victim not in (-1, watch) and not list(view.pending)
            and view.top == backlog))
    pre = before / max(t_kill - t_first, 1e-9)
    total = distinct(c) / max(t_done - t_first, 1e-9)
    res.figures.update({"reconnect_s": f"{t_reconn:.2f}", "failover_s": f"{t_over:.2f}",
                        "drain_before_kill_per_s": f"{pre:,.0f}",
                        "drain_overall_per_s": f"{total:,.0f}"})
    if baseline:
        res.figures["mosquitto_per_s"] = f"{mosquitto_drain(work / 'baseline', backlog):,.0f}"
    res.saw = (f"started on node {start} as predicted: {victim == start}; killed node "
               f"{victim}; agent on {moved} after {t_reconn:.2f}s; subscriber on node {watch} "
               f"has {res.received:,} of {res.accepted:,} seqs, {res.duplicates:,} duplicates")
    if victim == watch:
        res.notes.append("the agent was on the subscriber's node at the kill: not killed")
    if not res.ok:
        res.notes.append(agent_log_tail(log))
    return res


def mosquitto_drain(work: Path, backlog: int, timeout: float = 300.0) -> float:
    """The same drain (same channel settings, MQTT 3.1.1 confirmed by echo) through one
    mosquitto: readings/s at the subscriber, first message to the last missing one."""
    work.mkdir(parents=True, exist_ok=True)
    fill(work / "state", backlog, PER_RECORD, 4 * 1024**2)
    with Mosquitto(work / "broker") as b:
        c = v3_consumer(b.port)
        agent = AgentProcess(quiet_site(work, [b.url], extra_ot=ANY), work / "agent.log")
        agent.start()
        try:
            wait_for(lambda: distinct(c) > 0, 60)
            t0 = time.monotonic()
            done = wait_for(lambda: distinct(c) >= backlog, timeout)
            t1 = time.monotonic()
        finally:
            agent.stop()
            c.stop()
    return distinct(c) / max(t1 - t0, 1e-9) if done else 0.0
