"""DLMS security suite 0: general-glo-ciphering (AES-128-GCM) and the replay guard.

IV = system title || invocation counter, 12-byte tag over security control || AK. Without a
key an encrypted APDU is not an error: it comes out as a ``CipheredApdu`` (system title,
invocation counter). A live reader puts decrypted Notifications through a ``ReplayGuard``,
which rejects a push whose invocation counter is not above the last one accepted from the
same system title (``ReplayError``, reason ``replay``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from edge_agent.core.errors import DecryptionError, FrameError, ProtocolError
from edge_agent.protocols.dlms.axdr import Reader, ber_length
from edge_agent.protocols.dlms.cosem import Notification

TAG_LEN = 12


GLO_CIPHERING = 0xDB


@dataclass(frozen=True)
class CipheredApdu:
    """A general-glo-ciphering APDU left encrypted: no key was given to decrypt it."""

    offset: int
    system_title: bytes
    security_control: int
    invocation_counter: int
    payload_len: int

    def to_json(self) -> dict[str, Any]:
        return {"type": "dlms-ciphered-apdu", "offset": self.offset, "encrypted": True,
                "decrypted": False, "reason": "no key given",
                "system_title": self.system_title.hex(),
                "security_control": self.security_control,
                "invocation_counter": self.invocation_counter,
                "payload_len": self.payload_len}


class ReplayError(ProtocolError):
    """An authentic encrypted push whose invocation counter was already used (a replay)."""

    reason = "replay"


class ReplayGuard:
    """The highest invocation counter accepted per system title.

    ``check`` passes an unencrypted Notification through, accepts an encrypted one whose
    counter is above the last accepted for its system title (and remembers it), and
    rejects any other as a ReplayError. Feed it only authentic (decrypted) pushes.
    ``to_json``/``from_json`` carry its state across restarts (the caller does the I/O).
    """

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}

    def to_json(self) -> dict[str, int]:
        """The state to persist: ``{system_title_hex: counter}``."""
        return {title.hex(): counter for title, counter in sorted(self._last.items())}

    @classmethod
    def from_json(cls, doc: object) -> ReplayGuard:
        """A guard from ``to_json`` output; ValueError if ``doc`` is not that shape."""
        if not isinstance(doc, dict):
            raise ValueError("replay state is not a JSON object")
        guard = cls()
        for key, counter in doc.items():
            try:
                title = bytes.fromhex(key) if isinstance(key, str) else b""
            except ValueError:
                title = b""
            if (not title or isinstance(counter, bool) or not isinstance(counter, int)
                    or not 0 <= counter < 2 ** 32):
                raise ValueError(f"bad replay state entry {key!r}: {counter!r}")
            guard._last[title] = counter
        return guard

    def last(self, system_title: bytes) -> int | None:
        """The highest counter accepted from ``system_title``, None before its first push."""
        return self._last.get(system_title)

    def check(self, note: Notification) -> ReplayError | None:
        """None if ``note`` is fresh (or unencrypted), else the ReplayError to count."""
        title, counter = note.system_title, note.invocation_counter
        if not note.encrypted or title is None or counter is None:
            return None
        return self.check_counter(title, counter, note.offset)

    def check_counter(self, title: bytes, counter: int,
                      offset: int | None = None) -> ReplayError | None:
        """None if ``counter`` is above the last accepted from ``title`` (remembered), else
        the ReplayError to count. For any authentic general-glo-ciphering frame."""
        last = self._last.get(title)
        if last is not None and counter <= last:
            return ReplayError(
                f"replayed push from system title {title.hex()}: invocation counter "
                f"{counter} not above {last}", offset)
        self._last[title] = counter
        return None


def _glo_parts(apdu: bytes, offset: int) -> tuple[bytes, int, bytes, bytes]:
    """general-glo-ciphering -> (system title, security control, counter, payload)."""
    r = Reader(apdu, offset)
    r.byte()  # 0xDB
    title = r.take(r.length())
    body = r.take(r.length())
    if len(title) != 8 or len(body) < 5:
        raise FrameError("bad general-glo-ciphering header", offset)
    if r.pos != len(apdu):
        raise FrameError(f"{len(apdu) - r.pos} bytes after the ciphered APDU", offset)
    return title, body[0], body[1:5], body[5:]


def ciphered_header(apdu: bytes, offset: int = 0) -> CipheredApdu:
    """What a general-glo-ciphering APDU shows in clear. Raises FrameError."""
    title, sc, counter, payload = _glo_parts(apdu, offset)
    return CipheredApdu(offset, title, sc, int.from_bytes(counter, "big"), len(payload))


def decrypt_glo(apdu: bytes, offset: int, key: bytes | None,
                auth_key: bytes | None) -> tuple[bytes, bytes]:
    """general-glo-ciphering -> (plaintext APDU, system title). Raises DecryptionError."""
    title, sc, counter, payload = _glo_parts(apdu, offset)
    if key is None:
        raise DecryptionError("encrypted APDU and no key configured", offset)
    iv = title + counter
    authenticated, encrypted = bool(sc & 0x10), bool(sc & 0x20)
    if sc & 0x80:
        raise DecryptionError("compressed APDUs are not supported", offset)
    if authenticated and auth_key is None:
        raise DecryptionError("authenticated APDU and no authentication key", offset)
    aad = bytes([sc]) + (auth_key or b"")
    try:
        if authenticated and encrypted:
            return _gcm_open(key, iv, payload[:-TAG_LEN], payload[-TAG_LEN:], aad), title
        if encrypted:  # GCM without a tag is CTR from counter block 2
            ctr = Cipher(algorithms.AES(key), modes.CTR(iv + b"\x00\x00\x00\x02")).decryptor()
            return ctr.update(payload) + ctr.finalize(), title
        if authenticated:
            plain, tag = payload[:-TAG_LEN], payload[-TAG_LEN:]
            _gcm_open(key, iv, b"", tag, aad + plain)
            return plain, title
    except InvalidTag:
        raise DecryptionError("authentication tag mismatch (wrong key?)", offset) from None
    except ValueError as exc:
        raise DecryptionError(f"cannot decrypt: {exc}", offset) from None
    return payload, title  # security control without protection


def _gcm_open(key: bytes, iv: bytes, ciphertext: bytes, tag: bytes, aad: bytes) -> bytes:
    """AES-GCM decryption with DLMS's 12-byte tag. Raises InvalidTag/ValueError."""
    if len(tag) != TAG_LEN:
        raise ValueError("APDU too short for its tag")
    dec = Cipher(algorithms.AES(key), modes.GCM(iv, tag, min_tag_length=TAG_LEN)).decryptor()
    dec.authenticate_additional_data(aad)
    return dec.update(ciphertext) + dec.finalize()


def encrypt_glo(plain: bytes, key: bytes, auth_key: bytes, system_title: bytes,
                counter: int, sc: int = 0x30) -> bytes:
    """The general-glo-ciphering APDU for ``plain`` (emulators, tests).

    ``sc`` 0x30 = authenticated and encrypted, 0x20 = encrypted only (no tag).
    """
    iv = system_title + counter.to_bytes(4, "big")
    enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    enc.authenticate_additional_data(bytes([sc]) + auth_key)
    payload = enc.update(plain) + enc.finalize()
    if sc & 0x10:  # authenticated: append the 12-byte tag
        payload += enc.tag[:TAG_LEN]
    body = bytes([sc]) + counter.to_bytes(4, "big") + payload
    return bytes([0xDB, 8]) + system_title + ber_length(len(body)) + body
