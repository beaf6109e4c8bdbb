"""End-to-end benchmarks: the real agent process, as the device and the platform see it.

Every figure here goes through ``python -m edge_agent run -c SITE`` (see ``proc.py``):
sensors -> store -> a real mosquitto -> an independent subscriber process (``subscriber.py``,
the reference consumer). Backlogs are written offline into the agent's state dir
(``prefill.py``) before the agent starts. CPU-seconds are utime + stime of the agent process
(/proc/<pid>/stat), memory its VmRSS / VmHWM, bytes the sectors written to a dedicated loop
device (``loopfs.py``), startup the time from process creation to its READY=1.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.store import segments
from edge_agent.tools.mosquitto import Mosquitto
from hil.bench import alarmstages, sitefile
from hil.bench.loopfs import LoopFS, LoopUnavailable
from hil.bench.proc import RUN_TMPFS, AgentUnderTest
from hil.bench.subscriber import SubscriberProcess
from hil.common import run_child

MB = 1024 * 1024
Log = Callable[[str], object]


# An SD card's root file system (4 KiB blocks) as Raspberry Pi OS mounts it, and the same
# with the journal committed every 30 s instead of 5 (docs/design/0016-block-layer-bytes.md)
SD = "noatime"
SD_COMMIT30 = "noatime,commit=30"


@dataclass(frozen=True)
class E2ESizes:
    drain: tuple[tuple[int, int], ...]  # (readings, readings per record)
    drain_cap: float  # seconds at most per drain point (then: a partial rate, flagged)
    paho: int  # raw paho baseline messages
    alarms: int  # alarms wanted during drains
    alarm_backlog: int
    alarm_rounds: int
    # (readings/s, file system block size, mount options) of each block-layer point
    block_points: tuple[tuple[int, int, str], ...]
    block_seconds: float
    burst: int
    ingest: int
    startup_mib: tuple[int, ...]


E2E = E2ESizes(drain=((25_000, 1), (100_000, 1), (1_000_000, 100), (1_000_000, 500)),
               drain_cap=30.0, paho=20_000, alarms=200, alarm_backlog=1_000_000,
               alarm_rounds=12, block_seconds=20.0,
               block_points=((0, 4096, SD), (1, 4096, SD), (10, 4096, SD), (100, 4096, SD),
                             (100, 4096, SD_COMMIT30), (100, 1024, SD)),
               burst=100_000, ingest=1_000_000, startup_mib=(0, 16, 64))
SCALE = E2ESizes(drain=((25_000, 1), (100_000, 1), (400_000, 1), (1_000_000, 1),
                        (1_000_000, 100), (5_000_000, 100), (10_000_000, 100),
                        (1_000_000, 500), (5_000_000, 500), (10_000_000, 500)),
                 drain_cap=900.0, paho=20_000, alarms=400, alarm_backlog=1_000_000,
                 alarm_rounds=25, block_seconds=120.0,
                 block_points=((0, 4096, SD), (1, 4096, SD), (10, 4096, SD), (100, 4096, SD),
                               (100, 4096, SD_COMMIT30), (100, 1024, SD)),
                 burst=100_000, ingest=5_000_000, startup_mib=(0, 16, 64, 256, 1024))
QUICK = E2ESizes(drain=((5_000, 1), (200_000, 100), (200_000, 500)), drain_cap=30.0,
                 paho=5_000, alarms=30, alarm_backlog=200_000, alarm_rounds=6,
                 block_points=((100, 4096, SD),), block_seconds=8.0, burst=20_000,
                 ingest=200_000,
                 startup_mib=(0, 16))

ALARM_RATE = 25.0  # alarms/s from the alarm sensor: one every 40 ms during a drain


@dataclass
class Bench:
    work: Path
    log: Log
    pin_core: int | None = None
    trace: bool = False  # alarm rounds: time the alarm path inside the agent (alarmtrace)
    raw: dict[str, Any] = field(default_factory=dict)
    _n: int = 0

    def dir(self, name: str) -> Path:
        self._n += 1
        d = self.work / f"{self._n:02d}-{name}"
        d.mkdir(parents=True)
        return d

    def agent(self, site: Path, d: Path, trace: bool = False) -> AgentUnderTest:
        return AgentUnderTest(site, d / "agent.log", self.pin_core,
                              d / "alarmtrace.json" if trace and self.trace else None)


def _broker(d: Path) -> Mosquitto:
    b = Mosquitto(d / "broker")
    b.start()
    return b


def prefill(state: Path, readings: int, per_record: int) -> dict[str, Any]:
    return run_child("hil.bench.prefill", str(state), str(readings), str(per_record),
                     timeout=3600)


def _cpu_per_million(cpu: float, readings: int) -> float:
    return cpu / readings * 1e6 if readings else float("nan")


# ------------------------------------------------------------------ drain

def drain_point(b: Bench, readings: int, per_record: int, cap: float,
                template: Path | None = None, alarm_rate: float = 0.0,
                drain_rate: str = "") -> dict[str, Any]:
    """Backlog of ``readings`` in records of ``per_record``: agent started with a broker
    and a subscriber up; rate = readings / (last seq received - first message received)."""
    d = b.dir(f"drain-{readings}x{per_record}")
    state = d / "state"
    if template is not None:
        shutil.copytree(template, state)
        fill: dict[str, Any] = {}
    else:
        fill = prefill(state, readings, per_record)
    broker = _broker(d)
    sub = SubscriberProcess(broker.port, sitefile.PREFIX, readings)
    # with alarms: a second subscriber on the alarm topic alone (no data queued ahead)
    alarm_sub = SubscriberProcess(broker.port, f"{sitefile.PREFIX}/alarm", 0) \
        if alarm_rate else None
    sensors = sitefile.load_sensor(alarm_rate, ident="sos", chunk=0.01, alarm=True) \
        if alarm_rate else ""
    site = sitefile.write(d / "site.yaml", state, broker.port, sensors=sensors,
                          channel_extra=f"drain_rate: {drain_rate}" if drain_rate else "")
    agent = b.agent(site, d, trace=bool(alarm_rate))
    out: dict[str, Any] = {"readings": readings, "per_record": per_record,
                           "records": -(-readings // per_record), "fill": fill}
    try:
        agent.start()
        out["ready_s"] = agent.wait_ready()
        cpu0 = agent.cpu_seconds()
        rss_max = 0
        deadline = time.monotonic() + cap
        while time.monotonic() < deadline and agent.alive:
            rss_max = max(rss_max, agent.vm("VmRSS"))
            if sub.wait("done", 0.05) is not None:
                break
        done = sub.events.get("done")
        cpu1 = agent.cpu_seconds()
        now = time.time()
        out["hwm"] = agent.vm("VmHWM")
        out["rss_max"] = max(rss_max, agent.vm("VmRSS"))
        first = sub.events.get("first")
        out["complete"] = done is not None
        if first is None:
            out["rate"] = 0.0
            out["received"] = 0
        elif done is not None:
            out["seconds"] = done["t"] - first["t"]
            out["rate"] = readings / out["seconds"] if out["seconds"] > 0 else float("inf")
            out["received"] = readings
        else:  # cap reached: the rate so far (approximate: progress is once a second)
            out["seconds"] = now - first["t"]
            out["received"] = sub.readings
            out["rate"] = sub.readings / out["seconds"]
        out["agent_cpu"] = cpu1 - cpu0
        out["cpu_per_m"] = _cpu_per_million(cpu1 - cpu0, out["received"])
        out["window"] = [first["t"] if first else None, done["t"] if done else None]
    finally:
        out["exit"] = agent.stop()
        final = sub.close()
        alarm_only = alarm_sub.close() if alarm_sub is not None else {}
        broker.stop()
    out["alarm_only_samples"] = alarm_only.get("alarms", [])
    if agent.trace is not None:
        out["trace"] = alarmstages.join(agent.trace, final.get("alarms", []),
                                        out["alarm_only_samples"], out["window"])
    out["sub_cpu"] = final.get("cpu_seconds")
    out["duplicates"] = final.get("duplicates")
    out["bad"] = final.get("bad")
    out["alarm_samples"] = final.get("alarms", [])
    shutil.rmtree(state, ignore_errors=True)
    return out


def raw_paho_drain(b: Bench, count: int) -> dict[str, Any]:
    d = b.dir("raw-paho")
    broker = _broker(d)
    sub = SubscriberProcess(broker.port, sitefile.PREFIX, count)
    try:
        pub = run_child("hil.bench.rawpub", "data", str(broker.port), str(count))
        sub.wait("done", 60)
        first, done = sub.events.get("first"), sub.events.get("done")
    finally:
        final = sub.close()
        broker.stop()
    out: dict[str, Any] = {"messages": count, "publisher": pub, "sub_cpu": final.get("cpu_seconds")}
    if first and done:
        out["rate"] = count / (done["t"] - first["t"])
        out["cpu_per_m"] = _cpu_per_million(float(str(pub["cpu_seconds"])), count)
    else:
        out["rate"] = float("nan")
    return out


# ------------------------------------------------------------------ alarms

def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def alarms_during_drain(b: Bench, sizes: E2ESizes, drain_rate: str = "") -> dict[str, Any]:
    """Rounds of: fresh copy of the backlog, agent with an alarm sensor, drain to the
    subscriber (data + alarms). Alarms emitted (SenML t) between the first received
    message and the last data seq are counted; latency = receipt - t."""
    d = b.dir("alarm-template")
    fill = prefill(d / "state", sizes.alarm_backlog, 500)
    lat: list[float] = []
    lat_only: list[float] = []
    outside = 0
    traced: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    for _ in range(sizes.alarm_rounds):
        r = drain_point(b, sizes.alarm_backlog, 500, 120.0, template=d / "state",
                        alarm_rate=ALARM_RATE, drain_rate=drain_rate)
        lo, hi = r["window"]
        samples = r.pop("alarm_samples")
        inside = [(rx - t) * 1000 for t, rx in samples
                  if lo is not None and hi is not None and lo <= t <= hi]
        outside += len(samples) - len(inside)
        lat += inside
        lat_only += [(rx - t) * 1000 for t, rx in r.pop("alarm_only_samples")
                     if lo is not None and hi is not None and lo <= t <= hi]
        traced += r.pop("trace", [])
        rounds.append({k: r[k] for k in ("rate", "seconds", "complete", "agent_cpu",
                                         "cpu_per_m", "sub_cpu") if k in r}
                      | {"alarms": len(inside), "load": os.getloadavg()[0]})
        b.log(f"  alarm round {len(rounds)}: {len(inside)} alarms during a "
              f"{r.get('seconds', 0):.2f} s drain at {r['rate']:,.0f} readings/s")
        if len(lat) >= sizes.alarms:
            break
    return {"backlog": sizes.alarm_backlog, "drain_rate": drain_rate, "fill": fill,
            "rounds": rounds,
            "alarms": len(lat), "outside_drain": outside, "p50_ms": _pct(lat, 50),
            "p99_ms": _pct(lat, 99), "max_ms": max(lat) if lat else float("nan"),
            "alarm_only": {"alarms": len(lat_only), "p50_ms": _pct(lat_only, 50),
                           "p99_ms": _pct(lat_only, 99),
                           "max_ms": max(lat_only) if lat_only else float("nan")},
            "latencies_ms": [round(x, 2) for x in lat],
            "stages": alarmstages.summary(traced) if traced else [], "traced": traced}


def raw_paho_alarms(b: Bench, n: int) -> dict[str, Any]:
    d = b.dir("raw-paho-alarms")
    broker = _broker(d)
    sub = SubscriberProcess(broker.port, sitefile.PREFIX, 0)
    try:
        run_child("hil.bench.rawpub", "alarms", str(broker.port), str(n), "0.02")
    finally:
        final = sub.close()
        broker.stop()
    lat = [(rx - t) * 1000 for t, rx in final.get("alarms", [])]
    return {"alarms": n, "received": len(lat), "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99),
            "max_ms": max(lat) if lat else float("nan")}


# ------------------------------------------------------------------ block layer

def _senml_json_size(count: int) -> float:
    """Mean compact JSON size of the load sensor's SenML records, values 1..count."""
    t = round(time.time(), 6)
    step = max(1, count // 1000)
    sizes = [len(json.dumps({"n": "gen/counter", "u": "count", "v": float(i), "t": t},
                            separators=(",", ":"))) for i in range(1, count + 1, step)]
    return statistics.fmean(sizes)


def block_io(b: Bench, rate: int, seconds: float, warm: float = 5.0,
             block_size: int | None = None, metrics_on_card: bool = False,
             options: str = "noatime") -> dict[str, Any]:
    """The agent on a fresh loop-mounted ext4 (its whole state_dir), ``rate`` readings/s,
    1 s commits, broker and subscriber attached (so acks are written too). Bytes at the
    block layer in a steady window after ``warm`` seconds. ``block_size``: the file
    system's (default mkfs's: 1 KiB for this 256 MiB image; an SD card's root file system
    has 4 KiB). The metrics textfile is on a tmpfs, where the product puts it
    (/run/edge-agent-metrics), or with ``metrics_on_card`` on the measured file system.
    ``options``: the mount options (``noatime,commit=30``: the journal committed every
    30 s instead of 5, a common setting for SD cards)."""
    d = b.dir(f"blockio-{rate}")
    out: dict[str, Any] = {"rate": rate, "block_size": block_size,
                           "metrics_on_card": metrics_on_card, "options": options}
    with LoopFS(d / "state.img", d / "mnt", size_mb=256, block_size=block_size,
                options=options) as fs, \
            tempfile.TemporaryDirectory(prefix="hil-bench-metrics-", dir=RUN_TMPFS) as run:
        state = fs.mount / "state"
        metrics = fs.mount / "metrics" if metrics_on_card else Path(run)
        metrics.mkdir(exist_ok=True)
        broker = _broker(d)
        sub = SubscriberProcess(broker.port, sitefile.PREFIX, 0)
        sensors = sitefile.load_sensor(rate) if rate else ""
        site = sitefile.write(d / "site.yaml", state, broker.port, sensors=sensors,
                              metrics_textfile=metrics / "edge_agent.prom")
        agent = b.agent(site, d)
        try:
            fs.sync()
            b0 = fs.bytes_written()
            agent.start()
            agent.wait_ready()
            time.sleep(warm)
            fs.sync()
            b1, t1 = fs.bytes_written(), time.monotonic()
            cpu1 = agent.cpu_seconds()
            seg1 = _segment_bytes(state)
            time.sleep(seconds)
            fs.sync()
            b2, t2 = fs.bytes_written(), time.monotonic()
            cpu2 = agent.cpu_seconds()
            seg2 = _segment_bytes(state)
        finally:
            out["exit"] = agent.stop()
            final = sub.close()
            broker.stop()
        fs.sync()
        b3 = fs.bytes_written()
        out["files"] = sorted(str(p.relative_to(fs.mount)) for p in fs.mount.rglob("*")
                              if p.is_file())
    dt = t2 - t1
    n = rate * dt
    # Segments are zero-filled ahead of their records in steps (docs/design/0014): a step
    # lands in a short window or not. In the long run every record byte was zero-filled
    # once before, so the estimate swaps the zeros written in the window (file growth) for
    # the record bytes written in it.
    grown = seg2[1] - seg1[1]
    records = seg2[0] - seg1[0]
    out.update({"segment_growth": grown, "record_bytes": records,
                "long_run_bytes_per_reading":
                    (b2 - b1 - grown + records) / n if n else None})
    out.update({"seconds": dt, "readings": n, "start_bytes": b1 - b0, "steady_bytes": b2 - b1,
                "stop_bytes": b3 - b2, "bytes_per_hour": (b2 - b1) / dt * 3600,
                "bytes_per_reading": (b2 - b1) / n if n else None,
                "json_per_reading": _senml_json_size(int(max(n, 1))),
                "agent_cpu_per_hour": (cpu2 - cpu1) / dt * 3600,
                "received": final.get("distinct")})
    return out


def _segment_bytes(state: Path) -> tuple[int, int]:
    """(record bytes, file bytes) of every segment file under ``state`` (reads only)."""
    data = size = 0
    for p in state.glob("store/*/lane-*/*.seg"):
        try:
            blob = p.read_bytes()
        except FileNotFoundError:  # deleted meanwhile (delivered)
            continue
        data += segments.scan(blob).keep
        size += len(blob)
    return data, size


# ------------------------------------------------------------------ memory, ingest

def _status(state: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads((state / "status.json").read_text())
        return doc
    except (OSError, ValueError):
        return {}


def memory_burst(b: Bench, burst: int, settle: float = 10.0) -> dict[str, Any]:
    """A load sensor emitting ``burst`` readings within one second, delivered to the
    subscriber; VmRSS sampled every 50 ms, then ``settle`` s after the last reading arrived."""
    d = b.dir("memory")
    broker = _broker(d)
    sub = SubscriberProcess(broker.port, sitefile.PREFIX, burst)
    site = sitefile.write(d / "site.yaml", d / "state", broker.port,
                          sensors=sitefile.load_sensor(burst, total=burst))
    agent = b.agent(site, d)
    out: dict[str, Any] = {"burst": burst}
    try:
        agent.start()
        agent.wait_ready()
        out["rss_ready"] = agent.vm("VmRSS")
        peak = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and sub.wait("done", 0.05) is None:
            peak = max(peak, agent.vm("VmRSS"))
        out["complete"] = "done" in sub.events
        out["rss_peak_sampled"] = peak
        settled = []
        end = time.monotonic() + settle
        while time.monotonic() < end:
            settled.append(agent.vm("VmRSS"))
            time.sleep(0.25)
        out["rss_settled"] = settled[-1]
        out["hwm"] = agent.vm("VmHWM")
    finally:
        out["exit"] = agent.stop()
        sub.close()
        broker.stop()
    return out


def ingest(b: Bench, total: int) -> dict[str, Any]:
    """Broker down (connection refused): a load sensor emits ``total`` readings as fast as
    the pipeline takes them (rate 1,000,000/s; the queue blocks it). Done when the agent's
    status file says ``accepted >= total`` (written every 2 s)."""
    d = b.dir("ingest")
    state = d / "state"
    site = sitefile.write(d / "site.yaml", state, sitefile.closed_port(),
                          sensors=sitefile.load_sensor(1_000_000, total=total))
    agent = b.agent(site, d)
    out: dict[str, Any] = {"readings": total}
    try:
        agent.start()
        agent.wait_ready()
        cpu0 = agent.cpu_seconds()
        t0 = time.monotonic()
        deadline = t0 + 600
        accepted = 0
        while time.monotonic() < deadline and agent.alive:
            ot = _status(state).get("channels", {}).get("ot", {})
            accepted = int(ot.get("store", {}).get("accepted", 0))
            if accepted >= total:
                break
            time.sleep(0.1)
        out["accepted"] = accepted
        out["seconds_upper"] = time.monotonic() - t0
        out["agent_cpu"] = agent.cpu_seconds() - cpu0
        out["cpu_per_m"] = _cpu_per_million(out["agent_cpu"], accepted)
        out["hwm"] = agent.vm("VmHWM")
        out["rss_after"] = agent.vm("VmRSS")
    finally:
        out["exit"] = agent.stop()
    shutil.rmtree(state, ignore_errors=True)
    return out


# ------------------------------------------------------------------ startup

def _drop_cache(root: Path) -> None:
    """Evict only the store's own files from the page cache (no global drop_caches)."""
    for p in root.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _scanned(state: Path) -> bool:
    """Whether the status file says every store has scanned what it found at start."""
    chans = _status(state).get("channels", {})
    return bool(chans) and all(
        c.get("store", {}).get("recovering_segments", 0) == 0 for c in chans.values())


def startup(b: Bench, mib: int) -> dict[str, Any]:
    """Process start -> READY=1 with a store of ``mib`` MiB (100-reading records), broker
    down, no sensors: first with the store's files evicted from the page cache (as after a
    reboot), then again warm. Cold, also the time until the status file says the store has
    scanned every segment it found (the scan runs after READY=1; status is written every
    2 s, so this is an upper bound) and the agent's CPU-s and VmHWM by then."""
    d = b.dir(f"startup-{mib}")
    state = d / "state"
    fill: dict[str, Any] = {}
    if mib:
        fill = run_child("hil.bench.prefill", "--bytes", str(state), str(mib * MB), "100",
                         timeout=3600)
    site = sitefile.write(d / "site.yaml", state, sitefile.closed_port())
    out: dict[str, Any] = {"mib": mib, "fill": fill}
    for label in ("cold", "warm"):
        if label == "cold" and state.exists():
            _drop_cache(state)
        agent = b.agent(site, d)
        try:
            agent.start()
            out[f"{label}_s"] = agent.wait_ready(300)
            out[f"{label}_cpu_at_ready"] = agent.cpu_seconds()
            if label == "cold":
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline and agent.alive and not _scanned(state):
                    time.sleep(0.1)
                out["scanned_s"] = time.monotonic() - agent.started
                out["cpu_at_scanned"] = agent.cpu_seconds()
                out["hwm_at_scanned"] = agent.vm("VmHWM")
            if label == "warm" and mib == 0:
                time.sleep(2.0)
                c0 = agent.cpu_seconds()
                time.sleep(5.0)
                out["idle_cpu_per_hour"] = (agent.cpu_seconds() - c0) / 5.0 * 3600
                out["idle_rss"] = agent.vm("VmRSS")
        finally:
            agent.stop()
    shutil.rmtree(state, ignore_errors=True)
    return out


# ------------------------------------------------------------------ the set

def run(sizes: E2ESizes, work: Path, log: Log, pin_core: int | None = None,
        trace: bool = False) -> dict[str, Any]:
    b = Bench(work, log, pin_core, trace=trace)
    raw = b.raw
    raw["sizes"] = sizes.__dict__ | {"drain": [list(x) for x in sizes.drain]}
    raw["pin_core"] = pin_core
    log(f"raw paho baseline: {sizes.paho} messages, one reading each")
    raw["paho"] = raw_paho_drain(b, sizes.paho)
    raw["drain"] = []
    for n, per in sizes.drain:
        log(f"drain {n:,} readings in {per}-reading records ({-(-n // per):,} records)")
        r = drain_point(b, n, per, sizes.drain_cap)
        r.pop("alarm_samples", None)
        r.pop("alarm_only_samples", None)
        log(f"  {r['rate']:,.0f} readings/s{'' if r['complete'] else ' (cap reached)'}, "
            f"{r['cpu_per_m']:.1f} agent CPU-s per M, ready after {r['ready_s']:.2f} s")
        raw["drain"].append(r)
    log(f"alarms during {sizes.alarm_backlog:,}-reading drains, data consumer attached")
    raw["alarms"] = alarms_during_drain(b, sizes)
    raw["paho_alarms"] = raw_paho_alarms(b, sizes.alarms)
    raw["block"] = []
    for rate, block_size, options in sizes.block_points:
        log(f"block layer: {rate} readings/s for {sizes.block_seconds:.0f} s, "
            f"{block_size} B blocks, {options}")
        try:
            raw["block"].append(block_io(b, rate, sizes.block_seconds,
                                         block_size=block_size, options=options))
        except LoopUnavailable as exc:
            log(f"  skipped: {exc}")
            raw["block_skipped"] = str(exc)
            break
    log(f"memory: burst of {sizes.burst:,} readings")
    raw["memory"] = memory_burst(b, sizes.burst)
    log(f"ingest: {sizes.ingest:,} readings, broker down")
    raw["ingest"] = ingest(b, sizes.ingest)
    raw["startup"] = []
    for mib in sizes.startup_mib:
        log(f"startup with a {mib} MiB store")
        raw["startup"].append(startup(b, mib))
    return raw
