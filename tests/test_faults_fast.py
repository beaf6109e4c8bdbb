"""A fast subset of the fault-injection rig (hil/faults): every test asserts zero silent loss.

Each test proves one kind of fault once, with the fewest iterations that still reach it;
the full suite is ``python -m hil.faults`` (``--nightly`` for many more iterations).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from edge_agent.core.model import Channel
from edge_agent.store.channel_store import ChannelStore
from hil.common import readings
from hil.faults import devices, keyfaults, powerloss, scenarios, storefaults
from hil.faults.rig import Result

pytestmark = pytest.mark.slow


def _clean(r: Result) -> None:
    assert r.silent_loss == 0, r.saw
    assert r.order_violations == 0, r.saw
    assert r.duplicates <= r.dup_bound, r.saw
    assert r.ok, f"{r.saw} {r.notes}"


def test_crash_kill9_x10(tmp_path: Path) -> None:
    # up to 2 s up (the rig's range): on a loaded machine start-up alone can take 1 s, and
    # kills that all land before the first commit prove nothing
    r = scenarios.crash(tmp_path, iterations=10, up=(0.3, 2.0), seed=1)
    _clean(r)
    assert r.received > 0


def test_power_loss_x20(tmp_path: Path) -> None:
    r = powerloss.power_loss(tmp_path, iterations=20, seed=2)
    _clean(r)
    assert r.figures["reopen_failed"] == 0 and r.figures["seq_reused"] == 0


def test_broker_kill_restart(tmp_path: Path) -> None:
    _clean(scenarios.broker_kill(tmp_path, kills=2, seed=3))


def test_proxy_stall_detected_within_keepalive_budget(tmp_path: Path) -> None:
    r = scenarios.network(tmp_path, keepalive=2.0, stalls=1)
    _clean(r)


def test_corruption_quarantined_reported_no_crash_loop(tmp_path: Path) -> None:
    # the tail cut at every offset is the next test's: not run twice
    _clean(storefaults.corruption(tmp_path, truncation=False))


def test_truncated_newest_record_is_named_and_never_reused(tmp_path: Path) -> None:
    """Cutting an accepted record at every offset, including exactly at a record boundary
    (nothing torn to see): after a clean stop, a process crash and a power cut."""
    figures = storefaults.truncate_every_offset(tmp_path)
    assert set(figures) == {"middle", "newest", "newest-crash", "newest-powercut"}
    for label, t in figures.items():
        assert t["open_failed"] == 0, label
        assert t["silent"] == 0 and t["seq_reused"] == 0, (label, t)
        assert t["named"] == t["offsets"], (label, t)


def test_damaged_period_key_no_crash_loop_range_reported(tmp_path: Path) -> None:
    r = keyfaults.damaged_key(tmp_path, offline=1.0, starts=2)
    _clean(r)
    assert r.evicted > 0  # the range sealed with the damaged key, reported corrupt


def test_devices_vanish_and_return_nothing_invented(tmp_path: Path) -> None:
    r = devices.devices(tmp_path)
    _clean(r)
    assert r.figures["invented"] == 0


def test_fsync_failure_not_accepted_and_reported(tmp_path: Path) -> None:
    _clean(storefaults.fsync_failure(tmp_path, fail_for=0.5))


def test_batch_spanning_a_segment_boundary_is_accepted(tmp_path: Path) -> None:
    """Regression: a multi-record batch that fills a segment used to trip an assertion
    (the full segment was closed before its fsync)."""
    key = secrets.token_bytes(32)
    s = ChannelStore(tmp_path, Channel.OT, key, segment_bytes=2048, reserve_bytes=0)
    ranges = [r for i in range(5) for r in s.append(readings(2000, start=i * 2000))]
    s.close()
    s2 = ChannelStore(tmp_path, Channel.OT, key, reserve_bytes=0)
    try:
        assert sum(b - a + 1 for a, b in ranges) == 10_000
        assert s2.stats().backlog["normal"] == 10_000
    finally:
        s2.close()


def test_mqtt3_acl_denial_then_allowed_no_silent_loss(tmp_path: Path) -> None:
    r = scenarios.mqtt3_denial(tmp_path, deny_seconds=4.0)
    _clean(r)
    assert r.figures["held_after_s"] != "never" and int(r.figures["unconfirmed"]) >= 1


def test_disk_full_for_a_while_alarms_flow_agent_stays_up(tmp_path: Path) -> None:
    """The short form of the nightly's minutes: the disk kept full (topped up), a SIGKILL
    and a restart on the full disk; every missing reading is reported."""
    r = storefaults.disk_full_long(tmp_path, full_for=4.0)
    _clean(r)
