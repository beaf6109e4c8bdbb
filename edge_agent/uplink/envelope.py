"""The data message the city platform receives (see the design brief's MQTT interface).

    {"node": "pi-0042", "channel": "ot", "lane": "normal", "seq": [17, 516],
     "store": "9f2c4e1a7b3d5c60",
     "senml": [ {"n": "meter-main/power", "u": "W", "v": 1234.0, "t": 1.7e9}, ... ]}

``store`` is the channel store's id (edge_agent/store/identity.py): random, made with the
store's numbering. Two stores publishing under one node name, or a store that was wiped
and starts numbering at 1 again, show up as different ids.

The SenML array is stored encrypted as JSON and spliced in as it is (no re-encoding).
With a sealer (the it channel, see edge_agent/security/seal.py) the message carries ``"sealed"``
(the SenML signed by the node and sealed with HPKE to the platform's key) instead of
``"senml"``; site, node, channel, lane, seq, store and suite stay clear and are bound into
the seal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from edge_agent.core.model import Channel, Priority


class PayloadSealer(Protocol):
    def seal(self, head: Mapping[str, Any], senml: bytes) -> bytes: ...


class EnvelopeBuilder:
    def __init__(self, node: str, channel: Channel,
                 sealer: PayloadSealer | None = None, store: str | None = None) -> None:
        self._node, self._channel, self._sealer = node, channel.value, sealer
        self._store = store
        self._head = (
            b'{"node":' + json.dumps(node).encode() + b',"channel":"'
            + channel.value.encode() + b'","lane":"'
        )
        self._store_field = b"" if store is None else b',"store":' + json.dumps(store).encode()

    def data(self, lane: Priority, first: int, last: int, senml: bytes) -> bytes:
        if self._sealer is not None:
            head: dict[str, Any] = {"node": self._node, "channel": self._channel,
                                    "lane": lane.label, "seq": [first, last]}
            if self._store is not None:
                head["store"] = self._store
            return self._sealer.seal(head, senml)
        return b"".join((self._head, lane.label.encode(), b'","seq":[', str(first).encode(),
                         b",", str(last).encode(), b"]", self._store_field, b',"senml":',
                         senml, b"}"))


_DECODE = msgspec.json.Decoder()  # stateless; about twice as fast as json.loads here


def parse(payload: bytes) -> dict[str, Any]:
    """Decode and check a data message (for consumers and tests). Raises ValueError
    (msgspec's DecodeError is one) for anything that is not a valid message."""
    msg = _DECODE.decode(payload)
    if not isinstance(msg, dict):
        raise ValueError("message is not a JSON object")
    for key in ("node", "channel", "seq"):
        if key not in msg:
            raise ValueError(f"message lacks {key!r}")
    seq = msg["seq"]
    if (not isinstance(seq, list) or len(seq) != 2 or not all(isinstance(s, int) for s in seq)
            or seq[0] < 1 or seq[1] < seq[0]):
        raise ValueError(f"bad seq {seq!r}")
    if "senml" in msg and len(msg["senml"]) != seq[1] - seq[0] + 1:
        raise ValueError("senml length does not match seq range")
    return msg
