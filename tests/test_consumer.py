"""The reference consumer's checks (edge_agent/tools/consumer.py), fed paho's own message
objects: duplicates counted per reading, bad envelopes reported, lanes kept in order."""

from __future__ import annotations

import json

import paho.mqtt.client as mqtt

from edge_agent.tools.consumer import Consumer


def _msg(topic: str, first: int, last: int, lane: str = "normal", n: int | None = None
         ) -> mqtt.MQTTMessage:
    m = mqtt.MQTTMessage(topic=topic.encode())
    senml = [{"n": "x", "v": float(i)} for i in range(last - first + 1 if n is None else n)]
    m.payload = json.dumps({"node": "n1", "channel": "ot", "lane": lane, "seq": [first, last],
                            "senml": senml}).encode()
    return m


def _feed(c: Consumer, *msgs: mqtt.MQTTMessage) -> None:
    for m in msgs:
        c._on_message(c.client, None, m)


def test_duplicates_are_counted_per_reading_even_in_large_messages() -> None:
    c = Consumer("127.0.0.1", 1, "p", keep_messages=False)
    _feed(c, _msg("p/data", 1, 20_000), _msg("p/data", 15_001, 35_000),
          _msg("p/alarm", 35_001, 35_001, "alarm"), _msg("p/alarm", 35_001, 35_001, "alarm"))
    rec = c.snapshot()
    assert rec.duplicates == 5_000 + 1
    assert rec.readings == 40_002 and rec.ranges.count() == 35_001
    assert rec.bad == []


def test_a_bad_envelope_is_reported_not_counted() -> None:
    c = Consumer("127.0.0.1", 1, "p", keep_messages=False)
    broken = mqtt.MQTTMessage(topic=b"p/data")
    broken.payload = b'{"node": "n1", "channel": "ot", "seq": [1, 2], "senml": [}'
    _feed(c, _msg("p/data", 1, 3, n=2), broken, _msg("p/data", 4, 4))
    rec = c.snapshot()
    assert len(rec.bad) == 2 and rec.bad[0].startswith("p/data: ")
    assert rec.ranges.count() == 1 and rec.duplicates == 0


def test_an_older_range_after_a_newer_one_is_a_lane_order_violation() -> None:
    c = Consumer("127.0.0.1", 1, "p", keep_messages=False)
    _feed(c, _msg("p/data", 11, 20), _msg("p/data", 1, 10))
    assert c.snapshot().lane_order_violations == 1
