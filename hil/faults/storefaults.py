"""Store-side faults: corruption, fsync failure, disk full, clock jumps."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.core.clock import SystemClock
from edge_agent.core.model import CLOCK_FLOOR, Channel
from edge_agent.daemon.runtime import Agent
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.store import segments
from edge_agent.store.channel_store import ChannelStore
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from hil.common import PREFIX, readings, wait_for
from hil.faults.rig import (
    AgentProcess,
    Result,
    agent_log_tail,
    consumer,
    drain_and_stop,
    judge,
    quiet_site,
    read_store,
    site,
)
from hil.faults.scenarios import GatedBroker

# ---------------------------------------------------------------------- corruption


def _records(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of each record in a segment file (up to a zero tail, if any)."""
    return [(off, head.size) for off, head in segments.scan(data).records]


def truncate_every_offset(work: Path) -> dict[str, dict[str, int]]:
    """Cut the last record of a middle segment and of the newest segment at every offset
    (a lost or torn write of an *accepted* record), after a clean stop, after a process
    crash (same boot: page cache intact) and after a power cut (new boot, the unsynced
    ``seq.last`` hint gone); reopen each time.

    Per case: ``silent`` = offsets where accepted numbers end up neither pending nor
    reported; ``named`` = offsets where the lost numbers are reported by range (``corrupt``
    exactly, or inside a ``skipped`` range after a power cut); ``seq_reused`` = offsets where
    the next number handed out is not above every number handed out before."""
    key = secrets.token_bytes(32)
    base = work / "base"
    crashed = work / "crashed"
    s = ChannelStore(base, Channel.OT, key, segment_bytes=2048, reserve_bytes=0)
    for i in range(60):
        s.append(readings(5, start=i * 5, t0=1.7e9))
    s.append(readings(1, start=300, t0=1.7e9))
    top = s.next_seq - 1
    shutil.copytree(base, crashed)  # what a kill -9 leaves (the store is still open)
    s.close()
    segs = sorted((base / "ot" / "lane-1").glob("*.seg"))
    figures: dict[str, dict[str, int]] = {}
    cases = (("middle", base, segs[len(segs) // 2], None),
             ("newest", base, segs[-1], None),
             ("newest-crash", crashed, segs[-1], None),
             ("newest-powercut", crashed, segs[-1], "after-a-power-cut"))
    for label, src, seg, boot in cases:
        off, size = _records(seg.read_bytes())[-1]
        silent = named = failed = reused = 0
        for cut in range(off, off + size):
            w = work / "try"
            shutil.rmtree(w, ignore_errors=True)
            shutil.copytree(src, w)
            target = w / "ot" / "lane-1" / seg.name
            with open(target, "r+b") as f:
                f.truncate(cut)
            if boot is not None:
                (w / "ot" / "seq.last").write_bytes(b"")  # never fsynced: lost with power
            try:
                s2 = ChannelStore(w, Channel.OT, key, reserve_bytes=0, boot_id=boot)
            except Exception:
                failed += 1
                continue
            pending = s2.pending_ranges()
            lost = pending.gaps(1, top)
            evicted = s2.evicted_ranges()
            unreported = [(a, b) for a, b in lost for x, y in evicted.gaps(a, b)]
            silent += bool(unreported)
            named += bool(lost) and not unreported
            reused += s2.next_seq <= top
            s2.close()
        figures[label] = {"offsets": size, "open_failed": failed, "silent": silent,
                          "named": named, "seq_reused": reused}
    shutil.rmtree(work / "try", ignore_errors=True)
    return figures


def corruption(work: Path, truncation: bool = True) -> Result:
    """``truncation=False`` leaves out the tail cut at every offset (run on its own by
    :func:`truncate_every_offset`)."""
    res = Result("corruption", ("tail cut at every offset (in-process); " if truncation else "")
                 + "bit flips in a segment, a garbage .seg and a stray file (real agent)")
    trunc = truncate_every_offset(work / "trunc") if truncation else {}
    g = GatedBroker(work / "broker")
    try:
        g.proxy.refuse = True  # build a backlog: nothing is delivered yet
        cfg = site(work, [g.proxy.url], load_rate=5000, store="  segment_bytes: 64KiB\n")
        agent = AgentProcess(cfg, work / "agent.log")
        agent.start()
        state = work / "state"
        lane1 = state / "store" / "ot" / "lane-1"
        wait_for(lambda: len(list(lane1.glob("*.seg"))) >= 4 if lane1.exists() else False, 30)
        agent.stop()
        segs = sorted(lane1.glob("*.seg"))
        rng = random.Random(7)
        victim = segs[1]
        data = bytearray(victim.read_bytes())
        recs = _records(bytes(data))
        for off, size in recs[1:3]:  # two records in the middle: flip bits in each
            data[off + rng.randrange(size)] ^= 0x10
        victim.write_bytes(bytes(data))
        (lane1 / f"{999_999_999:020d}.seg").write_bytes(os.urandom(3000))
        (lane1 / "stray.tmp").write_bytes(b"not a segment")
        c = consumer(g.broker.port)
        g.proxy.refuse = False
        quiet = AgentProcess(quiet_site(work, [g.proxy.url]), work / "agent.log")
        quiet.start()

        def reported() -> bool:
            h = c.snapshot().health
            return bool(h) and h[-1]["store"]["quarantined"] > 0 and any(
                r[2] == "corrupt" for r in h[-1]["store"]["evicted_ranges"])
        saw_report = wait_for(reported, 30)
        health = c.snapshot().health
        time.sleep(2.0)
        stayed_up = quiet.alive and quiet.starts == 1
        drained = drain_and_stop(quiet, c)
        view = read_store(state)
        trunc_ok = all(t["open_failed"] == 0 and t["silent"] == 0 and t["seq_reused"] == 0
                       and t["named"] == t["offsets"] for t in trunc.values())
        judge(res, c, view, resends=2,
              extra_ok=saw_report and stayed_up and drained and trunc_ok)
        c.stop()
    finally:
        g.close()
    last = health[-1]["store"] if health else {}
    for label, t in trunc.items():
        res.figures[f"trunc_{label}"] = ("{offsets} offsets: {named} named, {silent} silent, "
                                         "{seq_reused} seq reused").format(**t)
    res.saw = (f"health: quarantined {last.get('quarantined')}, evicted ranges "
               f"{last.get('evicted_ranges')}; agent stayed up: {stayed_up}; "
               f"{res.received} of {res.accepted} seqs; truncation: "
               + "; ".join(f"{k} {t['named']}/{t['offsets']} named, {t['silent']} silent, "
                           f"{t['seq_reused']} reused" for k, t in trunc.items()))
    return res


# ---------------------------------------------------------------------- fsync failure


class FailingFsync:
    """fsync that fails (EIO) on segment files while ``on``; counts what it refused."""

    def __init__(self) -> None:
        self.on = False
        self.failed = 0

    def __call__(self, fd: int) -> None:
        if self.on and os.readlink(f"/proc/self/fd/{fd}").endswith(".seg"):
            self.failed += 1
            raise OSError(errno.EIO, "injected fsync failure")
        os.fsync(fd)


def _values(c: Consumer, sensor: str) -> list[float]:
    out = []
    for m in c.snapshot().messages:
        for r in m.msg.get("senml", []):
            if r["n"].startswith(sensor + "/"):
                out.append(r["v"])
    return out


def fsync_failure(work: Path, fail_for: float = 1.0) -> Result:
    """In-process Agent whose store fsync fails for a while: the batches are not accepted
    and reported (store.not_accepted), never acknowledged after a failed fsync."""
    res = Result("fsync-failure", f"fsync EIO on segment files for {fail_for:g}s (in-process)")
    with Mosquitto(work / "broker") as b:
        c = Consumer("127.0.0.1", b.port, PREFIX).start()
        cfg = load_config(site(work, [b.url], load_rate=2000), SENSOR_TYPES)
        hook = FailingFsync()
        agent = Agent(cfg, SENSOR_TYPES, fsync=hook)
        agent.start()
        wait_for(lambda: c.snapshot().readings > 500, 20)
        hook.on = True
        time.sleep(fail_for)
        hook.on = False
        wait_for(lambda: any(h["store"]["not_accepted"] > 0 for h in c.snapshot().health), 10)
        time.sleep(1.0)
        agent.stop_event.set()
        agent.shutdown()
        st = agent.stores[Channel.OT].stats()
        quiet = AgentProcess(quiet_site(work, [b.url]), work / "agent.log")
        drained = drain_and_stop(quiet, c)
        view = read_store(work / "state")
        vals = sorted(set(_values(c, "gen")))
        top_val = int(max(vals)) if vals else 0
        missing_vals = top_val - len(vals)  # counter readings never delivered
        reported = any(h["store"]["not_accepted"] > 0 for h in c.snapshot().health)
        # every reading the sensor made is either delivered or counted as not accepted
        # (readings still queued at shutdown are counted by the load sensor, not the store)
        judge(res, c, view, resends=2, extra_ok=drained and reported and hook.failed > 0
              and missing_vals <= st.not_accepted and st.not_accepted > 0)
        c.stop()
    res.figures["not_accepted"] = st.not_accepted
    res.figures["fsync_failures"] = hook.failed
    res.saw = (f"{hook.failed} fsync calls failed; store.not_accepted {st.not_accepted} "
               f"(health reported it: {reported}); counter values missing at the consumer "
               f"{missing_vals} <= not accepted; seqs {res.received} of {res.accepted}, "
               f"no gap")
    return res


# ---------------------------------------------------------------------- disk full


def tmpfs_available() -> bool:
    if os.geteuid() != 0:
        return False
    probe = Path("/tmp/hil-tmpfs-probe")
    probe.mkdir(exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                        capture_output=True, check=False).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], check=False)
    probe.rmdir()
    return ok


