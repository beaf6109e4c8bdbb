"""Security events: one JSON line each on the ``edge_agent.security`` logger, and counted.

    secevents.emit("auth", "failure", channel="ot", detail="broker refused: Not authorized")

Categories (fixed vocabulary, so a log collector can alert on them):

    auth      TLS handshake or broker authentication failed (wrong CA, refused identity)
    acl       the broker refused a publish (PUBACK >= 0x80, e.g. 0x87 Not authorized;
              on MQTT 3.1.1: no echo, or disconnects right after publishing)
    config    a site configuration was rejected
    key       a secret file is missing, malformed or readable by group/others
    cert      a certificate is close to expiry or expired
    store     readings evicted (size, retention, corrupt, shredded), files quarantined
    privacy   readings dropped by the privacy stage (not on the allow-list)
    keys      key lifecycle: created, rotated, shredded
    escalation an alarm escalated on the node (no IT broker took it in time): escalated,
              sms_sent, sms_retry, sms_failed; the platform's acknowledgement: acknowledged,
              ack_unknown, ack_rejected (phone numbers masked to their last three digits)
    identity  another client uses this node's MQTT client id (two nodes with one name)

``detail`` must never carry a secret, a resident identifier or a reading value; callers
pass what they would put in an ordinary log line. Counting is bounded (a fixed set of
keys and a short ring of recent events), so a flood of failures cannot grow memory.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("edge_agent.security")

CATEGORIES = frozenset({"auth", "acl", "config", "key", "cert", "store", "privacy", "keys",
                        "escalation", "identity"})
_LEVELS = {"failure": logging.ERROR, "denied": logging.ERROR, "rejected": logging.ERROR,
           "expired": logging.ERROR, "lost": logging.ERROR, "quarantined": logging.ERROR,
           "conflict": logging.ERROR,
           "warning": logging.WARNING, "evicted": logging.WARNING, "dropped": logging.WARNING,
           "escalated": logging.WARNING, "sms_retry": logging.WARNING,
           "sms_failed": logging.ERROR, "ack_unknown": logging.WARNING,
           "ack_rejected": logging.WARNING}
MAX_KEYS = 256
RECENT = 32


class SecurityEvents:
    """A bounded counter of events per (channel, category, outcome)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT)

    def emit(self, category: str, outcome: str, *, channel: str | None = None,
             detail: str = "", count: int = 1) -> dict[str, Any]:
        if category not in CATEGORIES:
            raise ValueError(f"unknown security event category {category!r}")
        event: dict[str, Any] = {
            "ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "category": category, "outcome": outcome,
        }
        if channel is not None:
            event["channel"] = channel
        if count != 1:
            event["count"] = count
        if detail:
            event["detail"] = detail[:500]
        key = (channel or "", category, outcome)
        with self._lock:
            if key in self._counts or len(self._counts) < MAX_KEYS:
                self._counts[key] += count
            self._recent.append(event)
        log.log(_LEVELS.get(outcome, logging.INFO), "%s", json.dumps(event, sort_keys=True),
                extra={"audit": event})
        return event

    def counts(self, channel: str | None = None) -> dict[str, int]:
        """``{"category.outcome": n}`` for ``channel`` plus the channel-less events."""
        out: dict[str, int] = {}
        with self._lock:
            for (ch, cat, outcome), n in self._counts.items():
                if channel is None or ch in ("", channel):
                    k = f"{cat}.{outcome}"
                    out[k] = out.get(k, 0) + n
        return out

    def recent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._recent)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._recent.clear()


EVENTS = SecurityEvents()
"""The process-wide sink (like a logger: one per process, read by the health message)."""


def emit(category: str, outcome: str, *, channel: str | None = None, detail: str = "",
         count: int = 1) -> dict[str, Any]:
    return EVENTS.emit(category, outcome, channel=channel, detail=detail, count=count)


def sink(channel: str) -> Callable[[str, str, str], None]:
    """A ``(category, outcome, detail)`` callback for one channel (the store's on_event)."""
    def on_event(category: str, outcome: str, detail: str) -> None:
        EVENTS.emit(category, outcome, channel=channel, detail=detail)
    return on_event
