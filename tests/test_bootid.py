"""The boot id under the systemd sandbox (ProcSubset=pid hides the kernel's): a crash or a
watchdog restart in the same boot must not be reported as a power cut (~100,000 numbers
"skipped"), and a marker that could outlive a power cut must never be trusted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.core.model import Channel
from edge_agent.store.bootid import KERNEL_BOOT_ID, MARKER, BootIdSource, on_volatile_fs
from edge_agent.store.channel_store import ChannelStore
from tests.conftest import wait_for, write_site
from tests.test_reload import ot, status
from tests.test_store import readings

KEY = bytes(range(32))


def hidden_kernel(tmp_path: Path, rt: Path, volatile: bool = True) -> BootIdSource:
    """As under ProcSubset=pid: the kernel file does not exist."""
    return BootIdSource(kernel=tmp_path / "proc-hidden" / "boot_id", runtime_dir=rt,
                        volatile=lambda p: volatile)


def test_kernel_boot_id_is_used_when_visible(tmp_path: Path) -> None:
    k = tmp_path / "boot_id"
    k.write_text("0b2c7f1e-aaaa-bbbb-cccc-123456789abc\n")
    rt = tmp_path / "run"
    rt.mkdir()
    assert BootIdSource(kernel=k, runtime_dir=rt, volatile=lambda p: True)() == \
        "0b2c7f1e-aaaa-bbbb-cccc-123456789abc"
    assert not (rt / MARKER).exists()


def test_hidden_kernel_id_falls_back_to_the_runtime_marker(tmp_path: Path) -> None:
    rt = tmp_path / "run"
    rt.mkdir()
    first = hidden_kernel(tmp_path, rt)()
    assert first is not None and first.startswith("run-")
    # the service restarts (a new process, a new source): same boot, same id
    assert hidden_kernel(tmp_path, rt)() == first
    assert (rt / MARKER).read_text().strip() == first
    # reboot: /run is empty again
    shutil.rmtree(rt)
    rt.mkdir()
    second = hidden_kernel(tmp_path, rt)()
    assert second is not None and second != first


def test_marker_on_a_persistent_file_system_is_not_trusted(tmp_path: Path) -> None:
    rt = tmp_path / "run"
    rt.mkdir()
    assert hidden_kernel(tmp_path, rt, volatile=False)() is None
    assert not (rt / MARKER).exists()
    assert BootIdSource(kernel=tmp_path / "nope", runtime_dir=None)() is None


def test_damaged_marker_is_replaced(tmp_path: Path) -> None:
    rt = tmp_path / "run"
    rt.mkdir()
    (rt / MARKER).write_text("garbage")
    got = hidden_kernel(tmp_path, rt)()
    assert got is not None and got.startswith("run-") and (rt / MARKER).read_text().strip() == got
    assert [p.name for p in rt.iterdir()] == [MARKER]  # no temporary file left


def test_from_env_reads_runtime_directory() -> None:
    src = BootIdSource.from_env({"RUNTIME_DIRECTORY": "/run/edge-agent:/run/other"})
    assert src.runtime_dir == Path("/run/edge-agent") and src.kernel == KERNEL_BOOT_ID
    assert BootIdSource.from_env({}).runtime_dir is None


def test_on_volatile_fs_reads_mountinfo(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
        "25 22 0:23 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755\n"
        "26 25 0:24 / /run/lock rw shared:6 - tmpfs tmpfs rw\n"
        "27 22 0:25 / /mnt/with\\040space rw - tmpfs tmpfs rw\n"
        "28 25 259:3 / /run/persist rw - ext4 /dev/sdb1 rw\n")
    assert on_volatile_fs(Path("/run/edge-agent"), info)
    assert on_volatile_fs(Path("/mnt/with space/x"), info)
    assert not on_volatile_fs(Path("/var/lib/edge-agent"), info)
    assert not on_volatile_fs(Path("/run/persist/edge-agent"), info)
    assert not on_volatile_fs(Path("/runx"), info)
    assert not on_volatile_fs(Path("/run/edge-agent"), tmp_path / "unreadable")


def test_on_volatile_fs_on_this_machine() -> None:
    shm = [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines()
           if ln.split()[4:5] == ["/dev/shm"]]
    if not shm:
        pytest.skip("/dev/shm is not a mount here")
    assert on_volatile_fs(Path("/dev/shm/x")) is (shm[-1].split(" - ")[1].split()[0] == "tmpfs")
def test_store_crash_restart_with_hidden_kernel_id_skips_nothing(tmp_path: Path) -> None:
    """A kill -9 and restart in the same boot under ProcSubset=pid: no 'skipped' range."""
    rt = tmp_path / "run"
    rt.mkdir()
    live = tmp_path / "live"
    s = ChannelStore(live, Channel.OT, KEY, boot_source=hidden_kernel(tmp_path, rt))
    s.append(readings(7))
    img = tmp_path / "img"
    shutil.copytree(live, img)  # what a kill -9 leaves (the store is still open)
    s.close()
    s2 = ChannelStore(img, Channel.OT, KEY, boot_source=hidden_kernel(tmp_path, rt))
    assert s2.next_seq == 8
    assert sum(s2.stats().evicted.values()) == 0
    s2.close()


def test_store_power_cut_with_hidden_kernel_id_still_skips(tmp_path: Path) -> None:
    """After a reboot the marker is gone: the reserved range is skipped, never reused."""
    rt = tmp_path / "run"
    rt.mkdir()
    live = tmp_path / "live"
    s = ChannelStore(live, Channel.OT, KEY, boot_source=hidden_kernel(tmp_path, rt))
    s.append(readings(7))
    img = tmp_path / "img"
    shutil.copytree(live, img)
    s.close()
    (img / "ot" / "seq.last").write_bytes(b"")  # the unsynced hint did not survive
    shutil.rmtree(rt)
    rt.mkdir()  # /run after the reboot
    s2 = ChannelStore(img, Channel.OT, KEY, boot_source=hidden_kernel(tmp_path, rt))
    assert s2.stats().evicted["skipped"] > 0
    assert s2.next_seq > 8
    s2.close()


# ---------------------------------------------------------------- the real agent, sandboxed


def _can_hide_boot_id() -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        f"mount --bind /dev/null {KERNEL_BOOT_ID} && cat {KERNEL_BOOT_ID}"],
                       capture_output=True, text=True, timeout=30, check=False)
    return r.returncode == 0 and r.stdout.strip() == ""


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    d = Path("/dev/shm") / f"edge-agent-test-{uuid.uuid4().hex[:8]}"
    d.mkdir(mode=0o700)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(not _can_hide_boot_id(), reason="needs root and mount namespaces")
def test_agent_kill9_restart_with_hidden_boot_id_reports_no_skipped(
        tmp_path: Path, shm_dir: Path) -> None:
    """`edge-agent run` with the kernel's boot id hidden (as ProcSubset=pid does) and
    RUNTIME_DIRECTORY on a tmpfs: kill -9, start again, nothing is reported skipped."""
    if not on_volatile_fs(shm_dir):
        pytest.skip("/dev/shm is not a tmpfs here")
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:9", sensors="  - {id: gen, type: load, "
                     "channel: ot, rate: 100}\n")
    env = dict(os.environ, RUNTIME_DIRECTORY=str(shm_dir), PYTHONUNBUFFERED="1")
    cmd = (f"mount --bind /dev/null {KERNEL_BOOT_ID} && exec {sys.executable} -m "
           f"edge_agent.cli.main run -c {cfg}")

    def start(log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as err:
            return subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                     cmd], stdout=subprocess.DEVNULL, stderr=err, env=env)

    p = start(tmp_path / "agent1.log")
    try:
        assert wait_for(lambda: int(ot(status(cfg)).get("accepted", 0)) >= 50)  # type: ignore[call-overload]
        p.send_signal(signal.SIGKILL)  # a crash; the watchdog's SIGABRT is the same here
        p.wait(30)
        (cfg.parent / "state" / "status.json").unlink()
        p = start(tmp_path / "agent2.log")
        assert wait_for(lambda: "evicted" in ot(status(cfg)))
        doc = ot(status(cfg))
        assert doc["evicted"]["skipped"] == 0, doc  # type: ignore[index]
        assert (shm_dir / MARKER).read_text().startswith("run-")
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
