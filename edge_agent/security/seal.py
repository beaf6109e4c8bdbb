"""End-to-end sealing of data payloads (HPKE, RFC 9180) to the welfare platform's key,
signed by the node (Ed25519) inside the seal.

The broker (and anyone on the path after TLS ends) sees only the envelope metadata:

    {"site": "namwon-01", "node": "pi-0042", "channel": "it", "lane": "normal",
     "seq": [17, 516], "store": "9f2c4e1a7b3d5c60", "suite": "x25519+ed25519",
     "sealed": "<base64 of enc || ciphertext>"}

HPKE base mode alone authenticates nothing about the sender: anyone holding the platform's
public key (it is public) can seal a message that opens cleanly. ``cryptography``'s HPKE
offers base mode only (no auth mode), so the sender is authenticated by a signature inside
the seal. The sealed plaintext is

    Ed25519 signature (64 bytes) || SenML JSON

signed by the node's own key (``edge_agent.security.nodekey``, created by ``edge-agent keys init``)
over ``b"edge-agent seal v2 signature\0" + context + b"\0" + SenML``, where ``context`` is
the canonical JSON of site, node, channel, lane, seq, store (the node's store id, when the
message carries one) and suite. The same context is the HPKE ``info`` (``b"edge-agent seal
v2\0" + context``), so a broker that rewrites, adds or removes any clear field (site, node,
channel, lane, sequence range, store id, suite) makes the message fail to open, and a
payload opens as genuine only if the node it names signed exactly this content: a sequence
range cannot be moved from one store to another (a replay of a wiped store's numbers under
the new store's id). The
platform verifies with the node public keys it enrolled (``edge-agent unseal --nodes``).

Suites: the ``suite`` field names the KEM and the signature, ``<kem>+ed25519``:

    x25519+ed25519           DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305
    mlkem768-x25519+ed25519  ML-KEM-768 + X25519 hybrid KEM (post-quantum), HKDF-SHA256,
                             ChaCha20-Poly1305

ChaCha20-Poly1305 because the Pi 3/4 CPUs have no AES instructions. A suite without
``+ed25519`` (``x25519``, ``mlkem768-x25519``) is the earlier unsigned format (no ``site``,
``info`` = ``b"edge-agent seal v1\0"`` + node, channel, lane, seq, suite): nodes no longer
write it, and ``open_sealed`` refuses it unless asked to read an archive
(``allow_unsigned``), because anyone could have made it.

Key files are PEM. An X25519 key uses the standard PKCS#8 / SubjectPublicKeyInfo PEM; a
hybrid key has no standard PEM form yet, so it is written under our own labels
(``EDGE-AGENT MLKEM768-X25519 PUBLIC KEY``: ML-KEM-768 encapsulation key || X25519 public
key; ``... PRIVATE KEY``: the 64-byte ML-KEM seed || the X25519 private key).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

from edge_agent.core.errors import EdgeAgentError
from edge_agent.core.fsutil import atomic_write
from edge_agent.security.nodekey import NodeKeys

SuiteName = Literal["x25519", "mlkem768-x25519"]  # the KEM (the config's seal.suite)
SUITES: tuple[SuiteName, ...] = ("x25519", "mlkem768-x25519")
SIGNED = "+ed25519"  # suffix of the envelope's suite: signed by the node inside the seal
INFO_PREFIX = b"edge-agent seal v1\x00"  # unsigned (read only)
INFO_PREFIX_V2 = b"edge-agent seal v2\x00"
SIG_PREFIX = b"edge-agent seal v2 signature\x00"
SIG_BYTES = 64
HEAD_FIELDS = ("node", "channel", "lane", "seq")  # v1
# "store" (the node's store id) when the message carries it: a message without one (nodes
# before that field) has the same context as before
HEAD_FIELDS_V2 = ("site", "node", "channel", "lane", "seq", "store")
_HYBRID_PUB = "EDGE-AGENT MLKEM768-X25519 PUBLIC KEY"
_HYBRID_PRIV = "EDGE-AGENT MLKEM768-X25519 PRIVATE KEY"
_MLKEM768_PUB = 1184
_MLKEM_SEED = 64
_X25519 = 32

PublicKey = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
PrivateKey = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


class SealError(EdgeAgentError, ValueError):
    """A sealed payload could not be opened, or a key file is not a sealing key."""


def suite(name: SuiteName) -> hpke.Suite:
    kem = hpke.KEM.X25519 if name == "x25519" else hpke.KEM.MLKEM768_X25519
    return hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def _canonical(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode()


def context(head: Mapping[str, Any], suite_name: str) -> bytes:
    """The clear envelope fields of a signed message (site, node, channel, lane, seq, store
    when present, suite), canonical: bound into the HPKE key schedule and covered by the
    signature."""
    fields = {k: head[k] for k in HEAD_FIELDS_V2 if k in head}
    fields["suite"] = suite_name
    return _canonical(fields)


def info(head: Mapping[str, Any], suite_name: str) -> bytes:
    """The context bound into the key schedule: the clear envelope fields, canonical."""
    if suite_name.endswith(SIGNED):
        return INFO_PREFIX_V2 + context(head, suite_name)
    fields = {k: head[k] for k in HEAD_FIELDS if k in head}
    fields["suite"] = suite_name
    return INFO_PREFIX + _canonical(fields)


def signed_data(ctx: bytes, senml: bytes) -> bytes:
    """What the node signs: the context and the SenML, domain-separated."""
    return SIG_PREFIX + ctx + b"\x00" + senml


class Sealer:
    """Seals payloads to one public key, signed by this node's key. Thread-safe (no state
    besides the keys)."""

    def __init__(self, public_key: PublicKey, signing_key: ed25519.Ed25519PrivateKey,
                 site: str, suite_name: SuiteName = "x25519") -> None:
        if suite_name not in SUITES:
            raise SealError(f"unknown suite {suite_name!r} (known: {', '.join(SUITES)})")
        expect = x25519.X25519PublicKey if suite_name == "x25519" \
            else hpke.MLKEM768X25519PublicKey
        if not isinstance(public_key, expect):
            raise SealError(f"the public key does not fit suite {suite_name!r}")
        if not isinstance(signing_key, ed25519.Ed25519PrivateKey):
            raise SealError("the node signing key is not an Ed25519 private key")
        self.public_key = public_key
        self.signing_key = signing_key
        self.site = site
        self.suite_name = suite_name
        self.envelope_suite = suite_name + SIGNED
        self._suite = suite(suite_name)

    @classmethod
    def from_file(cls, path: Path, signing_key: ed25519.Ed25519PrivateKey, site: str,
                  suite_name: SuiteName = "x25519") -> Sealer:
        return cls(load_public_key(path), signing_key, site, suite_name)

    def seal(self, head: Mapping[str, Any], senml: bytes) -> bytes:
        """The complete data message: ``head`` (node, channel, lane, seq, store) and this
        node's site in clear and bound, ``senml`` (JSON bytes) signed and sealed."""
        msg: dict[str, Any] = {"site": self.site}
        msg.update((k, head[k]) for k in HEAD_FIELDS_V2 if k in head and k != "site")
        ctx = context(msg, self.envelope_suite)
        signature = self.signing_key.sign(signed_data(ctx, senml))
        ct = self._suite.encrypt(signature + senml, self.public_key,
                                 info=INFO_PREFIX_V2 + ctx)
        msg["suite"] = self.envelope_suite
        msg["sealed"] = base64.b64encode(ct).decode("ascii")
        return json.dumps(msg, separators=(",", ":")).encode()


