"""The escalate: block: typed, cross-checked against the sensors, every problem located."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config.escalate import EscalateConfig, OutputConfig
from edge_agent.core.errors import ConfigError

from .helpers import SITE, site

MODEM = "  - { id: modem, type: gsm-modem, port: /dev/ttyUSB2 }\n"
BLOCK = """\
escalate:
  after: 90s
  output: { pin: 18, alarm_pattern: [0.2, 0.2], ack_pattern: [1, 4] }
  modem: modem
  numbers_file: /etc/edge-agent/escalation-numbers
  sms_attempts: 4
"""


def with_escalate(block: str = BLOCK, modem: bool = True) -> str:
    text = SITE.replace("welfare:\n", (MODEM if modem else "") + "welfare:\n", 1)
    return text + block


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        site(text)
    return [p.format() for p in ei.value.problems]


def test_escalate_block_is_typed() -> None:
    cfg = site(with_escalate()).escalate
    assert cfg == EscalateConfig(after=90.0, output=OutputConfig(18, True, [0.2, 0.2], [1, 4]),
                                 modem="modem",  # type: ignore[arg-type]
                                 numbers_file=Path("/etc/edge-agent/escalation-numbers"),
                                 sms_attempts=4)
    assert site().escalate is None


def test_modem_must_be_a_gsm_modem_sensor() -> None:
    text = with_escalate(BLOCK.replace("modem: modem", "modem: pir-hall"))
    (p,) = problems(text)
    assert p.endswith("escalate.modem: sensor 'pir-hall' is a pir, not a gsm-modem")
    (p,) = problems(with_escalate(modem=False))
    assert "escalate.modem: no sensor 'modem' under sensors" in p


@pytest.mark.parametrize("change, message", [
    ("  numbers_file: /etc/edge-agent/escalation-numbers\n", "modem and numbers_file go together"),
    ("ack_pattern: [1, 4]", "ack_pattern must differ"),
    ("after: 90s", "after must be between 5s and 1h"),
    ("sms_attempts: 4", "sms_attempts must be within 1..10"),
    ("pin: 18", "pin must be a BCM GPIO number"),
    ("alarm_pattern: [0.2, 0.2]", "a pattern is 2 to 16 durations"),
])
def test_bad_values_are_located(change: str, message: str) -> None:
    new = {"  numbers_file: /etc/edge-agent/escalation-numbers\n": "",
           "ack_pattern: [1, 4]": "ack_pattern: [0.2, 0.2]", "after: 90s": "after: 2h",
           "sms_attempts: 4": "sms_attempts: 0", "pin: 18": "pin: 40",
           "alarm_pattern: [0.2, 0.2]": "alarm_pattern: [0.2]"}[change]
    (p,) = problems(with_escalate(BLOCK.replace(change, new)))
    assert message in p and ":" in p.split("escalate")[0], p


def test_unknown_key_is_an_error() -> None:
    (p,) = problems(with_escalate(BLOCK + "  buzer: true\n"))
    assert "escalate.buzer" in p
