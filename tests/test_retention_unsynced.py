"""Retention and the unset clock (a Pi without RTC boots in 1970), and key ids that never
come back. Injected clock, real store and key files."""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.core.clock import ManualClock
from edge_agent.core.model import CLOCK_FLOOR, Channel, Priority, Reading
from edge_agent.security.keys import create_key, load_key
from edge_agent.security.periodkeys import KID_HWM, PeriodKeyring
from edge_agent.store.channel_store import ChannelStore

DAY = 86400.0
WEEK = 7 * DAY
BOOT = 60.0  # 1970-01-01T00:01:00Z: the wall clock of a Pi without RTC
SYNCED = 1_780_000_000.0  # 2026-05-28, after NTP


def readings(t: float, n: int, tag: str, priority: Priority = Priority.NORMAL) -> list[Reading]:
    return [Reading("s", Channel.IT, priority, tag, float(i), t + i) for i in range(n)]


def open_store(tmp_path: Path, clock: ManualClock, **kw: float
               ) -> tuple[ChannelStore, PeriodKeyring]:
    kf = tmp_path / "keys" / "it.key"
    key = load_key(kf) if kf.exists() else create_key(kf)
    kr = PeriodKeyring(tmp_path / "keys" / "it", "it", key, DAY, retention=WEEK, clock=clock)
    store = ChannelStore(tmp_path / "store", Channel.IT, kr, retention=WEEK, clock=clock,
                         segment_bytes=int(kw.get("segment_bytes", 4 * 1024**2)))
    return store, kr


def drain(store: ChannelStore) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    while batches := store.lease(100):
        for b in batches:
            out += json.loads(b.senml)
            store.ack(b.first)
    return out


def supervise(store: ChannelStore, kr: PeriodKeyring) -> int:
    """What the agent's supervisor does every second."""
    return store.enforce_retention() + kr.shred_expired(every=0.0)


def test_readings_from_before_the_clock_sync_survive_the_sync_and_are_delivered(
        tmp_path: Path) -> None:
    clock = ManualClock(BOOT)
    store, kr = open_store(tmp_path, clock)
    for i in range(12):  # an hour of 1970 readings, uplink down
        store.append(readings(BOOT + i * 300, 98, "early"))
        store.append(readings(BOOT + i * 300, 1, "alarm", Priority.ALARM))
        clock.advance(300)
        assert supervise(store, kr) == 0
    early_kids = {k.kid for k in kr.list_keys()}
    clock.set_wall(SYNCED)  # NTP: 56 years later
    store.append(readings(SYNCED, 10, "late"))
    for _ in range(3):
        clock.advance(3600)
        assert supervise(store, kr) == 0
    store.close()
    store, kr = open_store(tmp_path, clock)  # and across a restart
    assert supervise(store, kr) == 0
    assert early_kids <= {k.kid for k in kr.list_keys()}  # their key was not shredded
    got = drain(store)
    assert len(got) == 12 * 99 + 10
    assert sum(1 for r in got if r.get("clock_") == "unsynced") == 12 * 99
    st = store.stats()
    assert st.evicted["retention"] == 0 and st.evicted["shredded"] == 0
    assert st.evicted_recent == []
    store.close()


def test_retention_still_applies_to_synced_readings(tmp_path: Path) -> None:
    clock = ManualClock(SYNCED)
    store, kr = open_store(tmp_path, clock, segment_bytes=1)  # one segment per batch
    store.append(readings(BOOT, 5, "early"))
    old = store.append(readings(SYNCED - 10 * DAY, 5, "old"))
    store.append(readings(SYNCED, 5, "new"))
    assert store.enforce_retention() == 5
    assert [tuple(x) for x in store.stats().evicted_recent] == [(*old[0], "retention")]
    assert kr.shred_expired(every=0.0) == 1  # the 10-day-old period only
    assert sorted({str(r["n"]) for r in drain(store)}) == ["s/early", "s/new"]
    store.close()


def test_nothing_expires_while_the_clock_is_unset(tmp_path: Path) -> None:
    clock = ManualClock(SYNCED)
    store, kr = open_store(tmp_path, clock)
    store.append(readings(SYNCED - 2 * DAY, 5, "x"))
    clock.set_wall(BOOT + 30 * DAY)  # reboot without RTC, a month "after" 1970
    assert supervise(store, kr) == 0
    assert BOOT + 30 * DAY < CLOCK_FLOOR
    assert len(drain(store)) == 5
    store.close()


def test_key_ids_only_grow_across_shred_loss_and_restart(tmp_path: Path) -> None:
    clock = ManualClock(SYNCED)
    store, kr = open_store(tmp_path, clock)
    kids = [kr.current(SYNCED + d * DAY)[0] for d in range(3)]
    assert kids == sorted(kids) and len(set(kids)) == 3
    newest = kr.list_keys()[-1]
    assert newest.kid == kids[-1]
    kr.shred([newest], "test")  # the highest id is shredded...
    kid = kr.current(SYNCED + 3 * DAY)[0]
    assert kid > kids[-1]  # ...and does not come back
    store.close()
    # a lost key file (deleted, not shredded: not in shredded.log) and a restart
    lost = kr.list_keys()[-1]
    assert lost.kid == kid
    lost.path.unlink()
    store, kr = open_store(tmp_path, clock)
    kid2 = kr.current(SYNCED + 4 * DAY)[0]
    assert kid2 > kid
    store.close()
    # a damaged mark: ids continue above every id still on record (shredded.log too)
    (kr.dir / KID_HWM).write_text("garbage\n")
    for k in kr.list_keys():
        if k.kid == kid2:
            kr.shred([k], "test")
    store, kr = open_store(tmp_path, clock)
    kid3 = kr.current(SYNCED + 5 * DAY)[0]
    assert kid3 > kid2
    assert (kr.dir / KID_HWM).stat().st_mode & 0o777 == 0o600
    store.close()
