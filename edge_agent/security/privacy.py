"""The privacy stage: between a sensor's emit and the ingest queue (minimise, pseudonymise).

- **Allow-list.** A reading leaves the node only if its name is on the sensor's
  ``publish:`` list (default: every name the driver emits). Names of raw signal streams
  (PPG waveforms, raw accelerometer axes, raw samples) never pass, listed or not; drivers do
  not emit them, this is the second lock. Dropped readings are counted per sensor and name.
- **Pseudonyms.** A sensor with ``subject:`` (a resident identifier) publishes under
  ``p-<hmac16>/<sensor>/<name>``: HMAC-SHA256 of the subject under the site's pseudonym key,
  first 16 hex digits. The key lives apart from every other key
  (``<state_dir>/keys/pseudonym.key`` or the systemd credential ``pseudonym.key``); whoever
  links a pseudonym back to a person needs it, and it never leaves the node. The subject
  itself is never stored, published or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from edge_agent.config.schema import SensorConfig
from edge_agent.core.model import Reading
from edge_agent.security import events as secevents
from edge_agent.security.keys import load_key, load_or_create_key

log = logging.getLogger("edge_agent.security.privacy")

NEVER_PUBLISHED = re.compile(
    r"(^|[_/.-])(raw|ppg|waveform|samples?|red|ir|accel_[xyz]|gyro_[xyz]|[xyz]_raw)($|[_/.-])",
    re.IGNORECASE)
PSEUDONYM_KEY = "pseudonym.key"


def pseudonym(key: bytes, subject: str) -> str:
    """``p-`` and 16 hex digits (64 bits) of HMAC-SHA256(key, subject)."""
    return "p-" + hmac.new(key, subject.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def pseudonym_key_path(state_dir: Path) -> Path:
    """The systemd credential if one is passed, else ``<state_dir>/keys/pseudonym.key``."""
    cred = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred and (Path(cred) / PSEUDONYM_KEY).is_file():
        return Path(cred) / PSEUDONYM_KEY
    return state_dir / "keys" / PSEUDONYM_KEY


def load_pseudonym_key(state_dir: Path, create: bool = True) -> bytes:
    path = pseudonym_key_path(state_dir)
    if create and path.parent == state_dir / "keys":
        key, created = load_or_create_key(path)
        if created:
            log.warning("created the pseudonym key %s (mode 0600); keep it apart from the "
                        "data: it links pseudonyms to residents", path)
            secevents.emit("keys", "created", detail=str(path))
        return key
    return load_key(path)


@dataclass(frozen=True)
class _Rule:
    allow: frozenset[str] | None  # None = whatever the driver emits
    prefix: str | None  # "p-<hmac16>/<sensor>" when the sensor has a subject


class PrivacyStage:
    """Filters and renames one sensor's readings. Thread-safe (one call per sensor thread)."""

    def __init__(self, sensors: Iterable[SensorConfig], pseudonym_key: bytes | None) -> None:
        self._rules: dict[str, _Rule] = {}
        for s in sensors:
            prefix = None
            if s.subject is not None:
                if pseudonym_key is None:
                    raise ValueError(f"sensor {s.id}: subject needs the pseudonym key")
                prefix = f"{pseudonym(pseudonym_key, s.subject)}/{s.id}"
            allow = frozenset(s.publish) if s.publish is not None else None
            self._rules[s.id] = _Rule(allow, prefix)
        self._ok: dict[tuple[str, str], bool] = {}
        self._lock = threading.Lock()
        self.dropped: Counter[tuple[str, str]] = Counter()

    def needs_key(self) -> bool:
        return any(r.prefix for r in self._rules.values())

    def allowed(self, sensor: str, name: str) -> bool:
        hit = self._ok.get((sensor, name))
        if hit is None:
            rule = self._rules.get(sensor)
            hit = (NEVER_PUBLISHED.search(name) is None
                   and (rule is None or rule.allow is None or name in rule.allow))
            self._ok[(sensor, name)] = hit
        return hit

    def apply(self, readings: list[Reading]) -> list[Reading]:
        """The readings that may leave, renamed under their pseudonym."""
        if not readings:
            return readings
        sensor = readings[0].sensor
        same = all(r.sensor == sensor for r in readings)
        out = readings
        if not same or not all(self.allowed(sensor, r.name) for r in readings):
            out = [r for r in readings if self.allowed(r.sensor, r.name)]
            self._count_dropped([r for r in readings if not self.allowed(r.sensor, r.name)])
        rule = self._rules.get(sensor) if same else None
        if same and rule is not None and rule.prefix is not None:
            return [msgspec.structs.replace(r, sensor=rule.prefix) for r in out]
        if not same:
            renamed = []
            for r in out:
                rr = self._rules.get(r.sensor)
                renamed.append(msgspec.structs.replace(r, sensor=rr.prefix)
                               if rr is not None and rr.prefix is not None else r)
            return renamed
        return out

    def _count_dropped(self, dropped: list[Reading]) -> None:
        with self._lock:
            for r in dropped:
                first = (r.sensor, r.name) not in self.dropped
                self.dropped[(r.sensor, r.name)] += 1
                if first:
                    log.warning("sensor %s: reading %r is not on the publish list; dropped "
                                "(counted, logged once)", r.sensor, r.name)
                    secevents.emit("privacy", "dropped", channel=r.channel.value,
                                   detail=f"{r.sensor}/{r.name} not on the publish list")

    def dropped_for(self, sensor: str) -> dict[str, int]:
        with self._lock:
            return {name: n for (s, name), n in self.dropped.items() if s == sensor}
