"""Value types with their own parsing rules in the site config (durations, sizes, URLs)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
                   "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "kB": 1000, "KB": 1000, "KiB": 1024, "MB": 1000**2,
               "MiB": 1024**2, "GB": 1000**3, "GiB": 1024**3}


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_RULE = "must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"


class Token(str):
    """A name that goes into MQTT topics and SenML names (site, node, sensor id).

    1-64 characters of ``[A-Za-z0-9_.-]``, starting with a letter or digit: no ``/``, ``+``,
    ``#``, spaces or other characters that would change a topic's meaning.
    """

    __config_name__ = "a name (letters, digits, '-', '_' or '.')"

    @classmethod
    def __config_parse__(cls, v: Any) -> Token:
        if v is None or isinstance(v, bool):
            raise ValueError(f"{NAME_RULE} (it goes into MQTT topics), got {v!r}")
        if not isinstance(v, str):  # e.g. 0042 or 1e3: YAML reads a number, say it in quotes
            raise ValueError(f"{NAME_RULE} (it goes into MQTT topics): write it in quotes, "
                             f"got the number {v!r}")
        if not _NAME.fullmatch(v):
            raise ValueError(f"{NAME_RULE} (it goes into MQTT topics): {v!r}")
        return cls(v)


class Duration(float):
    """Seconds; written as a number or ``250ms``, ``1s``, ``5m``, ``2h``, ``7d``."""

    __config_name__ = "a duration (e.g. 1s, 250ms, 7d)"

    @classmethod
    def __config_parse__(cls, v: Any) -> Duration:
        if isinstance(v, bool):
            raise ValueError(f"expected a duration (e.g. 1s, 250ms, 7d), got {v!r}")
        if isinstance(v, int | float):
            seconds = float(v)
        elif isinstance(v, str) and (m := _DURATION.match(v)):
            seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        else:
            raise ValueError(f"expected a duration (e.g. 1s, 250ms, 7d), got {v!r}")
        if seconds < 0:
            raise ValueError("a duration must not be negative")
        return cls(seconds)


class ByteSize(int):
    """Bytes; written as a number or ``512KiB``, ``64MiB``, ``1GB``."""

    __config_name__ = "a size (e.g. 64MiB)"

    @classmethod
    def __config_parse__(cls, v: Any) -> ByteSize:
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return cls(v)
        if isinstance(v, str) and (m := _SIZE.match(v)):
            return cls(int(float(m.group(1)) * _SIZE_UNITS[m.group(2)]))
        raise ValueError(f"expected a size (e.g. 64MiB, 512KiB), got {v!r}")


@dataclass(frozen=True)
class BrokerURL:
    """``mqtt://host[:port]`` or ``mqtts://host[:port]`` (default ports 1883 / 8883)."""

    scheme: str
    host: str
    port: int

    __config_name__ = "a broker URL (mqtts://host:port)"

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @classmethod
    def __config_parse__(cls, v: Any) -> BrokerURL:
        return cls.parse(v)

    @classmethod
    def parse(cls, v: Any) -> BrokerURL:
        if not isinstance(v, str):
            raise ValueError(f"expected a broker URL like mqtts://host:8883, got {v!r}")
        try:
            u = urlsplit(v.strip())
            port = u.port
        except ValueError as exc:
            raise ValueError(f"bad broker URL {v!r}: {exc}") from None
        if u.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"bad broker URL {v!r}: scheme must be mqtts:// (or mqtt://)")
        if not u.hostname:
            raise ValueError(f"bad broker URL {v!r}: no host")
        if u.path not in ("", "/") or u.query or u.fragment or u.username or u.password:
            raise ValueError(f"bad broker URL {v!r}: only scheme://host:port is allowed "
                             "(credentials go in username/password_file)")
        if port is None:
            port = 8883 if u.scheme == "mqtts" else 1883
        if not 0 < port < 65536:
            raise ValueError(f"bad broker URL {v!r}: port out of range")
        return cls(u.scheme, u.hostname, port)
