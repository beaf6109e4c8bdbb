"""What the welfare rules tell the outside world, and what they are fed."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from edge_agent.core.model import CLOCK_FLOOR, Reading, Value

Kind = Literal["inactivity", "fall", "away_overdue", "climate"]
Level = Literal["caution", "alarm", "danger"]
State = Literal["raised", "resolved"]
LEVELS: tuple[Level, ...] = ("caution", "alarm", "danger")


class Observation(msgspec.Struct, frozen=True):
    """One reading as the rules see it. ``t`` is the reading's own time (seconds since the
    epoch); ``synced`` is False for a reading taken while the node's clock was not set
    (``"clock_": "unsynced"`` in SenML): such readings never drive a rule."""

    t: float
    sensor: str
    name: str
    value: Value
    synced: bool = True

    @classmethod
    def from_reading(cls, r: Reading) -> Observation:
        """What the daemon feeds: a reading stamped before CLOCK_FLOOR is unsynced (its
        SenML record carries ``"clock_": "unsynced"``)."""
        return cls(r.time, str(r.sensor), r.name, r.value, synced=r.time >= CLOCK_FLOOR)


class WelfareEvent(msgspec.Struct, frozen=True):
    """A rule raised or resolved a level. ``since`` is the time of the last evidence the
    rule relied on (last activity, the fall, the departure, the start of the heat);
    ``evidence`` is the last time each signal of the subject was seen."""

    t: float
    subject: str  # the runtime publishes the keyed pseudonym in its place
    kind: Kind
    level: Level
    state: State
    since: float
    evidence: dict[str, float] = msgspec.field(default_factory=dict)
    value: float | None = None  # climate: the last temperature (Cel)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"t": self.t, "subject": self.subject, "kind": self.kind,
                             "level": self.level, "state": self.state, "since": self.since,
                             "evidence": dict(self.evidence)}
        if self.value is not None:
            d["value"] = self.value
        return d
