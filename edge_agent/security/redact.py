"""Health values stay inside the seal: what the IT channel may say in clear.

Health values never leave the node outside the IT seal and never rest in plaintext (the
status file, the metrics textfile, the health message, the log). What a sensor on the IT
channel may show there: counts, times, states (alive, restarts) and fault kinds. Error
texts of the drivers often carry the rejected value ("heart_rate 231/min outside 30..220"),
so for an IT sensor the text is scrubbed: every number (decimal, hex, with sign, exponent
or grouping), quoted string and Python literal (True, False, None) becomes ``#``; digits
inside a name (``spo2``, ``i2c``, ``mpu6050``) stay. The fault kind (the error's reason:
``range``, ``checksum``, ``DeviceNotFoundError``) stays.
"""

from __future__ import annotations

import re

from edge_agent.core.model import Channel

_VALUE = re.compile(
    r"""'[^']*'|"[^"]*"|\b(?:True|False|None|nan|inf)\b"""
    r"|(?<![A-Za-z_])[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?)")


def scrub(text: str) -> str:
    """``text`` with every value-like token replaced by ``#``."""
    return _VALUE.sub("#", text)


def holds_values(channel: Channel) -> bool:
    """Whether readings of ``channel`` are health data (kept out of clear text)."""
    return channel is Channel.IT


def error_text(channel: Channel, text: str | None) -> str | None:
    """A sensor's error text as it may appear outside the seal."""
    if text is None or not holds_values(channel):
        return text
    return scrub(text)