def _kem_of(name: Any) -> SuiteName | None:
    if not isinstance(name, str):
        return None
    kem = name[:-len(SIGNED)] if name.endswith(SIGNED) else name
    return next((known for known in SUITES if known == kem), None)


def open_sealed(payload: bytes | str | Mapping[str, Any], private_key: PrivateKey,
                node_keys: NodeKeys | None = None, *,
                allow_unsigned: bool = False) -> dict[str, Any]:
    """Open a sealed data message: the envelope with ``senml`` (a list) for ``sealed`` and
    ``signer`` (the fingerprint of the node key that signed it; None for an unsigned one).

    This is the reference decryptor for the platform. Raises SealError when the payload is
    not a sealed message, the suite does not match the key, authentication fails (wrong
    key, or any clear field or ciphertext byte was changed), the node it names is not
    enrolled in ``node_keys`` or did not sign it (a forgery), or it is unsigned and
    ``allow_unsigned`` is false.
    """
    try:
        msg = dict(payload) if isinstance(payload, Mapping) else json.loads(payload)
    except ValueError as exc:
        raise SealError(f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise SealError(f"not a sealed message (a JSON {_json_type(msg)}, not an object)")
    if "sealed" not in msg:
        raise SealError("not a sealed message (no 'sealed' field)")
    if not isinstance(msg["sealed"], str):
        raise SealError(f"'sealed' is a JSON {_json_type(msg['sealed'])}, "
                        "expected a base64 string")
    name = msg.get("suite", "x25519")
    kem = _kem_of(name)
    if kem is None:
        raise SealError(f"unknown suite {name!r}")
    try:
        ct = base64.b64decode(msg["sealed"], validate=True)
    except ValueError:
        raise SealError("'sealed' is not valid base64") from None
    signed = name.endswith(SIGNED)
    where = f"seq {msg.get('seq')}"
    if not signed and not allow_unsigned:
        raise SealError(f"cannot open {where}: suite {name!r} is unsigned (no sender "
                        "authentication: anyone holding the platform's public key can make "
                        "one); refused (allow_unsigned / --allow-unsigned reads an archive)")
    key_suite = suite_of(private_key)
    if kem != key_suite:
        raise SealError(f"message sealed with suite {name!r}, key is for {key_suite!r}")
    site, node = msg.get("site"), msg.get("node")
    if signed:
        if not isinstance(site, str) or not isinstance(node, str):
            raise SealError(f"cannot open {where}: 'site' and 'node' must be strings "
                            "(they name the signer)")
        if node_keys is None:
            raise SealError(f"cannot open {where}: no enrolled node keys to check the sender "
                            "with (give them: --nodes FILE|DIR)")
        if not node_keys.get(site, node):
            raise SealError(f"cannot open {where}: node {site}/{node} is not enrolled "
                            "(no public key for it)")
    try:
        pt = suite(kem).decrypt(ct, private_key, info=info(msg, name))
    except (ValueError, InvalidTag) as exc:
        raise SealError(f"cannot open {where}: authentication failed "
                        f"({type(exc).__name__})") from None
    signer = None
    if node_keys is not None and signed:
        signature, pt = pt[:SIG_BYTES], pt[SIG_BYTES:]
        signer = node_keys.verify(str(site), str(node), signature,
                                  signed_data(context(msg, name), pt)) \
            if len(signature) == SIG_BYTES else None
        if signer is None:
            raise SealError(f"cannot open {where}: FORGED or altered: the signature inside "
                            f"the seal is not by node {site}/{node}'s enrolled key")
    out = {k: v for k, v in msg.items() if k != "sealed"}
    try:
        out["senml"] = json.loads(pt)
    except ValueError as exc:
        raise SealError(f"cannot open {where}: the sealed SenML is not JSON: {exc}") from None
    out["signer"] = signer
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else type(value).__name__


# ------------------------------------------------------------------ key files


@dataclass(frozen=True)
class KeyPair:
    suite: SuiteName
    private_key: PrivateKey
    public_key: PublicKey


def generate(suite_name: SuiteName = "x25519") -> KeyPair:
    if suite_name == "x25519":
        xk = x25519.X25519PrivateKey.generate()
        return KeyPair(suite_name, xk, xk.public_key())
    m = mlkem.MLKEM768PrivateKey.generate()
    x = x25519.X25519PrivateKey.generate()
    priv = hpke.MLKEM768X25519PrivateKey(m, x)
    return KeyPair(suite_name, priv, hpke.MLKEM768X25519PublicKey(m.public_key(),
                                                                  x.public_key()))


def _pem(label: str, data: bytes) -> bytes:
    b64 = base64.encodebytes(data).decode("ascii").replace("\n", "")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"
            ).encode("ascii")


