"""Audit events from an interactive command go to the system log, not the terminal.

A person running ``edge-agent keys rotate`` wants to read what happened, not a JSON audit
line; the audit trail still needs the event, with its fields. :class:`JournalHandler`
sends each record to systemd-journald over its native socket (fields ``MESSAGE``,
``PRIORITY``, ``SYSLOG_IDENTIFIER=edge-agent`` and, for a security event, ``EDGE_CATEGORY``,
``EDGE_OUTCOME``, ``EDGE_CHANNEL``, ``EDGE_COUNT``, ``EDGE_DETAIL``), or to syslog
(``/dev/log``) where there is no journal. With neither (a container), the event is only
counted. ``journalctl -t edge-agent`` shows them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from pathlib import Path
from typing import Any

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
SYSLOG_SOCKET = Path("/dev/log")
IDENTIFIER = "edge-agent"
_PRIO = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
         logging.CRITICAL: 2}


def _field(name: str, value: Any) -> bytes:
    data = str(value).encode("utf-8", "replace")
    if b"\n" in data:  # the protocol's binary form: name, newline, 64-bit LE length, data
        return name.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


def journal_fields(record: logging.LogRecord, message: str) -> bytes:
    parts = [_field("MESSAGE", message),
             _field("PRIORITY", _PRIO.get(record.levelno, 6)),
             _field("SYSLOG_IDENTIFIER", IDENTIFIER),
             _field("LOGGER", record.name)]
    audit = getattr(record, "audit", None)
    if isinstance(audit, dict):
        for key in ("category", "outcome", "channel", "count", "detail"):
            if key in audit:
                parts.append(_field(f"EDGE_{key.upper()}", audit[key]))
    return b"".join(parts)


class JournalHandler(logging.Handler):
    """Native journald protocol, else syslog, else nothing. Never raises to the caller."""

    def __init__(self, journal: Path = JOURNAL_SOCKET, syslog: Path = SYSLOG_SOCKET) -> None:
        super().__init__()
        self.journal, self.syslog = journal, syslog

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        with contextlib.suppress(OSError):
            if self.journal.exists():
                self._send(self.journal, journal_fields(record, message))
                return
            if self.syslog.exists():
                audit = getattr(record, "audit", None)
                text = json.dumps(audit, sort_keys=True) if isinstance(audit, dict) \
                    else message
                prio = 8 * 10 + _PRIO.get(record.levelno, 6)  # facility authpriv
                self._send(self.syslog, f"<{prio}>{IDENTIFIER}: {text}".encode())

    @staticmethod
    def _send(path: Path, data: bytes) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(data, str(path))
