"""One line per event on stderr: level, component, message. journald-aware.

``setup`` is for the daemon (systemd puts stderr in the journal). ``setup_interactive`` is
for commands a person runs in a terminal: warnings in plain words on stderr, audit
(security) events to the journal or syslog with their fields (daemon/journal.py).
"""

from __future__ import annotations

import logging
import os
import sys

_PRIO = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
         logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    """Under systemd (JOURNAL_STREAM set) prefix the syslog priority, drop the timestamp."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIO.get(record.levelno, 6)
        return f"<{prio}>" + super().format(record).replace("\n", " | ")


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_LineFormatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("paho").setLevel(logging.WARNING)


SECURITY_LOGGER = "edge_agent.security"


class _NotAudit(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(SECURITY_LOGGER)


def setup_interactive(level: str = "warning") -> None:
    from edge_agent.daemon.journal import JournalHandler

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter("%(levelname)s: %(message)s"))
    handler.addFilter(_NotAudit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("paho").setLevel(logging.WARNING)
    audit = logging.getLogger(SECURITY_LOGGER)
    audit.handlers[:] = [JournalHandler()]
    audit.setLevel(logging.INFO)
    audit.propagate = False
