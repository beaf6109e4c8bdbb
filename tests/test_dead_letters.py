"""dead/ and quarantine/ stay within the store's budget, a broker's refusals do not flood the
log, and what was deleted to stay within the budget is reported."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.core.clock import ManualClock
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.daemon.metrics import samples
from edge_agent.daemon.runtime import Agent
from edge_agent.daemon.status import format_status, snapshot
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.security import events as secevents
from edge_agent.store.aside import DEAD_SHARE, QUARANTINE_MAX_FILES
from edge_agent.store.channel_store import LOG_INTERVAL, ChannelStore
from edge_agent.tools.mosquitto import Mosquitto
from tests.conftest import wait_for, write_site

KEY = bytes(range(32))
WHY = "PUBACK 0x87 Not authorized"


def readings(n: int, start: int = 0) -> list[Reading]:
    return [Reading("meter", Channel.OT, Priority.NORMAL, "power", float(start + i),
                    1_700_000_000.0 + i, "W") for i in range(n)]


def dead_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "ot" / "dead").iterdir())


def refuse_all(store: ChannelStore) -> int:
    n = 0
    while batches := store.lease(100):
        for b in batches:
            assert store.reject(b.first, WHY)
            n += 1
    return n


def test_dead_letters_stay_within_their_share_oldest_go_first(tmp_path: Path) -> None:
    max_bytes = 64 * 1024
    s = ChannelStore(tmp_path, Channel.OT, KEY, max_bytes=max_bytes, batch_max=10,
                     reserve_bytes=0, clock=ManualClock())
    for i in range(200):  # 200 batches of 10, every one refused
        s.append(readings(10, start=i * 10))
        refuse_all(s)
    st = s.stats()
    assert st.dead_letters == 200
    assert dead_bytes(tmp_path) <= max_bytes // DEAD_SHARE
    assert st.dead_bytes == dead_bytes(tmp_path)
    kept = sorted(int(p.stem) for p in (tmp_path / "ot" / "dead").glob("*.rec"))
    assert len(list((tmp_path / "ot" / "dead").glob("*.why"))) == len(kept)
    assert kept[-1] == 1991  # the newest is kept ...
    assert st.dead_dropped == 200 - len(kept) > 0  # ... the oldest were deleted, and counted
    assert st.dead_dropped_ranges == [(1, kept[0] - 1)]  # as one contiguous seq range
    s.close()
    # an earlier run's dead letters count too, and a smaller budget trims them at start
    s = ChannelStore(tmp_path, Channel.OT, KEY, max_bytes=max_bytes // 4, reserve_bytes=0)
    st = s.stats()
    assert dead_bytes(tmp_path) <= max_bytes // 4 // DEAD_SHARE
    assert st.dead_dropped > 0 and st.dead_dropped_ranges[0][0] == kept[0]
    assert st.dead_dropped_ranges[-1][1] % 10 == 0  # the range end comes from the record
    s.close()


def test_dead_letters_count_against_the_budget_and_go_before_readings(tmp_path: Path) -> None:
    max_bytes = 64 * 1024
    s = ChannelStore(tmp_path, Channel.OT, KEY, max_bytes=max_bytes, batch_max=10,
                     segment_bytes=4096, reserve_bytes=0)
    for i in range(30):
        s.append(readings(10, start=i * 10))
        refuse_all(s)
    aside = s.stats().dead_bytes
    assert aside > 0
    while s.stats().bytes_on_disk + aside < max_bytes - 2048:  # readings fill the rest
        s.append(readings(10))
    s.append(readings(10))
    s.append(readings(10))
    st = s.stats()
    assert st.evicted["size"] == 0  # the dead letters made room, not undelivered readings
    assert st.dead_dropped > 0
    assert st.bytes_on_disk + st.dead_bytes <= max_bytes


def test_refusals_are_logged_once_per_interval_with_a_count(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    s = ChannelStore(tmp_path, Channel.OT, KEY, batch_max=1, reserve_bytes=0, clock=clock)
    s.append(readings(100))
    with caplog.at_level(logging.ERROR, logger="edge_agent.store"):
        assert refuse_all(s) == 100
        refused = [r for r in caplog.records if "broker refused" in r.getMessage()]
        assert len(refused) == 1  # was one line per batch
        caplog.clear()
        clock.advance(LOG_INTERVAL)
        s.append(readings(1))
        refuse_all(s)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "seq 101..101" in line and "99 similar lines suppressed" in line
    caplog.clear()
    s.append(readings(2))
    with caplog.at_level(logging.ERROR, logger="edge_agent.store"):
        refuse_all(s)
        s.flush_log()
        assert caplog.text == ""  # the interval has not passed yet
        clock.advance(LOG_INTERVAL)
        s.flush_log()
    assert "2 similar lines suppressed" in caplog.text and "seq 103..103" in caplog.text
    assert s.stats().dead_letters == 103  # the counter is exact whatever the log says


def test_quarantine_is_bounded_and_reported(tmp_path: Path) -> None:
    s = ChannelStore(tmp_path, Channel.OT, KEY, max_bytes=64 * 1024, reserve_bytes=0)
    s.close()
    lane = tmp_path / "ot" / "lane-1"
    for i in range(QUARANTINE_MAX_FILES + 20):
        (lane / f"junk-{i}.tmp").write_bytes(b"x" * 20)
    (lane / "big.tmp").write_bytes(b"x" * 64 * 1024)  # larger than the quarantine share
    s = ChannelStore(tmp_path, Channel.OT, KEY, max_bytes=64 * 1024, reserve_bytes=0)
    st = s.stats()
    files = list((tmp_path / "ot" / "quarantine").iterdir())
    assert len(files) <= QUARANTINE_MAX_FILES
    assert st.quarantined == QUARANTINE_MAX_FILES + 21  # every file is counted
    assert st.quarantine_dropped == 21
    assert st.quarantine_bytes == sum(p.stat().st_size for p in files)
    assert not list(lane.glob("*.tmp"))
    s.close()


def test_health_and_status_report_what_was_dropped(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto],
        caplog: pytest.LogCaptureFixture) -> None:
    """A broker refusing every publish (MQTT 5, 0x87): the dead letters stay bounded, the
    security log has one line (not one per batch), and health and status say what is gone."""
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite edge/test/n1/ot/status\n"
                   "topic readwrite edge/test/n1/ot/health\ntopic read #\n")
    ot = broker_factory(extra=f"acl_file {acl}\n")
    # one record per message (batch_max 50 on the channel too), so 60 refused messages
    cfg = write_site(tmp_path, ot.url, sensors="  []\n", extra_ot="    batch_max: 50\n",
                     store="  max_bytes: 256KiB\n  segment_bytes: 64KiB\n  batch_max: 50\n")
    secevents.EVENTS.reset()
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES, clock=ManualClock())
    store = agent.stores[Channel.OT]
    for i in range(60):
        store.append(readings(50, start=i * 50))
    with caplog.at_level(logging.INFO):
        agent.start()
        try:
            assert wait_for(lambda: store.stats().dead_letters == 60, timeout=30)
        finally:
            agent.stop_event.set()
            agent.shutdown()
    security = [r for r in caplog.records
                if r.name == "edge_agent.security" and "acl" in r.getMessage()]
    assert 1 <= len(security) <= 3  # the first, at most one with the health message, the rest
    assert secevents.EVENTS.counts("ot")["acl.denied"] == 60  # ... counted exactly
    refused = [r for r in caplog.records if "broker refused" in r.getMessage()]
    assert len(refused) == 1
    h = agent.health(Channel.OT)["store"]
    assert h["dead_letters"] == 60 and h["dead_dropped"] > 0
    assert h["dead_dropped_ranges"][0][0] == 1
    assert h["aside_bytes"] <= 256 * 1024 // DEAD_SHARE
    doc = snapshot(agent, state="running", config=None, started_at=0.0, interval=2.0)
    assert doc.channels["ot"].store.dead_dropped == h["dead_dropped"]
    assert doc.channels["ot"].ingest.dropped_alarms == 0
    out = io.StringIO()
    format_status("running", doc, out)
    assert f"{h['dead_dropped']} dead letters (seq 1..{h['dead_dropped_ranges'][0][1]})" \
        in out.getvalue()
    dropped = samples(doc)["edge_agent_aside_dropped_total"]
    assert ({"channel": "ot", "area": "dead"}, float(h["dead_dropped"])) in dropped
    secevents.EVENTS.reset()
