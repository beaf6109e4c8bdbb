"""A store's identity: a random id made when its numbering starts, kept with it.

    <store>/store.id    16 lowercase hex digits (64 random bits) and a newline

Every data message carries it as ``"store"``, so the platform can tell two stores apart:
two nodes given one node name (their ranges would interleave), or a node whose store was
wiped or replaced (its numbering starts at 1 again: a new store, not a replay). It is made
together with the sequence numbering (when ``seq.hwm`` does not exist yet) and never
changes while that numbering lives; a store from before ids existed gets one at its
first open. An unreadable id is replaced (and said): the platform then sees a new store,
which is the safe reading of a store we cannot vouch for.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

from edge_agent.core.fsutil import Fsync, Write, atomic_write

FILE = "store.id"
_ID = re.compile(r"[0-9a-f]{16}")

log = logging.getLogger("edge_agent.store")


def new_id() -> str:
    return secrets.token_hex(8)


def read(directory: Path) -> str | None:
    """The id in ``directory``, or None when it is missing or unreadable."""
    try:
        text = (directory / FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if _ID.fullmatch(text) else None


def load_or_create(directory: Path, numbering_exists: bool, *, fsync: Fsync = os.fsync,
                   write: Write = os.write) -> str:
    """This store's id. ``numbering_exists``: seq.hwm was there before this open (an
    existing store keeps its id; a new numbering gets a new one)."""
    path = directory / FILE
    current = read(directory) if numbering_exists else None
    if current is not None:
        return current
    if numbering_exists and path.exists():
        log.warning("%s is unreadable: this store gets a new id (the platform sees a new "
                    "store from here on)", path)
    sid = new_id()
    atomic_write(path, (sid + "\n").encode("ascii"), 0o600, fsync=fsync, write=write)
    return sid
