"""Which at-rest key seals new records, and which keys can still open old ones.

A record names its key by ``key_id``. A Keyring that forgets a key (crypto-shredding,
retired rotation keys, a damaged key file) makes every record sealed with it unreadable:
the store reports such records as lost instead of failing. ``lost`` says which keys are
known to be gone for good, so the store can report their records when it opens.
"""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class Keyring(Protocol):
    def current(self, reading_time: float) -> tuple[int, AESGCM]:
        """The (key_id, cipher) to seal a batch whose oldest reading is at ``reading_time``."""
        ...

    def get(self, key_id: int) -> AESGCM | None:
        """The cipher for ``key_id``, or None when that key no longer exists."""
        ...

    def lost(self, key_id: int) -> str | None:
        """Whether ``key_id`` is known to be gone for good: ``"shredded"`` (on purpose),
        ``"corrupt"`` (its key file was damaged), or None (present, or not known)."""
        ...


class StaticKeyring:
    """One key for everything."""

    def __init__(self, key: bytes, key_id: int = 1) -> None:
        self._id = key_id
        self._aead = AESGCM(key)

    def current(self, reading_time: float) -> tuple[int, AESGCM]:
        return self._id, self._aead

    def get(self, key_id: int) -> AESGCM | None:
        return self._aead if key_id == self._id else None

    def lost(self, key_id: int) -> str | None:
        return None  # one key: another id may belong to a keyring this store was not given
