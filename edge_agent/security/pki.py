"""Small X.509 helpers: a throwaway PKI (tests, demo, rigs) and certificate expiry checks.

    ca = make_ca(dir, "ot-ca")                          # dir/ot-ca.crt, dir/ot-ca.key
    srv = make_cert(ca, dir, "broker", server=True)     # SAN 127.0.0.1, ::1, localhost
    cli = make_cert(ca, dir, "pi-0042-ot")              # client cert, CN = MQTT identity
    days_left(cli.cert)                                 # float, negative once expired

Private keys are written owner-only (0600), as every secret file the agent loads must be.
A site's real PKI belongs to the city; nothing here is meant to issue production certs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_agent.core.fsutil import atomic_write

DAY = 86400.0


@dataclass(frozen=True)
class Issued:
    """A certificate and its key on disk (the CA keeps its key object to sign with)."""

    name: str
    cert: Path
    key: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, 0o600)


def _save(directory: Path, name: str, cert: x509.Certificate,
          key: ec.EllipticCurvePrivateKey) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cpath, kpath = directory / f"{name}.crt", directory / f"{name}.key"
    atomic_write(cpath, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write_private(kpath, key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return Issued(name, cpath, kpath, cert, key)


def _validity(days: float, not_before: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    start = not_before or (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    return start, start + dt.timedelta(days=days)


def make_ca(directory: Path, name: str, days: float = 3650,
            not_before: dt.datetime | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start, end = _validity(days, not_before)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return _save(directory, name, cert, key)


def make_cert(ca: Issued, directory: Path, name: str, *, server: bool = False,
              hosts: tuple[str, ...] = ("127.0.0.1", "::1", "localhost"), days: float = 365,
              not_before: dt.datetime | None = None) -> Issued:
    """A leaf certificate signed by ``ca``. Client certs carry CN = ``name`` (the identity
    a broker with ``use_identity_as_username`` sees); server certs carry ``hosts`` as SAN."""
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(days, not_before)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
         .issuer_name(ca.certificate.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(start)
         .not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage(
             [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
             critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             ca.private_key.public_key()), critical=False))
    if server:
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = b.sign(ca.private_key, hashes.SHA256())
    return _save(directory, name, cert, key)


# ------------------------------------------------------------------ expiry


def not_after(path: Path) -> dt.datetime:
    """The expiry of the first certificate in a PEM file."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.not_valid_after_utc


def days_left(path: Path, now: float | None = None) -> float:
    """Days until the certificate in ``path`` expires (negative once it has)."""
    ts = now if now is not None else dt.datetime.now(dt.UTC).timestamp()
    return (not_after(path).timestamp() - ts) / DAY
