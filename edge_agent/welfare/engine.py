"""Every resident's welfare rules on one node: route readings, tick timers, save state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from edge_agent.config.welfare import WelfareSubject
from edge_agent.welfare.events import Observation, WelfareEvent
from edge_agent.welfare.rules import STATE_VERSION, SubjectRules, WelfareStateError


class Welfare:
    """The rules of all ``subjects``; ``sensor_types`` maps sensor id -> type."""

    def __init__(self, subjects: Sequence[WelfareSubject], sensor_types: Mapping[str, str],
                 state: bytes | str | None = None) -> None:
        saved = self._decode(state) if state is not None else {}
        self.subjects = [
            SubjectRules(r, sensor_types,
                         SubjectRules.load_state(saved[r.subject]) if r.subject in saved
                         else None)
            for r in subjects]
        self._route: dict[str, list[SubjectRules]] = {}
        for sr in self.subjects:
            for sid in sr.types:
                self._route.setdefault(sid, []).append(sr)

    @staticmethod
    def _decode(state: bytes | str) -> dict[str, Any]:
        try:
            doc = msgspec.json.decode(state)
        except msgspec.DecodeError as exc:
            raise WelfareStateError(f"welfare state unreadable: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("subjects"), dict):
            raise WelfareStateError("welfare state unreadable: no 'subjects' mapping")
        subjects: dict[str, Any] = doc["subjects"]
        return subjects

    def feed(self, obs: Observation) -> list[WelfareEvent]:
        out: list[WelfareEvent] = []
        for sr in self._route.get(obs.sensor, ()):
            out.extend(sr.feed(obs))
        return out

    def tick(self, now: float) -> list[WelfareEvent]:
        out: list[WelfareEvent] = []
        for sr in self.subjects:
            out.extend(sr.tick(now))
        return out

    def next_deadline(self) -> float | None:
        if len(self.subjects) == 1:
            return self.subjects[0].next_deadline()
        ds = [d for sr in self.subjects if (d := sr.next_deadline()) is not None]
        return min(ds) if ds else None

    def state_json(self) -> bytes:
        """Everything needed to carry on after a restart (write it atomically)."""
        return msgspec.json.encode({"version": STATE_VERSION,
                                    "subjects": {sr.rules.subject: sr.s for sr in self.subjects}})
