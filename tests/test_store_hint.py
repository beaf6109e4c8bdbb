"""The sequence hint in the service's runtime directory (``numbering.py``, docs/design/0018):
a crash in the same boot resumes exactly, a power cut (the tmpfs gone) skips and reports,
and a hint an earlier version left on the card is taken over."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.store import segments
from edge_agent.store.channel_store import ChannelStore
from edge_agent.store.numbering import hint_name

KEY = bytes(range(32))
BOOT = "boot-1"


def readings(n: int) -> list[Reading]:
    return [Reading("meter-main", Channel.OT, Priority.NORMAL, "power", 1000.0 + i,
                    1_700_000_000.0 + i, "W") for i in range(n)]


def open_store(root: Path, run: Path | None, boot: str = BOOT) -> ChannelStore:
    return ChannelStore(root, Channel.OT, KEY, reserve_bytes=0, batch_max=5, boot_id=boot,
                        hint_dir=run)


def crash_image(live: Path, img: Path, run: Path) -> None:
    """What a kill -9 leaves, moved to ``img``: the store's files as they are, and the
    runtime directory's hint under the name the image's store looks for."""
    shutil.copytree(live, img)
    src = run / hint_name(live / "ot")
    if src.exists():
        shutil.copy(src, run / hint_name(img / "ot"))


def cut_newest_record(root: Path) -> None:
    """Drop the newest record at a record boundary: only the hint still knows its numbers
    were handed out."""
    seg = sorted((root / "ot" / "lane-1").glob("*.seg"))[-1]
    data = seg.read_bytes()
    seg.write_bytes(data[:segments.scan(data).records[-1][0]])


def test_the_hint_lives_in_the_runtime_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    s = open_store(tmp_path / "live", run)
    try:
        s.append(readings(7))
        assert not (tmp_path / "live" / "ot" / "seq.last").exists()
        assert (run / hint_name(tmp_path / "live" / "ot")).stat().st_size == 12
    finally:
        s.close()


def test_crash_in_the_same_boot_resumes_exactly(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    s = open_store(tmp_path / "live", run)
    s.append(readings(5))
    s.append(readings(5))
    crash_image(tmp_path / "live", tmp_path / "img", run)
    s.close()
    cut_newest_record(tmp_path / "img")
    s2 = open_store(tmp_path / "img", run)
    try:
        assert (6, 10, "corrupt") in s2.stats().evicted_recent
        assert s2.stats().evicted["skipped"] == 0
        assert s2.next_seq == 11
    finally:
        s2.close()


def test_a_power_cut_loses_the_hint_and_skips_the_reservation(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    s = open_store(tmp_path / "live", run)
    s.append(readings(5))
    img = tmp_path / "img"
    shutil.copytree(tmp_path / "live", img)  # the tmpfs did not survive
    s.close()
    s2 = open_store(img, tmp_path / "run", boot="boot-2")
    try:
        skipped = [(a, b) for a, b, why in s2.stats().evicted_recent if why == "skipped"]
        assert len(skipped) == 1 and skipped[0][0] == 6
        assert s2.next_seq == skipped[0][1] + 1
    finally:
        s2.close()


def test_a_hint_left_on_the_card_is_taken_over(tmp_path: Path) -> None:
    """An earlier version kept the hint in the store directory: an upgrade in the same
    boot (the service restarted after a crash) still resumes exactly, and the card's
    file is gone once the runtime hint holds the number."""
    s = open_store(tmp_path / "live", None)
    s.append(readings(5))
    s.append(readings(3))
    shutil.copytree(tmp_path / "live", tmp_path / "img")
    s.close()
    cut_newest_record(tmp_path / "img")
    card = tmp_path / "img" / "ot" / "seq.last"
    assert card.exists()
    run = tmp_path / "run"
    run.mkdir()
    s2 = open_store(tmp_path / "img", run)
    try:
        assert (6, 8, "corrupt") in s2.stats().evicted_recent
        assert s2.next_seq == 9 and s2.stats().evicted["skipped"] == 0
        assert not card.exists()
        assert s2.append(readings(2)) == [(9, 10)]
        live = tmp_path / "img2"
        shutil.copytree(tmp_path / "img", live)  # a second crash, after the upgrade
        shutil.copy(run / hint_name(tmp_path / "img" / "ot"), run / hint_name(live / "ot"))
    finally:
        s2.close()
    cut_newest_record(live)
    s3 = open_store(live, run)
    try:
        assert (9, 10, "corrupt") in s3.stats().evicted_recent
        assert s3.next_seq == 11  # from the runtime hint alone
    finally:
        s3.close()


def test_an_unusable_runtime_directory_keeps_the_hint_on_the_card(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "edge_agent.store"):
        s = open_store(tmp_path / "live", tmp_path / "missing")
    try:
        s.append(readings(2))
        assert (tmp_path / "live" / "ot" / "seq.last").stat().st_size == 12
        assert "sequence hint" in caplog.text
    finally:
        s.close()
