"""Value types with their own parsing rules in the site config (durations, sizes, URLs)."""

from __future__ import annotations

import ipaddress
import math
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


@dataclass(frozen=True)
class Range:
    """``Annotated[int, Range(1, 1000)]``: the validator keeps the value within [lo, hi]."""

    lo: float
    hi: float
    unit: str = ""  # how to show the bounds: "s" for durations, "B" for sizes

    def check(self, value: float) -> str | None:
        if math.isfinite(value) and self.lo <= value <= self.hi:
            return None
        return f"must be between {self.show(self.lo)} and {self.show(self.hi)}, got " \
               f"{self.show(value)}"

    def show(self, v: float) -> str:
        if self.unit == "s":
            for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
                if v >= n and v % n == 0:
                    return f"{v / n:g}{unit}"
            return f"{v * 1000:g}ms" if 0 < v < 1 else f"{v:g}s"
        if self.unit == "B":
            for unit, n in (("PiB", 1024**5), ("TiB", 1024**4), ("GiB", 1024**3),
                            ("MiB", 1024**2), ("KiB", 1024)):
                if v >= n and v % n == 0:
                    return f"{v / n:g}{unit}"
        return f"{v:g}"


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
            if isinstance(v, int) and abs(v) > 2**63:
                raise ValueError(f"a duration of {v} seconds is out of range")
            seconds = float(v)
        elif isinstance(v, str) and (m := _DURATION.match(v)):
            seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        else:
            raise ValueError(f"expected a duration (e.g. 1s, 250ms, 7d), got {v!r}")
        if not math.isfinite(seconds):
            raise ValueError(f"a duration must be a finite number, got {v!r}")
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
            n = float(m.group(1)) * _SIZE_UNITS[m.group(2)]
            if not math.isfinite(n):
                raise ValueError(f"size {v!r} is out of range")
            return cls(int(n))
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
        if not _valid_host(u.hostname):
            raise ValueError(f"bad broker URL {v!r}: the host {u.hostname!r} is not a host "
                             "name or IP address (letters, digits, '-' and '.'; no spaces)")
        if u.path not in ("", "/") or u.query or u.fragment or u.username or u.password:
            raise ValueError(f"bad broker URL {v!r}: only scheme://host:port is allowed "
                             "(credentials go in username/password_file)")
        if port is None:
            port = 8883 if u.scheme == "mqtts" else 1883
        if not 0 < port < 65536:
            raise ValueError(f"bad broker URL {v!r}: port out of range")
        return cls(u.scheme, u.hostname, port)


_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def _valid_host(host: str) -> bool:
    """A DNS name (ASCII labels; write an IDN in its xn-- form) or an IP address."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(p) for p in name.split("."))


class TopicPrefix(str):
    """The topic levels a channel publishes under, e.g. ``city/namwon/pi-0042/ot``.

    Every level is a valid MQTT topic level for publishing: no wildcard ``+`` or ``#``, no
    NUL, no empty level (no leading, trailing or double ``/``), and not starting with ``$``
    (reserved for broker topics such as ``$SYS``).
    """

    __config_name__ = "an MQTT topic prefix (e.g. city/site/node/ot)"
    MAX_BYTES = 1024  # MQTT allows 65535 per topic; the suffixes and brokers need room

    @classmethod
    def __config_parse__(cls, v: Any) -> TopicPrefix:
        if not isinstance(v, str) or not v:
            raise ValueError(f"expected an MQTT topic prefix like city/site/node/ot, got {v!r}")
        why = _topic_problem(v)
        if why:
            raise ValueError(f"topic prefix {v!r}: {why}")
        if len(v.encode("utf-8", "surrogatepass")) > cls.MAX_BYTES:
            raise ValueError(f"topic prefix is longer than {cls.MAX_BYTES} bytes")
        return cls(v)


def _topic_problem(v: str) -> str | None:
    if v.startswith("$"):
        return "must not start with '$' (reserved for broker topics such as $SYS)"
    for i, level in enumerate(v.split("/")):
        if level == "":
            return ("has an empty level (a leading, trailing or double '/'): write levels "
                    "separated by single '/'")
        if "+" in level or "#" in level:
            return f"level {i + 1} {level!r} has a wildcard ('+' or '#'): a topic to publish " \
                   "to cannot have one"
        if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000
               for c in level):
            return f"level {i + 1} has a control character or NUL"
    return None
