"""The checks that need no hardware, no network and no clock: the site file and the files
it names (present, parseable, owner-only where secret).

One rule, for installers: ``edge-agent check-config FILE`` runs these (anywhere the
files are, no root needed for most); ``edge-agent doctor`` runs them too and adds the
machine (state dir, disk, I2C buses, serial ports, GPIO), the network (brokers, TLS
handshakes), time (clock sync, certificate validity) and the service.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.config.schema import SiteConfig
from edge_agent.core.errors import KeyFileError

if TYPE_CHECKING:
    from edge_agent.devices.sensor_type import SensorType

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"


def _sensor_type(name: str) -> SensorType | None:
    """What the device declares about itself: its bus, default I2C address, whether it talks
    unasked on its serial port (a short read then shows it is wired), its key loader."""
    from edge_agent.devices.registry import SENSOR_TYPES

    return SENSOR_TYPES.get(name)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass, warn, fail, skip
    detail: str
    fix: str = ""
    where: str = ""  # the config key that names the file (check-config locates its line)


# ---------------------------------------------------------------------- secrets

def _private(name: str, path: Path, missing_fix: str, missing_status: str = FAIL) -> Check:
    from edge_agent.security.keys import check_private

    if not path.exists():
        return Check(name, missing_status, f"{path}: not found", missing_fix)
    try:
        check_private(path)
    except KeyFileError as exc:
        return Check(name, FAIL, str(exc), f"chmod 600 {path}; chown edge-agent: {path}")
    if not os.access(path, os.R_OK):
        return Check(name, FAIL, f"{path}: not readable by this user",
                     f"run doctor as root or the edge-agent user; chown edge-agent: {path}")
    return Check(name, PASS, f"{path}: mode {stat.S_IMODE(path.stat().st_mode):04o}")


def check_keys(cfg: SiteConfig) -> Iterator[Check]:
    from edge_agent.daemon.runtime import credential_key

    for ch, cc in cfg.channels.items():
        cred = credential_key(ch)
        if cred is not None:
            yield _private(f"key {ch.value}", cred, "")
        elif cc.key_file is not None:
            yield replace(_private(f"key {ch.value}", cfg.key_file(ch),
                                   f"create it: edge-agent keys init -c {cfg.source or 'FILE'} "
                                   f"(or restore it from the site's backup)"),
                          where=f"channels.{ch.value}.key_file")
        else:
            yield _private(f"key {ch.value}", cfg.key_file(ch),
                           "the agent creates it on first start; back it up afterwards "
                           "(without it buffered data is unreadable)", missing_status=WARN)
        for what, p, key in (("tls key", cc.tls.key_file, "tls.key_file"),
                             ("password", cc.password_file, "password_file")):
            if p is not None:
                yield replace(_private(f"{what} {ch.value}", p, f"install the file at {p}"),
                              where=f"channels.{ch.value}.{key}")


def check_sensor_keys(cfg: SiteConfig) -> Iterator[Check]:
    """Each enabled sensor's ``key_file`` (DLMS push keys): present, owner-only, parses."""
    for i, sc in enumerate(cfg.sensors):
        for c in _sensor_key(sc):
            yield replace(c, where=f"sensors[{i}].key_file")


def _sensor_key(sc: Any) -> Iterator[Check]:
    """One sensor's key file: present, owner-only, parses with its type's loader."""
    path = _opt(sc, "key_file")
    if not sc.enabled or path is None:
        return
    path = Path(path)
    name = f"sensor key {sc.id}"
    if not path.exists():
        yield Check(name, FAIL, f"{path}: not found",
                    f"install the meter's keys at {path} (lines EK=<32 hex>, AK=<32 hex>, "
                    "mode 600) or remove key_file from the sensor")
        return
    check = _private(name, path, "")
    if check.status != PASS:
        yield check
        return
    stype = _sensor_type(sc.type)
    load_keys = stype.decode.load_keys if stype and stype.decode else None
    if load_keys is None:
        yield check
        return
    try:
        _, ak = load_keys(path)
    except (KeyFileError, OSError) as exc:
        yield Check(name, FAIL, str(exc),
                    f"fix {path}: one EK=<32 hex digits> line and optionally one "
                    "AK=<32 hex digits> line (from the grid operator)")
        return
    yield Check(name, PASS, f"{check.detail}, EK{' + AK' if ak is not None else ''}")


def _opt(sc: Any, name: str) -> Any:
    return getattr(sc.options, name, None)



# ---------------------------------------------------------------------- PEM files

def _pem_check(name: str, path: Path, kind: str, fix: str) -> Check:
    """A PEM file that exists: not empty, holds a ``kind`` block (CERTIFICATE, PUBLIC KEY,
    PRIVATE KEY). Parsing the contents is the uplink's (and doctor's) job."""
    try:
        data = path.read_bytes()
    except PermissionError:
        return Check(name, FAIL, f"{path}: not readable by this user",
                     f"run as root or the edge-agent user; chown edge-agent: {path}")
    except OSError as exc:
        return Check(name, FAIL, f"{path}: {exc.strerror or exc}", fix)
    if not data.strip():
        return Check(name, FAIL, f"{path}: the file is empty", fix)
    if b"-----BEGIN " not in data:
        return Check(name, FAIL, f"{path}: not a PEM file (no -----BEGIN line)", fix)
    if f"{kind}-----".encode() not in data:
        return Check(name, FAIL, f"{path}: holds no {kind} (wrong file?)", fix)
    return Check(name, PASS, f"{path}: PEM {kind.lower()}")


def check_pem_files(cfg: SiteConfig) -> Iterator[Check]:
    for ch, cc in cfg.channels.items():
        for what, p, kind, key in (("ca", cc.tls.ca_file, "CERTIFICATE", "ca_file"),
                                   ("client cert", cc.tls.cert_file, "CERTIFICATE", "cert_file"),
                                   ("tls key", cc.tls.key_file, "PRIVATE KEY", "key_file")):
            if p is not None and p.exists():
                yield replace(_pem_check(f"{what} {ch.value} file", p, kind,
                                         f"install the PEM file the platform team issued at "
                                         f"{p}"), where=f"channels.{ch.value}.tls.{key}")
        seal = cc.seal
        if seal is not None and seal.enabled and seal.public_key_file is not None \
                and seal.public_key_file.exists():
            p = seal.public_key_file
            yield replace(_pem_check(f"seal key {ch.value}", p, "PUBLIC KEY",
                                     f"install the platform's public key at {p} (edge-agent "
                                     "keys platform makes a pair; only the .pub goes on the "
                                     "node)"), where=f"channels.{ch.value}.seal.public_key_file")


def static_checks(cfg: SiteConfig) -> list[Check]:
    """Every check of the files the site file names (check-config and doctor)."""
    return [*check_keys(cfg), *check_sensor_keys(cfg), *check_pem_files(cfg)]
