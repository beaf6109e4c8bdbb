"""The node's signing key: who sealed a payload (Ed25519, one key per node).

HPKE base mode proves nothing about the sender: anyone holding the platform's public key
can seal a message that opens cleanly. So every sealed payload also carries, inside the
seal, an Ed25519 signature by the node's own key over the clear envelope fields and the
SenML (see ``edge_agent.security.seal``). The platform enrols each node's public key and the
reference decryptor (``edge-agent unseal --nodes``) rejects a payload that the node named
in it did not sign.

    <state_dir>/keys/node-sign.key   Ed25519 private key, PKCS#8 PEM, mode 0600
                                     (or $CREDENTIALS_DIRECTORY/node-sign.key)
    <state_dir>/keys/node-sign.pub   its enrolment record, mode 0644 (see ``enrolment``)

An enrolment record is the public key in standard PEM, preceded by ``site:`` and ``node:``
lines naming the node it speaks for (``#`` lines are comments). Records may be
concatenated into one file, or kept one per file in a directory (``*.pub``).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from edge_agent.core.errors import EdgeAgentError
from edge_agent.core.fsutil import atomic_write

SIGNING_KEY = "node-sign.key"
ENROLMENT = "node-sign.pub"
KEY_HINT = "create it with 'edge-agent keys init'"
_BEGIN, _END = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"


class NodeKeyError(EdgeAgentError, ValueError):
    """A node key or enrolment file is missing, malformed or names no node."""


def signing_key_path(state_dir: Path) -> Path:
    """The systemd credential if one is passed, else ``<state_dir>/keys/node-sign.key``."""
    cred = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred and (Path(cred) / SIGNING_KEY).is_file():
        return Path(cred) / SIGNING_KEY
    return state_dir / "keys" / SIGNING_KEY


def raw_public(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: ed25519.Ed25519PublicKey) -> str:
    """``SHA256:`` and the unpadded base64 of SHA-256 over the raw public key (as ssh)."""
    digest = hashlib.sha256(raw_public(key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def enrolment(site: str, node: str, key: ed25519.Ed25519PublicKey) -> str:
    """The text the platform enrols: which node this public key speaks for."""
    pem = key.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return (f"# edge-agent node signing key (Ed25519): enrol on the platform\n"
            f"# fingerprint: {fingerprint(key)}\n"
            f"site: {site}\nnode: {node}\n{pem}")


def create(path: Path) -> ed25519.Ed25519PrivateKey:
    """A new private key file, mode 0600 (parent 0700). Never overwrites."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ed25519.Ed25519PrivateKey.generate()
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    try:
        atomic_write(path, data, 0o600, exclusive=True)  # whole and synced, or absent
    except FileExistsError:
        raise NodeKeyError(f"{path}: already exists; refusing to overwrite a key") from None
    return key


def load(path: Path) -> ed25519.Ed25519PrivateKey:
    """The node's private signing key: owner-only PEM (PKCS#8) Ed25519."""
    from edge_agent.security.keys import check_private

    check_private(path, missing_hint=KEY_HINT)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise NodeKeyError(f"{path}: not a PEM private key: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise NodeKeyError(f"{path}: not an Ed25519 private key")
    return key


def load_or_create(state_dir: Path) -> tuple[ed25519.Ed25519PrivateKey, Path, bool]:
    """(key, path, created). Creates ``<state_dir>/keys/node-sign.key`` when absent (never
    a credential) and writes its enrolment record next to it."""
    path = signing_key_path(state_dir)
    if path.exists() or path.parent != state_dir / "keys":
        return load(path), path, False
    return create(path), path, True


def write_enrolment(path: Path, text: str) -> None:
    """Write (or replace) the public enrolment record, mode 0644."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, text.encode("ascii"), 0o644)


class NodeKeys:
    """The enrolled node public keys, by (site, node). A node may have more than one (a key
    being replaced): a signature by any of them is accepted."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], list[ed25519.Ed25519PublicKey]] = {}

    def add(self, site: str, node: str, key: ed25519.Ed25519PublicKey) -> None:
        keys = self._keys.setdefault((site, node), [])
        if raw_public(key) not in {raw_public(k) for k in keys}:
            keys.append(key)

    def get(self, site: str, node: str) -> list[ed25519.Ed25519PublicKey]:
        return list(self._keys.get((site, node), ()))

    def verify(self, site: str, node: str, signature: bytes, data: bytes) -> str | None:
        """The fingerprint of the enrolled key that made ``signature``, or None."""
        for key in self._keys.get((site, node), ()):
            try:
                key.verify(signature, data)
            except InvalidSignature:
                continue
            return fingerprint(key)
        return None

    def __len__(self) -> int:
        return sum(len(v) for v in self._keys.values())

    def nodes(self) -> list[tuple[str, str]]:
        return sorted(self._keys)

    @classmethod
    def load(cls, path: Path) -> NodeKeys:
        """Enrolment records from a file, or from every ``*.pub`` file of a directory."""
        keys = cls()
        files: Iterable[Path] = sorted(path.glob("*.pub")) if path.is_dir() else [path]
        for f in files:
            keys._parse(f, f.read_text(encoding="utf-8"))
        if not len(keys):
            raise NodeKeyError(f"{path}: no enrolled node keys (expected 'site:' and 'node:' "
                               f"lines before each PEM public key)")
        return keys

    def _parse(self, path: Path, text: str) -> None:
        site = node = None
        pem: list[str] | None = None
        start = 0
        for n, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if pem is not None:
                pem.append(s)
                if s == _END:
                    self._record(path, start, site, node, "\n".join(pem) + "\n")
                    site = node = None
                    pem = None
            elif not s or s.startswith("#"):
                continue
            elif s == _BEGIN:
                pem, start = [s], n
            elif s.startswith("site:"):
                site = s[5:].strip()
            elif s.startswith("node:"):
                node = s[5:].strip()
            else:
                raise NodeKeyError(f"{path}:{n}: expected 'site:', 'node:' or a PEM public "
                                   f"key, got {s[:40]!r}")
        if pem is not None:
            raise NodeKeyError(f"{path}:{start}: PEM public key without its END line")

    def _record(self, path: Path, line: int, site: str | None, node: str | None,
                pem: str) -> None:
        if not site or not node:
            raise NodeKeyError(f"{path}:{line}: public key without 'site:' and 'node:' lines "
                               f"(which node does it speak for?)")
        try:
            key = serialization.load_pem_public_key(pem.encode("ascii"))
        except ValueError as exc:
            raise NodeKeyError(f"{path}:{line}: not a PEM public key: {exc}") from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise NodeKeyError(f"{path}:{line}: not an Ed25519 public key")
        self.add(site, node, key)