def disk_full(work: Path, size_mb: int = 4, full_for: float = 5.0, free_kb: int = 96) -> Result:
    """State dir on a size-capped tmpfs, filled up while the broker is unreachable: the agent
    keeps accepting alarms (reserve), evicts normal data by policy, and resumes by itself."""
    res = Result("disk-full", f"tmpfs {size_mb} MiB filled to {free_kb} KiB free for "
                              f"{full_for:g}s, broker down; then space and broker return")
    if not tmpfs_available():
        res.saw = "no tmpfs mount in this sandbox (needs root); skipped"
        res.ok = True
        res.notes.append("skipped")
        return res
    disk = work / "disk"
    disk.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(disk)],
                   check=True)
    g = GatedBroker(work / "broker")
    try:
        g.proxy.refuse = True
        cfg = site(disk, [g.proxy.url], load_rate=20000, alarm_rate=5,
                   store="  segment_bytes: 64KiB\n")
        agent = AgentProcess(cfg, work / "agent.log")
        agent.start()
        wait_for(lambda: (disk / "state" / "store" / "ot" / "reserve.bin").exists(), 20)
        st = os.statvfs(disk)
        free = st.f_bavail * st.f_frsize
        filler = disk / "filler"
        with open(filler, "wb") as f, contextlib.suppress(OSError):
            f.write(b"\0" * max(0, free - free_kb * 1024))
        time.sleep(full_for)
        alive_full = agent.alive
        filler.unlink()
        c = consumer(g.broker.port, keep=True)
        g.proxy.refuse = False
        ok_resume = wait_for(lambda: c.snapshot().readings > 0, 20)
        time.sleep(1.0)
        alive = agent.alive
        agent.stop()
        drained = drain_and_stop(AgentProcess(quiet_site(disk, [g.proxy.url]),
                                              work / "agent.log"), c)
        view = read_store(disk / "state")
        alarm_vals = sorted({int(r["v"]) for m in c.snapshot().messages
                             for r in m.msg.get("senml", []) if r["n"].startswith("sos/")})
        alarms_ok = bool(alarm_vals) and alarm_vals == list(range(1, alarm_vals[-1] + 1))
        judge(res, c, view, resends=2,
              extra_ok=alive_full and alive and ok_resume and drained and alarms_ok)
        c.stop()
    finally:
        g.close()
        subprocess.run(["umount", "-l", str(disk)], check=False)
    res.figures["evicted_size"] = view.evicted_by_reason.get("size", 0)
    res.figures["alarms"] = f"{len(alarm_vals)} all delivered" if alarms_ok else "MISSING"
    res.saw = (f"agent up while full: {alive_full}; evicted by policy "
               f"{view.evicted_by_reason}; alarms 1..{alarm_vals[-1] if alarm_vals else 0} "
               f"contiguous: {alarms_ok}; resumed by itself: {ok_resume}; "
               f"{res.received} of {res.accepted} seqs")
    if not res.ok:
        res.notes.append(agent_log_tail(work / "agent.log"))
    return res