def _unpem(text: bytes, label: str) -> bytes | None:
    begin, end = f"-----BEGIN {label}-----".encode(), f"-----END {label}-----".encode()
    if begin not in text:
        return None
    body = text.split(begin, 1)[1].split(end, 1)[0]
    return base64.b64decode(b"".join(body.split()))


def generate_files(suite_name: SuiteName, private_path: Path, public_path: Path) -> KeyPair:
    """Create a key pair and its two PEM files (private 0600, public 0644)."""
    if suite_name == "x25519":
        kp = generate("x25519")
        xk = cast(x25519.X25519PrivateKey, kp.private_key)
        _write_new(private_path, xk.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()), 0o600)
        _write_new(public_path, xk.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
        return kp
    m = mlkem.MLKEM768PrivateKey.generate()
    x = x25519.X25519PrivateKey.generate()
    xraw = x.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                           serialization.NoEncryption())
    xpub = x.public_key().public_bytes(serialization.Encoding.Raw,
                                       serialization.PublicFormat.Raw)
    _write_new(private_path, _pem(_HYBRID_PRIV, m.private_bytes_raw() + xraw), 0o600)
    _write_new(public_path, _pem(_HYBRID_PUB, m.public_key().public_bytes_raw() + xpub), 0o644)
    return KeyPair(suite_name, hpke.MLKEM768X25519PrivateKey(m, x),
                   hpke.MLKEM768X25519PublicKey(m.public_key(), x.public_key()))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, data, mode, exclusive=True)  # whole or absent, never a half key


