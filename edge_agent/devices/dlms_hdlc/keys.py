"""The DLMS key file (EK, and AK for authenticated pushes): one loader for the driver, its
emulator, ``decode --key`` and ``doctor``.

A text file readable by its owner only (mode 0600 or stricter)::

    # meter 7359992890941742 (from the grid operator)
    EK=000102030405060708090A0B0C0D0E0F
    AK=D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edge_agent.core.errors import KeyFileError


def load_keys(path: Path) -> tuple[bytes, bytes | None]:
    """(EK, AK or None) from a key file; KeyFileError if missing, malformed or too open."""
    keys = _parse(path, _read_private(path))
    if "EK" not in keys:
        raise KeyFileError(f"{path}: no EK= line")
    return keys["EK"], keys.get("AK")


def load_auth_key(path: Path) -> bytes:
    """The AK of an authentication key file (one ``AK=<hex>`` line; same rules)."""
    keys = _parse(path, _read_private(path))
    if set(keys) != {"AK"}:
        raise KeyFileError(f"{path}: expected one AK= line (the authentication key)")
    return keys["AK"]


def _read_private(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise KeyFileError(f"cannot open key file {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(f"key file {path} is accessible by group/others "
                               f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it")
        with os.fdopen(fd, "r", encoding="ascii", errors="replace") as f:
            fd = -1
            text = f.read(4096)
    finally:
        if fd >= 0:
            os.close(fd)
    return text


def _parse(path: Path, text: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, value = (p.strip() for p in line.partition("="))
        name = name.upper()
        if not sep or name not in ("EK", "AK") or name in keys:
            raise KeyFileError(f"{path}:{number}: expected EK=<hex> or AK=<hex> once each")
        try:
            key = bytes.fromhex(value)
        except ValueError:
            key = b""
        if len(key) != 16:
            raise KeyFileError(f"{path}:{number}: {name} must be 32 hex digits (AES-128)")
        keys[name] = key
    return keys
