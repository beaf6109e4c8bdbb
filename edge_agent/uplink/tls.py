"""TLS and credentials of a channel's broker connection: the SSL context, secret files,
certificate expiry."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path
from typing import Any

from edge_agent.config.schema import ChannelConfig


def tls_context(cfg: ChannelConfig) -> ssl.SSLContext:
    """Server verification always; client certificate when given; TLS >= min_version."""
    ctx = ssl.create_default_context(cafile=str(cfg.tls.ca_file) if cfg.tls.ca_file else None)
    ctx.minimum_version = (ssl.TLSVersion.TLSv1_3 if cfg.tls.min_version == "1.3"
                           else ssl.TLSVersion.TLSv1_2)
    ctx.check_hostname = cfg.tls.check_hostname
    if cfg.tls.cert_file and cfg.tls.key_file:
        from edge_agent.security.keys import check_private

        check_private(cfg.tls.key_file)
        ctx.load_cert_chain(str(cfg.tls.cert_file), str(cfg.tls.key_file))
    return ctx


def read_secret(path: Path) -> str:
    from edge_agent.security.keys import check_private

    check_private(path)
    return path.read_text(encoding="utf-8").strip()


def check_secrets(cfg: ChannelConfig) -> None:
    """Every secret file this channel loads is owner-only (KeyFileError names the fix)."""
    from edge_agent.security.keys import check_private

    for path in (cfg.tls.key_file, cfg.password_file):
        if path is not None:
            check_private(path)


def cert_days_left(cfg: ChannelConfig, now: float) -> list[tuple[float, Path]]:
    """(days left, file) for the client certificate and the CA file, when configured."""
    from edge_agent.security.pki import days_left

    out: list[tuple[float, Path]] = []
    for path in (cfg.tls.cert_file, cfg.tls.ca_file):
        if path is None:
            continue
        try:
            out.append((days_left(path, now), path))
        except (OSError, ValueError):
            continue  # unreadable here: the TLS handshake reports it
    return out


class TrackingContext:
    """An SSLContext stand-in that remembers the socket it wrapped, so a failed handshake
    (untrusted server, refused client certificate) does not leak it."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._ctx = ctx
        self._last: ssl.SSLSocket | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def wrap_socket(self, sock: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._last = self._ctx.wrap_socket(sock, **kwargs)
        return self._last

    def close_last(self) -> None:
        if self._last is not None:
            with contextlib.suppress(OSError):
                self._last.close()
            self._last = None