def _fill(path: Path, disk: Path) -> None:
    """Append to ``path`` until the file system says ENOSPC (what another process that
    keeps writing does: whatever the agent frees is taken again)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        chunk = 1024 * 1024
        while chunk >= 4096:
            try:
                if os.write(fd, b"\0" * chunk) < chunk:
                    chunk //= 4
            except OSError:
                chunk //= 4
    finally:
        os.close(fd)


def _not_accepted_logged(log: Path, start: int = 0, end: int | None = None) -> int:
    """Readings the writer reported NOT accepted, from the agent's log (exact, per commit)."""
    try:
        text = log.read_bytes()[start:end].decode(errors="replace")
    except OSError:
        return 0
    return sum(int(m) for m in re.findall(r"(\d+) readings NOT accepted", text))


def disk_full_long(work: Path, full_for: float = 20.0, size_mb: int = 8) -> Result:
    """The state dir's disk full for a long time, broker up, 20k readings/s and alarms at
    5/s: the disk is topped up every 0.5 s (something else keeps writing), then the agent
    is killed and restarted while the disk is still full. Alarms must keep flowing, the
    agent must never exit, and every reading missing at the consumer must be reported
    (evicted by policy, or counted as not accepted)."""
    res = Result("disk-full-long", f"tmpfs {size_mb} MiB kept full {full_for:g}s (topped up "
                                   "every 0.5s), broker up; SIGKILL + restart while full")
    if not tmpfs_available():
        res.saw = "no tmpfs mount in this sandbox (needs root); skipped"
        res.ok = True
        res.notes.append("skipped")
        return res
    disk = work / "disk"
    disk.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(disk)],
                   check=True)
    log = work / "agent.log"
    filler = disk / "filler"
    with Mosquitto(work / "broker") as b:
        try:
            c = consumer(b.port, keep=True)
            cfg = site(disk, [b.url], load_rate=20000, alarm_rate=5,
                       store="  segment_bytes: 64KiB\n")
            agent = AgentProcess(cfg, log)
            agent.start()
            wait_for(lambda: (disk / "state" / "store" / "ot" / "reserve.bin").exists(), 20)
            wait_for(lambda: c.snapshot().readings > 0, 20)

            def alarms_seen() -> int:
                return sum(1 for m in c.snapshot().messages for r in m.msg.get("senml", [])
                           if r["n"].startswith("sos/"))

            alarms_before = alarms_seen()
            t_full = time.time()
            deadline = time.monotonic() + full_for
            always_up = True
            while time.monotonic() < deadline:
                _fill(filler, disk)
                always_up &= agent.alive
                time.sleep(0.5)
            alarms_full = alarms_seen() - alarms_before
            last_health = c.snapshot().health[-1]  # the first process, while full
            t_kill = time.time()
            log_at_kill = log.stat().st_size
            agent.kill()
            agent.start()  # on the full disk: start-up must not need free space
            restart_ok = True
            until = time.monotonic() + 5.0
            before = alarms_seen()
            while time.monotonic() < until:
                _fill(filler, disk)
                restart_ok &= agent.alive
                time.sleep(0.5)
            restart_alarms = alarms_seen() - before
            filler.unlink()
            time.sleep(2.0)
            alive = agent.alive
            code = agent.stop()
            drained = drain_and_stop(AgentProcess(quiet_site(disk, [b.url]), log), c)
            view = read_store(disk / "state")
            not_acc_1 = _not_accepted_logged(log, 0, log_at_kill)
            not_acc = _not_accepted_logged(log)
            # first process, at its last health message while full: every counter value
            # made by then is delivered, evicted (reported), not accepted (counted), or
            # still in the ingest queue (bounded by queue_max)
            made = int(last_health["sensors"]["gen"]["readings"])
            reported_na = int(last_health["store"]["not_accepted"])
            gen = {int(r["v"]) for m in c.snapshot().messages for r in m.msg.get("senml", [])
                   if r["n"].startswith("gen/") and r["t"] < t_kill}
            missing = made - sum(1 for v in gen if v <= made)
            sos = sorted({int(r["v"]) for m in c.snapshot().messages
                          for r in m.msg.get("senml", [])
                          if r["n"].startswith("sos/") and t_full <= r["t"] < t_kill})
            sos_gaps = (sos[-1] - sos[0] + 1 - len(sos)) if sos else -1
            evicted = sum(view.evicted_by_reason.values())
            rest = missing - reported_na  # evicted (counted over the whole run) or queued
            accounted = 0 <= rest <= evicted + 100_000  # queue_max bounds the queue
            judge(res, c, view, resends=3,
                  extra_ok=(always_up and restart_ok and alive and code == 0 and drained
                            and alarms_full >= full_for * 5 * 0.8 and sos_gaps == 0
                            and restart_alarms > 0 and accounted))
            c.stop()
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    res.figures["full_s"] = f"{full_for:g}"
    res.figures["alarms_while_full"] = f"{alarms_full} ({sos_gaps} gaps)"
    res.figures["alarms_after_restart"] = restart_alarms
    res.figures["not_accepted"] = not_acc
    res.figures["evicted"] = str(view.evicted_by_reason)
    res.figures["missing_values"] = (f"{missing}: {reported_na} not accepted, {rest} "
                                     f"evicted or queued (evicted {evicted} in all)")
    res.saw = (f"agent up all the time: {always_up}, after SIGKILL+restart on the full disk: "
               f"{restart_ok}, exit code on SIGTERM {code}; {alarms_full} alarms delivered "
               f"while full ({sos_gaps} gaps), {restart_alarms} after the restart; counter "
               f"values made {made}, missing {missing}: {reported_na} reported not accepted "
               f"in health ({not_acc_1} logged by the kill), {rest} evicted or queued "
               f"({evicted} evicted in all); seqs {res.received} of {res.accepted}")
    if not res.ok:
        res.notes.append(agent_log_tail(log))
    return res


