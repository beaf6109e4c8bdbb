"""Drain, alarm latency and memory, through the real ChannelUplink against local mosquitto.

    python -m hil.bench.drain fill WORKDIR COUNT          store of COUNT readings (+ key file)
    python -m hil.bench.drain drain WORKDIR PORT          drain it all: rate, VmRSS, VmHWM
    python -m hil.bench.drain alarms WORKDIR PORT N GAP   drain + N alarms GAP s apart
    python -m hil.bench.drain paho PORT COUNT             baseline: raw paho, 1 msg/reading
    python -m hil.bench.drain paho-alarms PORT N GAP      baseline: raw paho alarm latency

Throughput and memory runs have no subscriber attached (mosquitto still PUBACKs every
message; the store deletes a record only on its PUBACK). The alarm run attaches a
subscriber (own process) to the alarm topic only.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.config import load_config
from edge_agent.core.clock import SystemClock
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.daemon.ingest import IngestQueue
from edge_agent.daemon.runtime import ChannelWriter
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.store.channel_store import ChannelStore
from edge_agent.uplink.paho_adapter import ChannelUplink, UplinkSettings
from hil.common import PREFIX, PY, REPO, emit_json, proc_status, readings, write_site

FILL_BATCH = 5000


def open_store(workdir: Path) -> ChannelStore:
    key = (workdir / "ot.key").read_bytes()
    return ChannelStore(workdir / "store", Channel.OT, key, max_bytes=4 * 1024**3,
                        segment_bytes=4 * 1024**2)


def fill(workdir: Path, count: int) -> dict[str, int]:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "ot.key").write_bytes(secrets.token_bytes(32))
    store = open_store(workdir)
    t0 = time.time() - count * 0.01
    for i in range(0, count, FILL_BATCH):
        store.append(readings(min(FILL_BATCH, count - i), start=i, t0=t0))
    st = store.stats()
    store.close()
    return {"readings": st.backlog["normal"], "bytes": st.bytes_on_disk}


def uplink_for(workdir: Path, port: int, store: ChannelStore) -> ChannelUplink:
    cfg = load_config(write_site(workdir, [f"mqtt://127.0.0.1:{port}"]), SENSOR_TYPES)
    cc = cfg.channels[Channel.OT]
    settings = UplinkSettings(node=cfg.node, site=cfg.site, channel=Channel.OT,
                              topic_prefix=cfg.topic_prefix(Channel.OT),
                              client_id=cfg.client_id(Channel.OT), config=cc)
    return ChannelUplink(settings, store)


class MemorySampler:
    def __init__(self, every: float = 0.02) -> None:
        self.samples: list[tuple[float, int]] = []  # (backlog fraction left, VmRSS)
        self._stop = threading.Event()
        self._every = every
        self.backlog: Callable[[], int] = lambda: 0
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.samples.append((self.backlog(), proc_status("VmRSS")))

    def stop(self) -> None:
        self._stop.set()
        self._t.join()


def _backlog(store: ChannelStore) -> int:
    st = store.stats()
    return sum(st.backlog.values())


def drain(workdir: Path, port: int) -> dict[str, float]:
    store = open_store(workdir)
    total = _backlog(store)
    rss_open = proc_status("VmRSS")
    up = uplink_for(workdir, port, store)
    mem = MemorySampler()
    mem.backlog = lambda: _backlog(store)
    mem.start()
    t = time.perf_counter()
    up.start()
    while _backlog(store) > 0 and up.alive:
        time.sleep(0.02)
    dt = time.perf_counter() - t
    mem.stop()
    mem.samples.append((0, proc_status("VmRSS")))
    up.stop()
    store.close()
    rss = [r for _, r in mem.samples]
    half = [r for b, r in mem.samples if b <= total // 2]
    return {"readings": total, "seconds": dt, "rate": total / dt,
            "messages": up.stats.published_messages, "rss_open": rss_open,
            "rss_max": max(rss), "rss_full_backlog": rss[0] if rss else 0,
            "rss_half_backlog": half[0] if half else 0, "hwm": proc_status("VmHWM")}


def alarms(template: Path, port: int, n: int, gap: float) -> dict[str, float | None]:
    """``n`` alarms ``gap`` apart, each sent while a backlog is draining.

    The drain of one backlog can be shorter than ``n * gap``; then a new round starts from
    a fresh copy of the backlog, until ``n`` alarms were sent during a drain. Path: alarm
    put into the IngestQueue -> ChannelWriter (commit + fsync at once) -> store -> uplink
    -> mosquitto -> subscriber on the alarm topic (own process).
    """
    sub = subprocess.Popen([PY, "-m", "hil.bench.alarmsub", str(port), f"{PREFIX}/alarm"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert sub.stdout is not None and sub.stdin is not None
    if sub.stdout.readline().strip() != "ready":
        raise RuntimeError("alarm subscriber did not start")
    received: dict[int, float] = {}

    def reader() -> None:
        assert sub.stdout is not None
        for line in sub.stdout:
            v, t = line.split()
            received.setdefault(int(v), float(t))

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    put: dict[int, float] = {}
    rounds = 0
    backlog_total = 0
    min_backlog_at_alarm: int | None = None
    while len(put) < n and rounds < 50:
        rounds += 1
        work = template.parent / f"{template.name}-round{rounds}"
        shutil.copytree(template, work)
        store = open_store(work)
        backlog_total = _backlog(store)
        up = uplink_for(work, port, store)
        queue = IngestQueue(100_000)
        writer = ChannelWriter(Channel.OT, queue, store, 1.0, up.notify, SystemClock())
        writer.thread.start()
        up.start()
        while up.stats.published_readings == 0 and up.alive:
            time.sleep(0.002)  # connected and draining
        while len(put) < n:
            left = store.stats().backlog["normal"]
            if left == 0:
                break
            min_backlog_at_alarm = left if min_backlog_at_alarm is None \
                else min(min_backlog_at_alarm, left)
            i = len(put) + 1
            r = Reading("sos", Channel.OT, Priority.ALARM, "pressed", i, time.time())
            put[i] = time.monotonic()
            queue.put([r])
            time.sleep(gap)
        deadline = time.monotonic() + 10
        while len(received) < len(put) and time.monotonic() < deadline:
            time.sleep(0.01)
        writer.stop.set()
        queue.close()
        writer.thread.join(5)
        up.stop()
        store.close()
        shutil.rmtree(work, ignore_errors=True)
    sub.stdin.close()
    sub.wait(10)
    sub.stdout.close()
    lat = sorted((received[k] - put[k]) * 1000 for k in put if k in received)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, round(p / 100 * (len(lat) - 1)))] if lat else -1.0

    return {"alarms": len(put), "received": len(lat), "p50_ms": pct(50), "p99_ms": pct(99),
            "max_ms": lat[-1] if lat else -1.0, "backlog_total": backlog_total,
            "rounds": rounds, "min_backlog_at_alarm": min_backlog_at_alarm}


def paho_baseline(port: int, count: int) -> dict[str, float]:
    """Raw paho (MQTT 5, QoS 1, default in-flight limit 20), one message per reading."""
    payloads = [json.dumps({"node": "n1", "channel": "ot", "lane": "normal", "seq": [i, i],
                            "senml": [r.senml()]}).encode()
                for i, r in enumerate(readings(count), start=1)]
    done = threading.Event()
    acked = 0

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: ReasonCode,
                   p: Properties) -> None:
        nonlocal acked
        acked += 1
        if acked >= count:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hil-raw-paho",
                         protocol=mqtt.MQTTv5)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    t = time.perf_counter()
    for p in payloads:
        client.publish(f"{PREFIX}/data", p, qos=1)
    done.wait(300)
    dt = time.perf_counter() - t
    client.disconnect()
    client.loop_stop()
    return {"readings": count, "acked": acked, "seconds": dt, "rate": count / dt}


def paho_alarms(port: int, n: int, gap: float) -> dict[str, float]:
    """Baseline for alarm latency: raw paho publishes one QoS 1 message per alarm to an idle
    broker (no store, no backlog); same subscriber process and clock."""
    sub = subprocess.Popen([PY, "-m", "hil.bench.alarmsub", str(port), f"{PREFIX}/alarm"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert sub.stdout is not None and sub.stdin is not None
    if sub.stdout.readline().strip() != "ready":
        raise RuntimeError("alarm subscriber did not start")
    received: dict[int, float] = {}

    def reader() -> None:
        assert sub.stdout is not None
        for line in sub.stdout:
            v, t = line.split()
            received.setdefault(int(v), float(t))

    threading.Thread(target=reader, daemon=True).start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hil-raw-alarm",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    put: dict[int, float] = {}
    for i in range(1, n + 1):
        r = Reading("sos", Channel.OT, Priority.ALARM, "pressed", i, time.time())
        payload = json.dumps({"node": "n1", "channel": "ot", "lane": "alarm", "seq": [i, i],
                              "senml": [r.senml()]}).encode()
        put[i] = time.monotonic()
        client.publish(f"{PREFIX}/alarm", payload, qos=1)
        time.sleep(gap)
    deadline = time.monotonic() + 10
    while len(received) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()
    sub.stdin.close()
    sub.wait(10)
    sub.stdout.close()
    lat = sorted((received[k] - put[k]) * 1000 for k in put if k in received)
    return {"alarms": n, "received": len(lat), "p50_ms": lat[len(lat) // 2],
            "p99_ms": lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]}


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "fill":
        emit_json(fill(Path(argv[1]), int(argv[2])))
    elif mode == "drain":
        emit_json(drain(Path(argv[1]), int(argv[2])))
    elif mode == "alarms":
        emit_json(alarms(Path(argv[1]), int(argv[2]), int(argv[3]), float(argv[4])))
    elif mode == "paho-alarms":
        emit_json(paho_alarms(int(argv[1]), int(argv[2]), float(argv[3])))
    elif mode == "paho":
        emit_json(paho_baseline(int(argv[1]), int(argv[2])))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])
