"""The period keys' wrapping: the key-encryption key derived from the channel key, the
associated data binding a wrapped key to its channel, period and id, the channel-key check
value, and the durable form of the highest key id issued (``kid.hwm``)."""

from __future__ import annotations

import zlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CHECK_MAGIC = b"EAKC1"


def kek(channel_key: bytes, channel: str) -> AESGCM:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"edge-agent period-key wrap v1 " + channel.encode()).derive(channel_key)
    return AESGCM(raw)


def aad(channel: str, period: int, kid: int) -> bytes:
    return f"{channel}|{period}|{kid}".encode()


def check_value(channel_key: bytes, channel: str) -> bytes:
    """A one-way value that tells whether a channel key is the one the keys were made with."""
    return CHECK_MAGIC + HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                               info=b"edge-agent channel-key check v1 " + channel.encode()
                               ).derive(channel_key)


def render_kid(kid: int) -> bytes:
    return f"{kid} {zlib.crc32(str(kid).encode()):08x}\n".encode("ascii")


def parse_kid(data: bytes) -> int | None:
    parts = data.split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    if f"{zlib.crc32(parts[0]):08x}".encode("ascii") != parts[1]:
        return None
    return int(parts[0])