# ---------------------------------------------------------------------- clock


class JumpClock:
    """Real monotonic time; a wall clock the rig moves (no RTC, NTP sync, jumps)."""

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self._mono = SystemClock()

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return self._mono.monotonic()


def clock(work: Path, step: float = 1.5) -> Result:
    """Boot in 1970 (no RTC), NTP sync, jump back 1 h, forward 1 day: seq order and delivery
    unaffected; readings taken before the clock was set are marked ("clock_": "unsynced")."""
    res = Result("clock", "wall clock: 1970 boot -> NTP sync -> -1 h -> +1 day (in-process)")
    with Mosquitto(work / "broker") as b:
        c = Consumer("127.0.0.1", b.port, PREFIX).start()
        cfg = load_config(site(work, [b.url], load_rate=500, alarm_rate=5), SENSOR_TYPES)
        clk = JumpClock(offset=60.0 - time.time())  # 1970-01-01T00:01:00
        agent = Agent(cfg, SENSOR_TYPES, clock=clk)
        agent.start()
        for off in (0.0, -3600.0, 86400.0):
            time.sleep(step)
            clk.offset = off
        time.sleep(step)
        agent.stop_event.set()
        agent.shutdown()
        drained = drain_and_stop(AgentProcess(quiet_site(work, [b.url]), work / "agent.log"),
                                 c)
        view = read_store(work / "state")
        recs = [r for m in c.snapshot().messages for r in m.msg.get("senml", [])]
        early = [r for r in recs if r["t"] < CLOCK_FLOOR]
        marked_ok = all(r.get("clock_") == "unsynced" for r in early) and not any(
            "clock_" in r for r in recs if r["t"] >= CLOCK_FLOOR)
        judge(res, c, view, resends=1, extra_ok=drained and bool(early) and marked_ok)
        c.stop()
    res.figures["pre_sync_readings"] = f"{len(early)} marked" if marked_ok else "UNMARKED"
    res.saw = (f"{len(recs)} readings, {len(early)} stamped before NTP sync, all marked "
               f"clock_=unsynced: {marked_ok}; seqs {res.received} of {res.accepted}, "
               f"lane order kept")
    return res


