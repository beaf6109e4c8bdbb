"""The runtime without brokers: sensor isolation, group commit, alarm fast path, failover."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pytest

from edge_agent.config import load_config
from edge_agent.core.clock import ManualClock
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.daemon.ingest import IngestQueue
from edge_agent.daemon.runtime import Agent, ChannelWriter
from edge_agent.devices.base import Emit, Sensor
from edge_agent.devices.registry import SENSOR_TYPES, SensorType
from edge_agent.store.channel_store import ChannelStore
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto, free_port
from tests.conftest import wait_for, write_site


@dataclass(frozen=True)
class _NoOptions:
    pass


class _Crashing(Sensor):
    runs = 0

    def run(self, emit: Emit, stop: threading.Event) -> None:
        type(self).runs += 1
        raise RuntimeError("driver bug")


def _types() -> MappingProxyType[str, SensorType]:
    extra = SensorType("crashing", "a driver with a bug", _NoOptions,
                       lambda spec, o, ctx: _Crashing(spec, ctx), Channel.OT)
    return MappingProxyType({**SENSOR_TYPES, "crashing": extra})


def test_a_crashing_sensor_does_not_stop_the_others(tmp_path: Path) -> None:
    cfg = write_site(tmp_path, f"mqtt://127.0.0.1:{free_port()}",
                     sensors="  - {id: bad, type: crashing}\n"
                             "  - {id: good, type: load, rate: 100}\n")
    types = _types()
    agent = Agent(load_config(cfg, types), types)
    agent.start()
    try:
        store = agent.stores[Channel.OT]
        assert wait_for(lambda: store.stats().accepted >= 50, timeout=10)

        def restarted() -> bool:
            agent.supervise_once()
            return _Crashing.runs >= 2

        assert wait_for(restarted, timeout=10, interval=0.2)  # with backoff, not given up
    finally:
        agent.shutdown()


def test_alarms_are_accepted_at_once_normal_readings_are_grouped(tmp_path: Path) -> None:
    cfg = write_site(tmp_path, f"mqtt://127.0.0.1:{free_port()}")
    cfg.write_text(cfg.read_text().replace("commit_interval: 100ms", "commit_interval: 5s"))
    clock = ManualClock()  # the commit interval passes only when the test says so
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES, clock=clock)
    agent.start()
    try:
        q, store = agent.queues[Channel.OT], agent.stores[Channel.OT]
        q.put([Reading("m", Channel.OT, Priority.NORMAL, "p", 1.0, 1.7e9)])
        q.put([Reading("sos", Channel.OT, Priority.ALARM, "pressed", True, 1.7e9)])
        assert wait_for(lambda: store.stats().backlog["alarm"] == 1, timeout=5)
        assert store.stats().accepted == 1  # the alarm at once; the normal one grouped
        clock.advance(5.0)
        assert wait_for(lambda: store.stats().backlog["normal"] == 1, timeout=5)
    finally:
        agent.shutdown()
    assert store.stats().accepted == 2  # shutdown commits what was queued


def test_ingest_queue_is_bounded_and_alarms_never_wait() -> None:
    q = IngestQueue(max_readings=10)
    normal = [Reading("m", Channel.OT, Priority.NORMAL, "p", 1.0, 1.7e9)] * 10
    assert q.put(normal)
    stop = threading.Event()
    blocked = threading.Thread(target=q.put, args=(normal, stop))
    blocked.start()
    time.sleep(0.2)
    assert blocked.is_alive()  # backpressure on a full queue
    assert q.put([Reading("b", Channel.OT, Priority.ALARM, "pressed", True, 1.7e9)])
    assert len(q.take_alarms()) == 1
    assert len(q.take_all()) == 10
    blocked.join(2)
    assert not blocked.is_alive()
    assert q.pending == 10


def test_failover_to_the_second_broker(tmp_path: Path,
                                       broker_factory: Callable[..., Mosquitto]) -> None:
    live = broker_factory()
    dead = f"mqtt://127.0.0.1:{free_port()}"
    cfg = write_site(tmp_path, dead, sensors="  - {id: g, type: load, rate: 50}\n")
    cfg.write_text(cfg.read_text().replace(f'brokers: ["{dead}"]',
                                           f'brokers: ["{dead}", "{live.url}"]'))
    c = Consumer("127.0.0.1", live.port, "edge/test/n1/ot").start()
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
    agent.start()
    try:
        assert wait_for(lambda: c.rec.readings >= 20, timeout=15)
        up = agent.uplinks[Channel.OT].stats
        assert up.broker == live.url and up.connect_failures >= 1
    finally:
        agent.shutdown()
        c.stop()



class _SegmentFsyncFails:
    """Real fsync, except that the next ``times`` fsyncs of a segment file fail (EIO)."""

    def __init__(self, times: int) -> None:
        self.left = times

    def __call__(self, fd: int) -> None:
        if self.left and os.readlink(f"/proc/self/fd/{fd}").endswith(".seg"):
            self.left -= 1
            raise OSError(errno.EIO, "injected fsync failure")
        os.fsync(fd)


def _commit_once(store: ChannelStore, batch: list[Reading]) -> int:
    """Run a ChannelWriter over one queued batch until it stops; returns on_commit calls."""
    q = IngestQueue(1000)
    commits: list[int] = []
    w = ChannelWriter(Channel.OT, q, store, 60.0, lambda: commits.append(1), ManualClock())
    q.put(batch)
    w.stop.set()  # commit what is queued, then return
    w.thread.start()
    w.thread.join(10)
    assert not w.thread.is_alive() and w.error is None
    return len(commits)


@pytest.mark.parametrize(("failures", "accepted", "not_accepted"),
                         [(0, 10, 0), (1, 10, 0), (2, 0, 10), (3, 0, 10)])
def test_writer_counts_a_reading_not_accepted_once_across_retries(
        tmp_path: Path, failures: int, accepted: int, not_accepted: int) -> None:
    store = ChannelStore(tmp_path, Channel.OT, bytes(32), fsync=_SegmentFsyncFails(failures),
                         reserve_bytes=0)
    batch = [Reading("m", Channel.OT, Priority.NORMAL, "p", float(i), 1.7e9) for i in range(10)]
    try:
        commits = _commit_once(store, batch)
        st = store.stats()
        assert (st.accepted, st.not_accepted) == (accepted, not_accepted)
        assert commits == (1 if accepted else 0)
    finally:
        store.close()


def test_writer_counts_a_full_store_once(tmp_path: Path) -> None:
    store = ChannelStore(tmp_path, Channel.OT, bytes(32), max_bytes=1, reserve_bytes=0)
    try:
        store.append([Reading("sos", Channel.OT, Priority.ALARM, "pressed", True, 1.7e9)])
        batch = [Reading("m", Channel.OT, Priority.NORMAL, "p", 1.0, 1.7e9)] * 7
        assert _commit_once(store, batch) == 0
        st = store.stats()
        assert (st.accepted, st.not_accepted) == (1, 7)
    finally:
        store.close()
