"""At-rest key files: 32 random bytes, owner-only (mode 0600), one per channel."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from ..errors import KeyFileError

KEY_BYTES = 32


STORE_KEY_HINT = "create it with 'edge-agent keys init' or let the agent create it"


def check_private(path: Path, missing_hint: str = STORE_KEY_HINT) -> None:
    """Refuse a secret file that group or others can read or write.

    ``missing_hint`` is how to create the file, said when it is missing (default: a store key).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found ({missing_hint})") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{path}: not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"{path}: key file is accessible by group/others (mode {stat.S_IMODE(st.st_mode):04o});"
            f" fix with: chmod 600 {path}")


def load_key(path: Path) -> bytes:
    """Read a key file: 32 raw bytes or 64 hex digits. Checks permissions first."""
    check_private(path)
    data = path.read_bytes()
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
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key") from None
    try:
        os.write(fd, key.hex().encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return key


def load_or_create_key(path: Path) -> tuple[bytes, bool]:
    """Load a key, creating it first if absent. Returns (key, created)."""
    if not path.exists():
        return create_key(path), True
    return load_key(path), False