def load_public_key(path: Path) -> PublicKey:
    data = path.read_bytes()
    raw = _unpem(data, _HYBRID_PUB)
    if raw is not None:
        if len(raw) != _MLKEM768_PUB + _X25519:
            raise SealError(f"{path}: bad ML-KEM-768/X25519 public key length")
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM768_PUB]),
            x25519.X25519PublicKey.from_public_bytes(raw[_MLKEM768_PUB:]))
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SealError(f"{path}: not a PEM public key: {exc}") from None
    if not isinstance(key, x25519.X25519PublicKey):
        raise SealError(f"{path}: not an X25519 or ML-KEM-768/X25519 public key")
    return key


PLATFORM_KEY_HINT = "create the pair with 'edge-agent keys platform --out DIR'"


def _is_public_pem(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"PUBLIC KEY-----" in head and b"PRIVATE KEY-----" not in head


def _public_given(path: Path) -> SealError:
    private = path.with_suffix(".key") if path.suffix == ".pub" else None
    hint = f" (probably {private})" if private is not None and private.exists() else ""
    return SealError(f"{path}: this is a public key; give the private key{hint}")


def load_private_key(path: Path) -> PrivateKey:
    """A private sealing key file: owner-only, PEM, X25519 or ML-KEM-768/X25519."""
    from edge_agent.core.errors import KeyFileError
    from edge_agent.security.keys import check_private

    try:
        check_private(path, missing_hint=PLATFORM_KEY_HINT)
    except KeyFileError:
        if path.is_file() and _is_public_pem(path):
            raise _public_given(path) from None
        raise
    data = path.read_bytes()
    if _is_public_pem(path):
        raise _public_given(path)
    raw = _unpem(data, _HYBRID_PRIV)
    if raw is not None:
        if len(raw) != _MLKEM_SEED + _X25519:
            raise SealError(f"{path}: bad ML-KEM-768/X25519 private key length")
        return hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:_MLKEM_SEED]),
            x25519.X25519PrivateKey.from_private_bytes(raw[_MLKEM_SEED:]))
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SealError(f"{path}: not a PEM private key: {exc}") from None
    if not isinstance(key, x25519.X25519PrivateKey):
        raise SealError(f"{path}: not an X25519 or ML-KEM-768/X25519 private key")
    return key


def suite_of(key: PublicKey | PrivateKey) -> SuiteName:
    if isinstance(key, x25519.X25519PublicKey | x25519.X25519PrivateKey):
        return "x25519"
    return "mlkem768-x25519"
