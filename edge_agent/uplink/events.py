"""What the uplink session (session.py) is told and what it asks for: typed events in,
typed actions out. Plain frozen dataclasses, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.core.model import Priority
from edge_agent.store.stats import Batch

# ---------------------------------------------------------------------- events (in)

@dataclass(frozen=True)
class Connected:
    """CONNACK with success from ``brokers[broker]``."""

    broker: int


@dataclass(frozen=True)
class ConnectFailed:
    broker: int
    reason: str


@dataclass(frozen=True)
class Subscribed:
    """SUBACK of the echo subscription; ``granted`` False if any topic was refused."""

    granted: bool


@dataclass(frozen=True)
class Leased:
    """What the store returned for a ``Lease`` action (possibly nothing)."""

    batches: tuple[Batch, ...]


@dataclass(frozen=True)
class Sent:
    """paho took the ``Publish`` of batch ``first`` as message ``mid``."""

    first: int
    mid: int


@dataclass(frozen=True)
class SendFailed:
    """paho refused the ``Publish`` of batch ``first`` locally (e.g. no connection)."""

    first: int
    reason: str


@dataclass(frozen=True)
class PubAck:
    """PUBACK of message ``mid``; ``code`` >= 0x80 is a refusal (MQTT 5)."""

    mid: int
    code: int = 0
    reason: str = "Success"

    @property
    def failure(self) -> bool:
        return self.code >= 0x80


@dataclass(frozen=True)
class Echo:
    """One of our own data messages came back on ``topic`` (echo mode)."""

    topic: str
    first: int


@dataclass(frozen=True)
class ConnectionLost:
    reason: str
    code: int | None = None  # the MQTT reason code (MQTT 5 DISCONNECT), when known


@dataclass(frozen=True)
class Stopping:
    """The agent stops: no more leases; in-flight batches may still be confirmed."""


@dataclass(frozen=True)
class Closed:
    """The connection is gone (lost, or closed by us): return what is still held."""


Event = (Connected | ConnectFailed | Subscribed | Leased | Sent | SendFailed | PubAck | Echo
         | ConnectionLost | Stopping | Closed)


# ---------------------------------------------------------------------- actions (out)

@dataclass(frozen=True)
class Connect:
    broker: int


@dataclass(frozen=True)
class Backoff:
    """Every broker failed: wait this long before the next round."""

    seconds: float


@dataclass(frozen=True)
class Subscribe:
    topics: tuple[str, ...]


@dataclass(frozen=True)
class PublishStatus:
    online: bool


@dataclass(frozen=True)
class PublishHealth:
    pass


@dataclass(frozen=True)
class Lease:
    """Lease up to ``max_records`` from the store; answer with ``Leased``."""

    lanes: tuple[Priority, ...]
    max_records: int


@dataclass(frozen=True)
class Publish:
    """Hand the batch to paho (QoS 1); answer with ``Sent`` or ``SendFailed``."""

    batch: Batch
    topic: str


@dataclass(frozen=True)
class Ack:
    """Delivered: acknowledge in the store."""

    batch: Batch


@dataclass(frozen=True)
class Reject:
    """Refused by the broker: dead-letter it in the store."""

    batch: Batch
    why: str


@dataclass(frozen=True)
class Release:
    """Not delivered: back to the store, sent again later (in order)."""

    firsts: tuple[int, ...]


@dataclass(frozen=True)
class Disconnect:
    """Close this connection (local publish failure, failback, no SUBACK)."""

    reason: str


@dataclass(frozen=True)
class TopicHeld:
    topic: str
    reason: str


@dataclass(frozen=True)
class TopicRestored:
    topic: str
    batch: Batch


@dataclass(frozen=True)
class DenialsReport:
    """``count`` refused messages within seq ``low..high`` since the last report."""

    count: int
    low: int
    high: int
    why: str


@dataclass(frozen=True)
class SessionTakenOver:
    """Another client connected with this channel's client id and the broker closed
    this session (MQTT 5 DISCONNECT 0x8E), or connections keep being closed without a
    reason right after they open (``suspected``: MQTT 3.1.1, or a broker that sends no
    DISCONNECT). Reconnects back off meanwhile."""

    suspected: bool
    count: int  # takeovers so far (this run)
    reason: str


@dataclass(frozen=True)
class SubscriptionRefused:
    why: str


Action = (Connect | Backoff | Subscribe | PublishStatus | PublishHealth | Lease | Publish
          | Ack | Reject | Release | Disconnect | TopicHeld | TopicRestored | DenialsReport
          | SubscriptionRefused | SessionTakenOver)
