"""The ``escalate:`` block: what the node does on its own when an alarm cannot leave.

    escalate:
      after: 60s                     # an alarm-lane message not taken by the IT broker
      output:                        # a buzzer or an LED on a GPIO output
        pin: 18
        active_high: true
        alarm_pattern: [0.2, 0.2]    # seconds on, off, ... (repeated)
        ack_pattern: [1.0, 4.0]      # "help is coming": the platform acknowledged
      modem: modem                   # a gsm-modem sensor id (optional)
      numbers_file: /etc/edge-agent/escalation-numbers   # owner-only, one number a line
      sms_attempts: 3
      retry_every: 30s
      buzz_for: 10m
      ack_signal_for: 1m

Checked like the rest: the modem must name a ``gsm-modem`` sensor, a modem needs a numbers
file and a numbers file needs a modem. The file itself is read (and its mode checked) when
the agent starts (``devices.modem.numbers.load_numbers``), so check-config runs where the
secret is not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.config.types import Duration, Token
from edge_agent.config.validate import Validator
from edge_agent.config.yamlsrc import Map, Node, Scalar

if TYPE_CHECKING:
    from edge_agent.config.schema import SensorConfig

MODEM_TYPE = "gsm-modem"
Pattern = tuple[float, ...]


def check_pattern(pattern: Sequence[float]) -> Pattern:
    """An on/off pattern: an even number (2..16) of durations, each 0.05..600 s."""
    p = tuple(float(x) for x in pattern)
    if not 2 <= len(p) <= 16 or len(p) % 2:
        raise ValueError("a pattern is 2 to 16 durations in seconds, alternately on and off")
    if not all(math.isfinite(x) and 0.05 <= x <= 600 for x in p):
        raise ValueError("each duration of a pattern must be within 0.05..600 seconds")
    return p


@dataclass(frozen=True)
class OutputConfig:
    pin: int
    active_high: bool = True
    alarm_pattern: list[float] = field(default_factory=lambda: [0.2, 0.2])
    ack_pattern: list[float] = field(default_factory=lambda: [1.0, 4.0])

    def __post_init__(self) -> None:
        if not 0 <= self.pin <= 27:
            raise ValueError("pin must be a BCM GPIO number 0..27")
        check_pattern(self.alarm_pattern)
        check_pattern(self.ack_pattern)
        if list(self.alarm_pattern) == list(self.ack_pattern):
            raise ValueError("ack_pattern must differ from alarm_pattern (the resident must "
                             "tell 'help is coming' from the alarm)")


@dataclass(frozen=True)
class EscalateConfig:
    after: Duration = Duration(60)
    output: OutputConfig | None = None
    modem: Token | None = None
    numbers_file: Path | None = None
    sms_attempts: int = 3
    retry_every: Duration = Duration(30)
    buzz_for: Duration = Duration(600)
    ack_signal_for: Duration = Duration(60)

    def __post_init__(self) -> None:
        if not 5 <= self.after <= 3600:
            raise ValueError("after must be between 5s and 1h")
        if not 1 <= self.sms_attempts <= 10:
            raise ValueError("sms_attempts must be within 1..10")
        for name in ("retry_every", "buzz_for", "ack_signal_for"):
            if not 1 <= getattr(self, name) <= 86400:
                raise ValueError(f"{name} must be between 1s and 1d")
        if (self.modem is None) != (self.numbers_file is None):
            raise ValueError("modem and numbers_file go together (a modem needs numbers to "
                             "text, numbers need a modem)")
        if self.output is None and self.modem is None:
            raise ValueError("give an output (buzzer/LED), a modem, or both")


def build_escalate(v: Validator, node: Node | None,
                   sensors: Sequence[SensorConfig]) -> EscalateConfig | None:
    if node is None or (isinstance(node, Scalar) and node.value is None):
        return None
    cfg: EscalateConfig | None = v.dataclass_from(EscalateConfig, node, "escalate")
    if cfg is None or cfg.modem is None:
        return cfg
    at = node.get("modem") if isinstance(node, Map) else None
    s = next((s for s in sensors if s.id == cfg.modem), None)
    if s is None:
        v.problem(at or node, "escalate.modem", f"no sensor {cfg.modem!r} under sensors")
        return None
    if s.type != MODEM_TYPE:
        v.problem(at or node, "escalate.modem",
                  f"sensor {cfg.modem!r} is a {s.type}, not a {MODEM_TYPE}")
        return None
    return cfg
