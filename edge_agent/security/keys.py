"""At-rest key files: 32 random bytes, owner-only (mode 0600), one per channel.

A key file is created whole or not at all (written to a temporary file, fsynced, then
linked into place): a full disk or a power cut never leaves an empty or half key."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from edge_agent.core.errors import KeyFileError
from edge_agent.core.fsutil import atomic_write

log = logging.getLogger("edge_agent.keys")

KEY_BYTES = 32


STORE_KEY_HINT = "create it with 'edge-agent keys init' or let the agent create it"


def check_private(path: Path, missing_hint: str = STORE_KEY_HINT) -> None:
    """Refuse a secret file that group or others can read or write.

    ``missing_hint`` is how to create the file, said when it is missing (default: a store key).
    The one permission check for every secret file the agent reads (keys, TLS client keys,
    passwords); :func:`read_private` checks and reads in one go.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found ({missing_hint})") from None
    _check_mode(path, st.st_mode)


def read_private(path: Path, limit: int = 64 * 1024,
                 missing_hint: str = STORE_KEY_HINT) -> bytes:
    """A secret file's bytes (at most ``limit``), checked as by :func:`check_private` on
    the open file itself, so what is read is what was checked.

    NOTE: the DLMS driver's ``load_keys`` repeats this check on its own; it should read
    its key file through this function."""
    try:  # non-blocking: a FIFO in a key's place is refused, not waited on
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found ({missing_hint})") from None
    with os.fdopen(fd, "rb") as f:
        _check_mode(path, os.fstat(f.fileno()).st_mode)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise KeyFileError(f"{path}: larger than {limit} bytes: not a key file")
    return data


def _check_mode(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise KeyFileError(f"{path}: not a regular file")
    if mode & 0o077:
        raise KeyFileError(
            f"{path}: key file is accessible by group/others (mode {stat.S_IMODE(mode):04o});"
            f" fix with: chmod 600 {path}")


def load_key(path: Path) -> bytes:
    """Read a key file: 32 raw bytes or 64 hex digits. Checks permissions first."""
    data = read_private(path, limit=4096)
    if len(data) == KEY_BYTES:
        return data
    text = data.strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path}: expected {KEY_BYTES} raw bytes or {2 * KEY_BYTES} hex digits")
    return key


def create_key(path: Path) -> bytes:
    """Create a new random key file with mode 0600 (parent 0700). Never overwrites."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(KEY_BYTES)
    try:
        atomic_write(path, key.hex().encode("ascii") + b"\n", 0o600, exclusive=True)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key") from None
    return key


def load_or_create_key(path: Path) -> tuple[bytes, bool]:
    """Load a key, creating it first if absent. Returns (key, created).

    An empty file is what an interrupted create of an older version left (it wrote in
    place): no key was ever in it, so nothing can be sealed with it; it is replaced."""
    if path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
        log.error("%s: empty key file (an interrupted create); making a new key", path)
        path.unlink()
    if not path.exists():
        return create_key(path), True
    return load_key(path), False
