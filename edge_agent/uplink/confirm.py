"""How a channel knows a publish was delivered, when the broker cannot say "no".

MQTT 5 brokers refuse a publish with a PUBACK reason code (0x87 Not authorized). MQTT 3.1.1
has no reason codes: mosquitto and the NATS server drop a denied QoS 1 publish and still
acknowledge it. Such a channel confirms by *echo* instead (design note 0004): the node
subscribes to its own data and alarm topics, and a message counts as delivered only when it
comes back through the broker. A message whose echo does not arrive within ``echo_timeout``
is held back in the store (never deleted), counted and reported; its topic is then *held*
and only probed with one message at a time, with a growing delay, until an echo shows the
topic is open again. A broker that closes the connection instead of dropping the publish is
recognised by repeated disconnects right after publishing to a topic and handled the same
way, so it is reported instead of looped on.

Everything here is pure bookkeeping: no I/O, time passed in (tests need no sleeping).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_agent.config.schema import ChannelConfig

ECHO = "echo"
PUBACK = "puback"

UNVERIFIED = "unverified"
VERIFIED = "verified"
HELD = "held"

DISCONNECTS_TO_HOLD = 3  # disconnects in a row right after publishing to a topic
PROBE_MAX = 300.0  # longest wait between probes of a held topic (seconds)

_SEQ = re.compile(rb'"seq":\s*\[\s*(\d+)\s*,\s*(\d+)\s*\]')


def confirm_mode(cfg: ChannelConfig) -> str:
    """``echo`` or ``puback``: ``auto`` is echo on MQTT 3.1.1 and PUBACK codes on MQTT 5."""
    if cfg.confirm == "auto":
        return ECHO if cfg.mqtt_version == 3 else PUBACK
    return cfg.confirm


def delivery_warning(channel: str, cfg: ChannelConfig, prefix: str) -> str | None:
    """The warning ``check-config`` prints for a channel whose denials need care."""
    if cfg.mqtt_version != 3:
        return None
    if confirm_mode(cfg) == PUBACK:
        return (f"channel {channel}: MQTT 3.1.1 with confirm: puback: a publish the broker "
                "refuses (ACL) is acknowledged anyway and lost; denials on this channel are "
                "UNDETECTABLE (use confirm: echo, or MQTT 5)")
    return (f"channel {channel}: MQTT 3.1.1 has no PUBACK reason codes: denials are "
            f"detected only by echo (the node needs read on {prefix}/data and "
            f"{prefix}/alarm); deliveries are unverified until the first echo")


def echo_seq(payload: bytes | bytearray) -> tuple[int, int] | None:
    """``(first, last)`` of a data message (clear head of a plain or sealed envelope)."""
    m = _SEQ.search(payload, 0, 512)
    return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass
class TopicTrust:
    state: str = UNVERIFIED
    confirmed: int = 0  # messages confirmed (echo) on this topic
    unconfirmed: int = 0  # messages held back: no echo in time
    suspect_disconnects: int = 0  # disconnects in a row right after publishing here
    holds: int = 0  # times this topic was held
    probe_at: float = 0.0
    probes: int = 0
    reason: str = ""


class DeliveryGate:
    """Per-topic trust of one channel: how much may be sent, and what to report."""

    def __init__(self, topics: list[str], echo_timeout: float,
                 probe_max: float = PROBE_MAX,
                 disconnects_to_hold: int = DISCONNECTS_TO_HOLD) -> None:
        self.topics = {t: TopicTrust() for t in topics}
        self.echo_timeout = echo_timeout
        self.probe_max = max(probe_max, echo_timeout)
        self.disconnects_to_hold = disconnects_to_hold

    def allowance(self, topic: str, now: float, inflight: int) -> int | None:
        """None: no limit beyond the window. A held topic gets one probe at a time, when
        its probe is due."""
        t = self.topics[topic]
        if t.state != HELD:
            return None
        return 1 if inflight == 0 and now >= t.probe_at else 0

    def sent(self, topic: str, now: float) -> None:
        """A message went out on ``topic`` (a probe, when the topic is held)."""
        t = self.topics[topic]
        if t.state == HELD:
            t.probes += 1
            t.probe_at = now + min(self.probe_max, self.echo_timeout * 2 ** min(t.probes, 16))

    def confirmed(self, topic: str) -> bool:
        """An echo arrived. Returns True when a held topic is open again."""
        t = self.topics[topic]
        was_held = t.state == HELD
        t.state, t.confirmed, t.suspect_disconnects, t.probes = VERIFIED, t.confirmed + 1, 0, 0
        t.reason = ""
        return was_held

    def missing(self, topic: str, now: float, why: str) -> bool:
        """A message on ``topic`` got no echo in time. Returns True when this holds the
        topic (report it once, not per message)."""
        t = self.topics[topic]
        t.unconfirmed += 1
        return self._hold(t, now, why)

    def disconnected(self, unconfirmed_since: dict[str, float], now: float) -> list[str]:
        """The connection dropped. ``unconfirmed_since``: per topic, when the first message
        not yet confirmed on this connection was sent. Returns the topics this holds."""
        held: list[str] = []
        for topic, since in unconfirmed_since.items():
            if now - since > self.echo_timeout:
                continue  # not "right after publishing": the timeout had its chance
            t = self.topics[topic]
            t.suspect_disconnects += 1
            if t.suspect_disconnects >= self.disconnects_to_hold and self._hold(
                    t, now, f"the broker closed the connection {t.suspect_disconnects} times "
                            f"in a row right after a publish to {topic}"):
                held.append(topic)
        return held

    def _hold(self, t: TopicTrust, now: float, why: str) -> bool:
        if t.state == HELD:
            return False
        t.state, t.holds, t.reason, t.probes = HELD, t.holds + 1, why, 0
        t.probe_at = now + self.echo_timeout
        return True

    def state(self) -> str:
        """The channel's state: held if any topic is, verified once a topic confirmed."""
        states = {t.state for t in self.topics.values()}
        if HELD in states:
            return HELD
        return VERIFIED if VERIFIED in states else UNVERIFIED
