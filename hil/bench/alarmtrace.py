"""The agent with its alarm path timed, stage by stage (a bench tool, not the product).

    EDGE_ALARMTRACE=OUT.json python -m hil.bench.alarmtrace run -c SITE

Runs the real agent (``edge_agent.cli.main``) after wrapping, in this process only, the
functions an alarm passes through, and writes one JSON object per alarm to ``OUT.json`` at
exit (keyed by the reading's own time, which the subscriber sees as the SenML ``t``):

- ``put``: the sensor's ``emit`` reached the ingest queue (``IngestQueue.put``);
- ``commit0`` / ``commit1``: the writer's ``ChannelStore.append`` of the alarm began / came
  back (write + fsync done, sequence number known);
- ``lease0`` / ``lease1``: the uplink's ``ChannelStore.lease`` call that returned it;
- ``pub0`` / ``pub1``: ``paho.Client.publish`` of its message began / returned, with
  ``queued_bytes``: what paho still had to write to the socket ahead of it;
- ``sock``: paho's network thread wrote its packet to the socket;
- ``puback``: its PUBACK arrived (paho's ``on_publish``).

Also ``notify``: when the uplink was told of new data (``ChannelUplink.notify``), and
``waits``: every store-lock wait of the writer longer than 2 ms. All times are
``time.time()`` (the clock the load sensor stamps alarms with). The wrappers cost a few
microseconds per call; data messages pay one ``endswith`` per publish.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

Rec = dict[str, Any]


class Trace:
    def __init__(self, out: str) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.by_time: dict[float, Rec] = {}  # reading time -> stages
        self.by_seq: dict[int, Rec] = {}
        self.by_mid: dict[int, Rec] = {}
        self.pending_sock: list[Rec] = []  # published alarms not yet seen on the socket
        self.notify: list[float] = []
        # alarm appends: lock held, the sequence ranges written (a batch may hold several)
        self.locked: list[tuple[float, float, list[tuple[int, int]]]] = []

    def dump(self) -> None:
        for t0, t1, ranges in self.locked:
            for a, b in ranges:
                for seq in range(a, b + 1):
                    rec = self.by_seq.get(seq)
                    if rec is not None:
                        rec.update(locked0=t0, locked1=t1)
        with open(self.out, "w") as f:
            json.dump({"alarms": list(self.by_time.values()), "notify": self.notify[-20000:]},
                      f)


def install(tr: Trace) -> None:
    import paho.mqtt.client as mqtt

    from edge_agent.core.model import Priority
    from edge_agent.daemon.ingest import IngestQueue
    from edge_agent.store.channel_store import ChannelStore
    from edge_agent.uplink.paho_adapter import ChannelUplink

    alarm = Priority.ALARM
    put0: Callable[..., Any] = IngestQueue.put

    def put(self: IngestQueue, readings: list[Any], *a: Any, **k: Any) -> Any:
        now = time.time()
        with tr.lock:
            for r in readings:
                if r.priority == alarm:
                    tr.by_time[r.time] = {"t": r.time, "put": now}
        return put0(self, readings, *a, **k)

    append0: Callable[..., Any] = ChannelStore.append

    def append(self: ChannelStore, readings: list[Any], *a: Any, **k: Any) -> Any:
        if not readings or readings[0].priority != alarm:
            return append0(self, readings, *a, **k)
        t0 = time.time()
        ranges = append0(self, readings, *a, **k)
        t1 = time.time()
        seqs = [s for a_, b_ in ranges for s in range(a_, b_ + 1)]
        with tr.lock:
            for r, s in zip(readings, seqs, strict=False):
                rec = tr.by_time.setdefault(r.time, {"t": r.time})
                rec.update(seq=s, commit0=t0, commit1=t1, batch=len(readings))
                tr.by_seq[s] = rec
        return ranges

    locked0: Callable[..., Any] = ChannelStore._write_locked

    def write_locked(self: ChannelStore, items: list[Any]) -> Any:
        t0 = time.time()
        ranges = locked0(self, items)
        if items and items[0][0] == alarm:
            tr.locked.append((t0, time.time(), [(a, b) for a, b in ranges]))
        return ranges

    lease0: Callable[..., Any] = ChannelStore.lease

    def lease(self: ChannelStore, *a: Any, **k: Any) -> Any:
        t0 = time.time()
        out = lease0(self, *a, **k)
        t1 = time.time()
        if out and out[0].lane == alarm:
            with tr.lock:
                for b in out:
                    if b.lane != alarm:
                        continue
                    for s in range(b.first, b.last + 1):
                        rec = tr.by_seq.get(s)
                        if rec is not None:
                            rec.update(lease0=t0, lease1=t1, leased=len(out))
        return out

    publish0: Callable[..., Any] = mqtt.Client.publish

    def publish(self: mqtt.Client, topic: str, payload: Any = None, *a: Any, **k: Any) -> Any:
        if not topic.endswith("/alarm"):
            return publish0(self, topic, payload, *a, **k)
        t0 = time.time()
        queued = sum(p["to_process"] for p in list(self._out_packet))
        seq = json.loads(payload)["seq"]
        recs = [r for r in (tr.by_seq.get(s) for s in range(seq[0], seq[1] + 1))
                if r is not None]
        with tr.lock:  # before paho has it: its network thread may send it at once
            tr.pending_sock.extend(recs)
        info = publish0(self, topic, payload, *a, **k)
        t1 = time.time()
        with tr.lock:
            for rec in recs:
                rec.update(pub0=t0, pub1=t1, queued_bytes=queued, mid=info.mid)
                tr.by_mid.setdefault(info.mid, rec)
        return info

    send0: Callable[..., Any] = mqtt.Client._sock_send

    def sock_send(self: mqtt.Client, buf: bytes) -> Any:
        n = send0(self, buf)
        if tr.pending_sock and len(buf) < 4096 and b"/alarm" in buf:
            now = time.time()
            with tr.lock:
                for rec in tr.pending_sock:
                    rec.setdefault("sock", now)
                tr.pending_sock.clear()
        return n

    on_publish0: Callable[..., Any] = ChannelUplink._on_publish

    def on_publish(self: ChannelUplink, client: Any, userdata: Any, mid: int, *a: Any) -> Any:
        now = time.time()
        with tr.lock:
            rec = tr.by_mid.pop(mid, None)
            if rec is not None:
                for r in tr.by_time.values():  # every alarm of that message
                    if r.get("mid") == mid and "puback" not in r:
                        r["puback"] = now
        return on_publish0(self, client, userdata, mid, *a)

    notify0: Callable[..., Any] = ChannelUplink.notify

    def notify(self: ChannelUplink) -> None:
        tr.notify.append(time.time())
        notify0(self)

    IngestQueue.put = put  # type: ignore[method-assign]
    ChannelStore.append = append  # type: ignore[method-assign]
    ChannelStore._write_locked = write_locked  # type: ignore[method-assign]
    ChannelStore.lease = lease  # type: ignore[method-assign]
    mqtt.Client.publish = publish  # type: ignore[method-assign]
    mqtt.Client._sock_send = sock_send  # type: ignore[method-assign,assignment]
    ChannelUplink._on_publish = on_publish  # type: ignore[method-assign,assignment]
    ChannelUplink.notify = notify  # type: ignore[method-assign]


def main() -> int:
    tr = Trace(os.environ["EDGE_ALARMTRACE"])
    if os.environ.get("EDGE_SWITCHINTERVAL"):  # an experiment: the GIL's switch interval
        sys.setswitchinterval(float(os.environ["EDGE_SWITCHINTERVAL"]))
    install(tr)
    atexit.register(tr.dump)
    from edge_agent.cli.main import main as agent_main

    rc: int = agent_main(sys.argv[1:])
    tr.dump()
    return rc


if __name__ == "__main__":
    sys.exit(main())
