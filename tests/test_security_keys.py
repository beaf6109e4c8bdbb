"""Key lifecycle: period keys, rotation, crypto-shredding, retention, the keys CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from edge_agent.config import load_config
from edge_agent.core.clock import ManualClock
from edge_agent.core.errors import KeyFileError
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.daemon.runtime import Agent
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.security import events as secevents
from edge_agent.security.keys import create_key, load_key
from edge_agent.security.periodkeys import PeriodKeyring, open_keyring
from edge_agent.store import record as rec
from edge_agent.store.channel_store import ChannelStore
from edge_agent.store.keyuse import key_ids_in_use
from tests.conftest import EDGE_AGENT, write_site

DAY = 86400.0
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z



def readings(t: float, n: int, tag: str) -> list[Reading]:
    return [Reading("vital", Channel.IT, Priority.NORMAL, f"{tag}", 1000.0 + i + 0.25, t + i)
            for i in range(n)]


def open_store(tmp_path: Path, clock: ManualClock, retention: float | None = None
               ) -> tuple[ChannelStore, PeriodKeyring]:
    kf = tmp_path / "keys" / "it.key"
    key = load_key(kf) if kf.exists() else create_key(kf)
    kr = PeriodKeyring(tmp_path / "keys" / "it", "it", key, DAY, retention=retention,
                       clock=clock)
    return ChannelStore(tmp_path / "store", Channel.IT, kr, clock=clock,
                        on_event=secevents.sink("it")), kr


def drain(store: ChannelStore) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    while batches := store.lease(100):
        for b in batches:
            out += json.loads(b.senml)
            store.ack(b.first)
    return out


def test_one_key_per_period_private_and_wrapped(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store, kr = open_store(tmp_path, clock)
    for day in range(3):
        store.append(readings(T0 + day * DAY, 5, f"day{day}"))
    keys = kr.list_keys()
    assert [k.period for k in keys] == [int(T0 // DAY) + d for d in range(3)]
    assert len({k.kid for k in keys}) == 3 and all(k.kid >= 2 for k in keys)
    for k in keys:
        assert k.path.stat().st_mode & 0o777 == 0o600
        assert k.path.read_bytes().startswith(b"EAPK1") and len(k.path.read_bytes()) == 65
    assert (tmp_path / "keys" / "it").stat().st_mode & 0o777 == 0o700
    assert len(drain(store)) == 15
    store.close()


def test_shredding_a_period_makes_it_unreadable_and_reported(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store, kr = open_store(tmp_path, clock)
    ranges = [store.append(readings(T0 + d * DAY, 4, f"day{d}"))[0] for d in range(3)]
    store.close()
    victim = kr.list_keys()[0]
    raw_before = {p: p.read_bytes() for p in (tmp_path / "store").rglob("*.seg")}
    assert kr.shred([victim], "test") == 1
    assert not victim.path.exists()
    # the raw files: no plaintext anywhere, and no remaining key opens the shredded records
    survivors = PeriodKeyring(tmp_path / "keys" / "it", "it",
                              load_key(tmp_path / "keys" / "it.key"), DAY, clock=clock)
    for data in raw_before.values():
        assert b"day0" not in data and b"1000.25" not in data
        off = 0
        while off < len(data):
            head = rec.parse_header(data[off:off + rec.HEAD_SIZE])
            rec_bytes = data[off:off + head.size]
            if head.key_id == victim.kid:
                for k in [*survivors.list_keys(), None]:
                    aead = survivors.get(k.kid) if k else survivors.get(1)
                    assert aead is not None
                    with pytest.raises(InvalidTag):
                        aead.decrypt(head.nonce, rec_bytes[rec.HEAD_SIZE:-4],
                                     b"it" + rec_bytes[:rec.HEAD_SIZE])
            off += head.size
    store2, _ = open_store(tmp_path, clock)
    got = drain(store2)
    assert sorted({r["n"] for r in got}) == ["vital/day1", "vital/day2"]
    st = store2.stats()
    assert st.evicted["shredded"] == 4 and st.evicted["corrupt"] == 0
    assert [tuple(x) for x in st.evicted_recent] == [(ranges[0][0], ranges[0][1], "shredded")]
    assert secevents.EVENTS.counts("it").get("store.shredded") == 1
    store2.close()


def test_retention_shreds_old_period_keys(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store, kr = open_store(tmp_path, clock, retention=2 * DAY)
    for d in range(4):
        store.append(readings(T0 + d * DAY, 3, f"day{d}"))
    clock.advance(4 * DAY)
    assert kr.shred_expired() >= 2
    cutoff = clock.time() - 2 * DAY
    assert all(kr.period_end(k.period) > cutoff for k in kr.list_keys())
    assert kr.shred_expired() == 0  # rate limited, and nothing left to do
    log = (tmp_path / "keys" / "it" / "shredded.log").read_text().splitlines()
    assert len(log) >= 2
    store.close()


def test_rotation_keeps_buffered_data_and_prune_only_drops_unused(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store, kr = open_store(tmp_path, clock)
    store.append(readings(T0, 5, "before"))
    old_kid = kr.current(T0)[0]
    new = kr.rotate()
    assert new.kid != old_kid and kr.current(T0)[0] == new.kid
    store.append(readings(T0 + 10, 5, "after"))
    assert key_ids_in_use(tmp_path / "store" / "it") == {old_kid, new.kid}
    assert kr.prune(key_ids_in_use(tmp_path / "store" / "it")) == 0  # both still used
    assert {r["n"] for r in drain(store)} == {"vital/before", "vital/after"}
    store.close()
    # once delivered segments are gone, the superseded key is no longer needed
    for seg in (tmp_path / "store" / "it").glob("lane-*/*.seg"):
        seg.unlink()
    assert kr.prune(set()) == 1
    assert [k.kid for k in kr.list_keys()] == [new.kid]


def test_records_from_before_period_keys_stay_readable(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    key = create_key(tmp_path / "keys" / "it.key")
    legacy = ChannelStore(tmp_path / "store", Channel.IT, key, clock=clock)
    legacy.append(readings(T0, 3, "legacy"))
    legacy.close()
    store, _ = open_store(tmp_path, clock)
    store.append(readings(T0, 3, "new"))
    assert {r["n"] for r in drain(store)} == {"vital/legacy", "vital/new"}
    store.close()


def test_loose_or_foreign_period_key_is_refused(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store, kr = open_store(tmp_path, clock)
    store.append(readings(T0, 1, "x"))
    store.close()
    (k,) = kr.list_keys()
    k.path.chmod(0o644)
    with pytest.raises(KeyFileError, match=f"chmod 600 {k.path}"):
        open_store(tmp_path, clock)
    k.path.chmod(0o600)
    other = PeriodKeyring(tmp_path / "keys" / "it", "it", b"\x01" * 32, DAY, clock=clock)
    with pytest.raises(KeyFileError, match="cannot unwrap"):
        other.get(k.kid)


def _site(tmp_path: Path) -> Path:
    return write_site(tmp_path, "mqtt://127.0.0.1:1", "mqtt://127.0.0.1:2",
                      sensors="  - {id: g, type: load, channel: it, subject: r-1}\n",
                      store="  retention: {it: 7d, ot: 30d}\n")


def keys_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGE_AGENT, "keys", *args], capture_output=True, text=True,
                          timeout=60)


def test_keys_cli_init_rotate_status_shred_all(tmp_path: Path) -> None:
    cfg = _site(tmp_path)
    state = tmp_path / "state"
    out = keys_cli("init", "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    for name in ("ot.key", "it.key", "pseudonym.key"):
        assert (state / "keys" / name).stat().st_mode & 0o777 == 0o600, name
    for d in (state, state / "keys", state / "keys" / "ot", state / "keys" / "it"):
        assert d.stat().st_mode & 0o777 == 0o700, d
    assert "kept" in keys_cli("init", "-c", str(cfg)).stdout  # idempotent, never overwrites
    out = keys_cli("rotate", "-c", str(cfg), "--channel", "it")
    assert out.returncode == 0 and "is current" in out.stdout, out.stderr
    out = keys_cli("status", "-c", str(cfg))
    assert out.returncode == 0 and "channel it: key" in out.stdout
    assert keys_cli("shred", "-c", str(cfg), "--all").returncode == 2  # needs --yes
    out = keys_cli("shred", "-c", str(cfg), "--all", "--yes")
    assert out.returncode == 0, out.stderr
    assert not list((state / "keys").rglob("*.key"))
    # audit events go to the journal with their fields (test_cli_habits.py), not into the
    # terminal of the person who ran the command
    assert '"category"' not in out.stderr and '"outcome"' not in out.stderr


def test_agent_refuses_loose_pseudonym_key(tmp_path: Path) -> None:
    cfg = _site(tmp_path)
    pk = tmp_path / "state" / "keys" / "pseudonym.key"
    create_key(pk)
    pk.chmod(0o644)
    with pytest.raises(KeyFileError, match=f"chmod 600 {pk}"):
        Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)


def test_agent_uses_period_keys_by_default_and_static_key_when_zero(tmp_path: Path) -> None:
    cfg = _site(tmp_path)
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
    assert set(agent.keyrings) == {Channel.OT, Channel.IT}
    assert agent.keyrings[Channel.IT].retention == 7 * DAY
    agent.shutdown()
    cfg.write_text(cfg.read_text().replace("  retention:", "  key_period: 0\n  retention:"))
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
    assert agent.keyrings == {}
    agent.shutdown()


def test_systemd_credentials_supply_the_at_rest_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LoadCredential=: keys come from $CREDENTIALS_DIRECTORY, none is made in the state dir."""
    cfg = _site(tmp_path)
    creds = tmp_path / "creds"
    creds.mkdir()
    for ch in ("ot", "it"):
        create_key(creds / f"{ch}.key")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
    agent.shutdown()
    keys_dir = tmp_path / "state" / "keys"
    assert not (keys_dir / "ot.key").exists() and not (keys_dir / "it.key").exists()
    # period keys are wrapped with the credential key: another key cannot open them
    clock = ManualClock(1_800_000_000.0)
    ok = open_keyring(tmp_path / "state", "it", load_key(creds / "it.key"), DAY, 7 * DAY, clock)
    assert isinstance(ok, PeriodKeyring)
    kid, _ = ok.current(clock.time())
    wrong = tmp_path / "wrong.key"
    create_key(wrong)
    other = open_keyring(tmp_path / "state", "it", load_key(wrong), DAY, 7 * DAY, clock)
    assert isinstance(other, PeriodKeyring)
    with pytest.raises(KeyFileError, match="cannot unwrap"):
        other.get(kid)
    (creds / "it.key").chmod(0o644)
    with pytest.raises(KeyFileError, match=str(creds / "it.key")):
        Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)


