"""Raw paho baselines for the end-to-end set, counted by the same subscriber process.

    python -m hil.bench.rawpub data PORT COUNT       one QoS 1 message per reading
    python -m hil.bench.rawpub alarms PORT N GAP     N alarms GAP s apart, SenML t = now

No store, no agent: paho-mqtt (MQTT 5, QoS 1, its default in-flight limit of 20)
publishing envelopes the consumer accepts. Prints one JSON line (publisher CPU-seconds).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hil.bench.sitefile import NODE, PREFIX
from hil.common import emit_json


def _client(port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hil-raw-{os.getpid()}",
                    protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    deadline = time.monotonic() + 10
    while not c.is_connected():
        if time.monotonic() > deadline:
            raise TimeoutError(f"raw paho could not connect to 127.0.0.1:{port}")
        time.sleep(0.01)
    return c


def _envelope(seq: int, record: dict[str, object], lane: str) -> bytes:
    return json.dumps({"node": NODE, "channel": "ot", "lane": lane, "seq": [seq, seq],
                       "senml": [record]}).encode()


def data(port: int, count: int) -> dict[str, float]:
    t0 = time.time()
    payloads = [_envelope(i, {"n": "gen/counter", "u": "count", "v": float(i),
                              "t": round(t0 + i * 1e-3, 3)}, "normal")
                for i in range(1, count + 1)]
    acked = threading.Semaphore(0)
    c = _client(port)
    c.on_publish = lambda *a: acked.release()
    start = time.perf_counter()
    for p in payloads:
        c.publish(f"{PREFIX}/data", p, qos=1)
    for _ in payloads:
        acked.acquire(timeout=60)
    dt = time.perf_counter() - start
    c.disconnect()
    c.loop_stop()
    t = os.times()
    return {"messages": count, "publish_seconds": dt, "cpu_seconds": t.user + t.system}


def alarms(port: int, n: int, gap: float) -> dict[str, float]:
    c = _client(port)
    for i in range(1, n + 1):
        c.publish(f"{PREFIX}/alarm",
                  _envelope(i, {"n": "sos/counter", "u": "count", "v": float(i),
                                "t": time.time()}, "alarm"), qos=1)
        time.sleep(gap)
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()
    return {"alarms": n}


def main(argv: list[str]) -> None:
    if argv[0] == "data":
        emit_json(data(int(argv[1]), int(argv[2])))
    elif argv[0] == "alarms":
        emit_json(alarms(int(argv[1]), int(argv[2]), float(argv[3])))
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
