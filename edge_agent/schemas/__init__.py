"""JSON Schemas (draft-07) of the MQTT messages the agent publishes (docs/asyncapi.yaml).

One file per message; they refer to each other by file name (``"$ref": "senml.json"``), so
a validator needs all of them (``files()`` gives them keyed by that name):

    data-clear.json    data message in clear (``<prefix>/data`` and ``<prefix>/alarm``)
    data-sealed.json   data message sealed to the platform's key
    senml.json         the SenML pack: ``senml`` of a clear message, or a sealed one opened
    status.json        ``<prefix>/status`` (retained; the will says offline)
    health.json        ``<prefix>/health``
    alarm-ack.json     ``<prefix>/alarm/ack``: the platform acknowledges an alarm (received)
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

DATA_CLEAR = "data-clear.json"
DATA_SEALED = "data-sealed.json"
SENML = "senml.json"
STATUS = "status.json"
HEALTH = "health.json"
ALARM_ACK = "alarm-ack.json"
NAMES = (DATA_CLEAR, DATA_SEALED, SENML, STATUS, HEALTH, ALARM_ACK)


def load(name: str) -> dict[str, Any]:
    """One schema, parsed. Raises KeyError for a name not in NAMES."""
    if name not in NAMES:
        raise KeyError(f"no message schema {name!r} (known: {', '.join(NAMES)})")
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def files() -> dict[str, dict[str, Any]]:
    """Every schema, by file name (the names their ``$ref`` use)."""
    return {name: load(name) for name in NAMES}
