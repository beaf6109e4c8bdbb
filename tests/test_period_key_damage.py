"""A damaged period key file: its records are reported corrupt, the file is moved aside and
reported, the channel goes on with a fresh key (new id). Real files, real store, and the
real agent process against a real mosquitto."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.core.clock import ManualClock
from edge_agent.core.errors import KeyFileError
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.security import events as secevents
from edge_agent.security.keys import create_key, load_key
from edge_agent.security.periodkeys import CHANNEL_CHECK, PeriodKeyring
from edge_agent.store.channel_store import ChannelStore
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from tests.conftest import start_agent, wait_for, write_site

DAY = 86400.0
T0 = 1_780_000_000.0  # 2026-05-28



def readings(t: float, n: int, tag: str, priority: Priority = Priority.NORMAL) -> list[Reading]:
    return [Reading("s", Channel.IT, priority, tag, float(i), t + i) for i in range(n)]


def open_store(tmp_path: Path, clock: ManualClock) -> tuple[ChannelStore, PeriodKeyring]:
    kf = tmp_path / "keys" / "it.key"
    key = load_key(kf) if kf.exists() else create_key(kf)
    kr = PeriodKeyring(tmp_path / "keys" / "it", "it", key, DAY, clock=clock,
                       on_event=secevents.sink("it"))
    return ChannelStore(tmp_path / "store", Channel.IT, kr, clock=clock,
                        on_event=secevents.sink("it")), kr


def drain(store: ChannelStore) -> list[str]:
    out: list[str] = []
    while batches := store.lease(100):
        for b in batches:
            out += [r["n"] for r in json.loads(b.senml)]
            store.ack(b.first)
    return out


def flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[30] ^= 0x10  # inside the wrapped key
    path.write_bytes(bytes(data))


def empty(path: Path) -> None:
    path.write_bytes(b"")


def cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


@pytest.mark.parametrize("damage", [flip_bit, empty, cut_short])
def test_damaged_key_reports_its_records_corrupt_and_the_channel_goes_on(
        tmp_path: Path, damage: Callable[[Path], None]) -> None:
    clock = ManualClock(T0)
    store, kr = open_store(tmp_path, clock)
    day0 = store.append(readings(T0, 5, "day0") + readings(T0, 2, "alarm0", Priority.ALARM))
    day1 = store.append(readings(T0 + DAY, 5, "day1"))
    store.close()
    victim = next(k for k in kr.list_keys() if k.period == int(T0 // DAY))
    inode = victim.path.stat().st_ino
    top_kid = max(k.kid for k in kr.list_keys())
    damage(victim.path)

    store, kr = open_store(tmp_path, clock)  # no exception: the store opens
    aside = list(victim.path.parent.glob(f"damaged-*-{victim.path.name}"))
    assert len(aside) == 1 and not victim.path.exists()
    assert aside[0].stat().st_ino == inode  # renamed, not copied
    assert aside[0].stat().st_mode & 0o777 == 0o600
    st = store.stats()
    lost = {n for a, b, why in st.evicted_recent if why == "corrupt" for n in range(a, b + 1)}
    # the alarm and normal records of that period, by range (adjacent ranges merged)
    assert lost == {n for a, b in day0 for n in range(a, b + 1)}
    assert st.evicted["corrupt"] == 7
    counts = secevents.EVENTS.counts("it")
    assert counts.get("key.quarantined") == 1 and counts.get("store.lost") == 1
    # the channel goes on: the damaged period gets a fresh key with a new id
    clock.advance(60)
    new = store.append(readings(T0 + 60, 3, "after") + readings(T0 + 60, 1, "alarm1",
                                                                  Priority.ALARM))
    kid, _ = kr.current(T0 + 60)
    assert kid > top_kid
    got = drain(store)
    assert sorted(set(got)) == ["s/after", "s/alarm1", "s/day1"]
    assert new[0][0] > day1[0][1]
    store.close()
    # reported once: a restart does not report (or lose) anything again
    secevents.EVENTS.reset()
    store, kr = open_store(tmp_path, clock)
    assert store.stats().evicted["corrupt"] == 7
    assert secevents.EVENTS.counts("it") == {}
    store.close()


def test_key_damaged_while_running_is_reported_when_read(tmp_path: Path) -> None:
    """The keyring opened before the damage (the agent is running): a record whose key it
    has not loaded yet is reported corrupt when leased, not an exception in the uplink."""
    clock = ManualClock(T0)
    store, kr = open_store(tmp_path, clock)
    r = store.append(readings(T0, 3, "x"))
    store.close()
    (victim,) = kr.list_keys()
    kr2 = PeriodKeyring(victim.path.parent, "it", load_key(tmp_path / "keys" / "it.key"), DAY,
                        clock=clock)
    kr2._cache.clear()  # as if not loaded yet
    empty(victim.path)
    assert kr2.get(victim.kid) is None
    assert kr2.lost(victim.kid) == "corrupt"
    store = ChannelStore(tmp_path / "store", Channel.IT, kr2, clock=clock)
    assert drain(store) == []
    assert [(a, b, why) for a, b, why in store.stats().evicted_recent] == [(*r[0], "corrupt")]
    store.close()


def test_wrong_channel_key_is_refused_not_taken_for_damage(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store, kr = open_store(tmp_path, clock)
    store.append(readings(T0, 3, "x"))
    store.close()
    (k,) = kr.list_keys()
    before = k.path.read_bytes()
    other = PeriodKeyring(k.path.parent, "it", b"\x01" * 32, DAY, clock=clock)
    with pytest.raises(KeyFileError, match="cannot unwrap"):
        other.get(k.kid)
    with pytest.raises(KeyFileError, match="cannot unwrap"):
        other.current(T0)
    assert k.path.read_bytes() == before and not list(k.path.parent.glob("damaged-*"))
    assert other.lost(k.kid) is None


def test_without_a_check_file_an_opening_key_tells_damage_from_a_wrong_key(
        tmp_path: Path) -> None:
    """Key directories from before channel.check: any period key that still opens proves
    the channel key right, so a failing one is damage; the check file is written then."""
    clock = ManualClock(T0)
    store, kr = open_store(tmp_path, clock)
    store.append(readings(T0, 3, "day0"))
    store.append(readings(T0 + DAY, 3, "day1"))
    store.close()
    (kr.dir / CHANNEL_CHECK).unlink()
    victim = kr.list_keys()[0]
    flip_bit(victim.path)
    store, kr = open_store(tmp_path, clock)
    assert (kr.dir / CHANNEL_CHECK).exists()
    assert kr.lost(victim.kid) == "corrupt"
    assert drain(store) == ["s/day1"] * 3
    store.close()


# ---------------------------------------------------------------------- the real agent


def test_agent_process_survives_a_damaged_key_and_reports_the_range(
        tmp_path: Path, broker: Mosquitto) -> None:
    sensors = ("  - {id: gen, type: load, channel: ot, rate: 200}\n"
               "  - {id: sos, type: load, channel: ot, priority: alarm, rate: 5}\n")
    log = tmp_path / "agent.log"
    # 1. offline (no broker): readings are accepted and sealed with today's period key
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", sensors=sensors)
    p = start_agent(cfg, log)
    state = tmp_path / "state"
    assert wait_for(lambda: (state / "store" / "ot" / "seq.hwm").exists(), timeout=15)
    assert wait_for(lambda: any((state / "store" / "ot").glob("lane-0/*.seg")), timeout=15)
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) == 0
    kdir = state / "keys" / "ot"
    (victim,) = [f for f in kdir.glob("*.key") if not f.name.startswith("damaged-")]
    old_kid = int(victim.stem.split("-")[2])
    # the offline accepted range, read from the store before the damage
    s = ChannelStore(state / "store", Channel.OT, load_key(state / "keys" / "ot.key"))
    top = s.next_seq - 1
    s.close()
    assert top > 10
    flip_bit(victim)

    # 2. restart against a real broker: it runs, reports, and delivers new readings
    c = Consumer("127.0.0.1", broker.port, "edge/test/n1/ot").start()
    cfg = write_site(tmp_path, broker.url, sensors=sensors)
    p = start_agent(cfg, log)
    try:
        def reported() -> bool:
            for h in c.snapshot().health:
                ranges = h["store"]["evicted_ranges"]
                if any(why == "corrupt" for _, _, why in ranges):
                    return True
            return False
        assert wait_for(reported, timeout=20), log.read_text()[-3000:]
        assert wait_for(lambda: any(m.topic.endswith("/alarm") and m.msg["seq"][0] > top
                                    for m in c.snapshot().messages), timeout=20)
        assert wait_for(lambda: c.snapshot().readings > 100, timeout=20)
        assert p.poll() is None
    finally:
        p.send_signal(signal.SIGTERM)
        code = p.wait(15)
        c.stop()
    assert code == 0, log.read_text()[-3000:]
    health = c.snapshot().health
    corrupt = [(a, b) for h in health for a, b, why in h["store"]["evicted_ranges"]
               if why == "corrupt"]
    covered = set()
    for a, b in corrupt:
        covered.update(range(a, b + 1))
    got = c.received()
    # every offline-accepted number is either reported corrupt or (none here) delivered
    assert all(n in covered or n in got for n in range(1, top + 1))
    assert covered and max(covered) <= top  # nothing after the damage is reported lost
    assert '"outcome": "quarantined"' in log.read_text()
    assert list(kdir.glob(f"damaged-*-{victim.name}"))
    new_kids = [int(f.stem.split("-")[2]) for f in kdir.glob("*.key")
                if not f.name.startswith("damaged-")]
    assert new_kids and min(new_kids) > old_kid
    assert os.stat(kdir).st_mode & 0o777 == 0o700
