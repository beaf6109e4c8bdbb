"""A reference consumer of the MQTT interface: what the city platform does.

It subscribes to one channel's topics, checks each data message's envelope, and keeps
the received sequence ranges so that gaps, duplicates and per-lane order can be checked.
Used by ``edge-agent demo``, the tests and the fault-injection rig.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge_agent.store.ranges import RangeSet
from edge_agent.uplink.envelope import parse


@dataclass
class Received:
    topic: str
    msg: dict[str, Any]


@dataclass
class ChannelRecord:
    ranges: RangeSet = field(default_factory=RangeSet)
    messages: list[Received] = field(default_factory=list)
    readings: int = 0
    duplicates: int = 0
    bad: list[str] = field(default_factory=list)
    status: dict[str, Any] | None = None
    health: list[dict[str, Any]] = field(default_factory=list)
    last_by_lane: dict[str, int] = field(default_factory=dict)
    lane_order_violations: int = 0


class Consumer:
    def __init__(self, host: str, port: int, prefix: str, client_id: str | None = None,
                 on_message: Callable[[str, dict[str, Any]], None] | None = None,
                 keep_messages: bool = True, tls_context: Any = None,
                 username: str | None = None, password: str | None = None,
                 private_key: Any = None, node_keys: Any = None,
                 protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5) -> None:
        self.prefix = prefix
        self._private_key = private_key  # opens sealed payloads (the platform's HPKE key)
        self._node_keys = node_keys  # security.nodekey.NodeKeys: who may have sealed them
        self.rec = ChannelRecord()
        self._lock = threading.Lock()
        self._cb = on_message
        self._keep = keep_messages
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  protocol=protocol)  # MQTTv311 for 3.1.1-only brokers
        if tls_context is not None:
            self.client.tls_set_context(tls_context)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.host, self.port = host, port

    def start(self, timeout: float = 10.0) -> Consumer:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError(f"consumer could not connect and subscribe to "
                               f"{self.host}:{self.port}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                    props: Any) -> None:
        client.subscribe(f"{self.prefix}/#", qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any,
                      props: Any) -> None:
        # start() returns once the subscription is in place, not merely the connection
        if all(not rc.is_failure for rc in reason_codes):
            self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, m: mqtt.MQTTMessage) -> None:
        kind = m.topic.rsplit("/", 1)[-1]
        try:
            if kind in ("data", "alarm"):
                msg = parse(bytes(m.payload))
                if self._private_key is not None and "sealed" in msg:
                    from edge_agent.security.seal import open_sealed

                    msg = parse(json.dumps(open_sealed(msg, self._private_key,
                                                       self._node_keys)).encode())
                self._data(m.topic, msg)
            else:
                msg = json.loads(m.payload)
                with self._lock:
                    if kind == "status":
                        self.rec.status = msg
                    elif kind == "health":
                        self.rec.health.append(msg)
        except (ValueError, KeyError) as exc:
            with self._lock:
                self.rec.bad.append(f"{m.topic}: {exc}")
            return
        if self._cb is not None:
            self._cb(kind, msg)

    def _data(self, topic: str, msg: dict[str, Any]) -> None:
        first, last = msg["seq"]
        lane = msg.get("lane", "?")
        with self._lock:
            r = self.rec
            overlap = r.ranges.count_in(first, last)
            if overlap:
                r.duplicates += overlap
            r.ranges.add(first, last)
            r.readings += last - first + 1
            prev = r.last_by_lane.get(lane, 0)
            if first <= prev and not overlap:
                r.lane_order_violations += 1
            r.last_by_lane[lane] = max(prev, last)
            if self._keep:
                r.messages.append(Received(topic, msg))

    def snapshot(self) -> ChannelRecord:
        with self._lock:
            return ChannelRecord(RangeSet(self.rec.ranges), list(self.rec.messages),
                                 self.rec.readings, self.rec.duplicates, list(self.rec.bad),
                                 self.rec.status, list(self.rec.health),
                                 dict(self.rec.last_by_lane), self.rec.lane_order_violations)

    def received(self) -> RangeSet:
        with self._lock:
            return RangeSet(self.rec.ranges)