def test_key_changes_are_refused_while_the_agent_runs(tmp_path: Path) -> None:
    """A running agent caches its keys: rotate/prune/shred wait until it is stopped."""
    cfg = _site(tmp_path)
    assert keys_cli("init", "-c", str(cfg)).returncode == 0
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)  # holds the store locks
    try:
        for cmd in (["rotate"], ["prune"], ["shred"], ["shred", "--all", "--yes"]):
            r = keys_cli(*cmd, "-c", str(cfg))
            assert r.returncode == 1, (cmd, r.stdout, r.stderr)
            assert "the agent is running" in r.stderr
            assert (f"sudo systemctl stop edge-agent && sudo edge-agent keys {cmd[0]} -c {cfg}"
                    in r.stderr), r.stderr
            assert "&& sudo systemctl start edge-agent" in r.stderr
        assert keys_cli("status", "-c", str(cfg)).returncode == 0  # reading is fine
        assert (tmp_path / "state" / "keys" / "it.key").exists()  # --all shredded nothing
    finally:
        agent.shutdown()
    r = keys_cli("rotate", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "is current" in r.stdout


def test_read_private_checks_the_file_it_reads(tmp_path: Path) -> None:
    import os

    from edge_agent.core.errors import KeyFileError
    from edge_agent.security.keys import read_private

    path = tmp_path / "secret"
    path.write_bytes(b"x" * 10)
    path.chmod(0o600)
    assert read_private(path) == b"x" * 10
    with pytest.raises(KeyFileError, match="larger than 4 bytes"):
        read_private(path, limit=4)
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_private(path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyFileError, match="not a regular file"):  # refused, not waited on
        read_private(fifo)
    with pytest.raises(KeyFileError, match="not found"):
        read_private(tmp_path / "absent")
