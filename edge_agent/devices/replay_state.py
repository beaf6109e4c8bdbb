"""The DLMS replay counters a meter driver keeps across restarts (one small JSON file per
sensor in the state dir, owner-only, written whole), shared by the encrypted DLMS push and
the encrypted P1 drivers."""

from __future__ import annotations

import json
import os
from pathlib import Path

from edge_agent.core.fsutil import atomic_write
from edge_agent.protocols import dlms


def load_guard(path: Path) -> dlms.ReplayGuard | None:
    """The counters saved at ``path``, or None when there is no file yet. OSError or
    ValueError (bad JSON, bad entries) when it cannot be read: the caller reports it."""
    try:
        with open(path, encoding="utf-8") as f:
            return dlms.ReplayGuard.from_json(json.load(f))
    except FileNotFoundError:
        return None


def save_guard(path: Path, guard: dlms.ReplayGuard) -> None:
    """Write the counters to ``path`` whole (OSError when they cannot be)."""
    os.makedirs(path.parent, mode=0o700, exist_ok=True)
    atomic_write(path, json.dumps(guard.to_json(), separators=(",", ":")).encode(), 0o600)
