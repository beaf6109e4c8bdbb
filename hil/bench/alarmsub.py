"""A subscriber process for the alarm-latency benchmark (its own process: no shared GIL).

    python -m hil.bench.alarmsub PORT TOPIC
prints "ready", then "<value> <monotonic receive time>" per SenML record received.
CLOCK_MONOTONIC is system-wide on Linux, so the parent compares it with its own.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.client import ConnectFlags
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


def main(argv: list[str]) -> None:
    port, topic = int(argv[0]), argv[1]
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hil-alarm-sub",
                         protocol=mqtt.MQTTv5)

    def on_connect(c: mqtt.Client, u: object, f: ConnectFlags, rc: ReasonCode,
                   p: Properties | None) -> None:
        c.subscribe(topic, qos=1)

    def on_subscribe(c: mqtt.Client, u: object, mid: int, rcs: list[ReasonCode],
                     p: Properties | None) -> None:
        ready.set()

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        msg = json.loads(m.payload)
        out = "".join(f"{int(r['v'])} {now:.6f}\n" for r in msg.get("senml", []))
        sys.stdout.write(out)
        sys.stdout.flush()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    ready.wait(10)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the parent closes our stdin
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main(sys.argv[1:])
