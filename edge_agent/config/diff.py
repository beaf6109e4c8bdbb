"""What changed between two site configurations, in words for the log (SIGHUP reload).

    changes(old, new) -> ["channels.ot.reconnect_max: 30s -> 10s",
                          "sensors: added door-front", "sensors.climate: interval 5s -> 10s"]

Resident identifiers (``subject``) are never shown, only that they changed.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from edge_agent.config.schema import SensorConfig, SiteConfig

SECRET_KEYS = frozenset({"subject"})  # resident identifiers: changed, never shown
SKIP = frozenset({"source", "warnings", "line", "sensors", "welfare"})
MAX_LINES = 40


def _show(v: Any) -> str:
    if isinstance(v, enum.Enum):
        return v.name.lower()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if v is None:
        return "none"
    text = str(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _walk(path: str, a: Any, b: Any, out: list[str]) -> None:
    if a == b:
        return
    leaf = path.rsplit(".", 1)[-1]
    if leaf in SECRET_KEYS:
        out.append(f"{path}: changed")
        return
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b) and type(a) is type(b):
        for f in dataclasses.fields(a):
            if f.name in SKIP:
                continue
            sub = f"{path}.{f.name}" if path else f.name
            _walk(sub, getattr(a, f.name), getattr(b, f.name), out)
        return
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in sorted({*a, *b}, key=str):
            name = k.value if isinstance(k, enum.Enum) else str(k)
            sub = f"{path}.{name}" if path else name
            if k not in a:
                out.append(f"{sub}: added")
            elif k not in b:
                out.append(f"{sub}: removed")
            else:
                _walk(sub, a[k], b[k], out)
        return
    out.append(f"{path}: {_show(a)} -> {_show(b)}")


def _sensors(old: list[SensorConfig], new: list[SensorConfig], out: list[str]) -> None:
    a = {s.id: s for s in old}
    b = {s.id: s for s in new}
    added = [i for i in b if i not in a]
    removed = [i for i in a if i not in b]
    if added:
        out.append("sensors: added " + ", ".join(added))
    if removed:
        out.append("sensors: removed " + ", ".join(removed))
    for sid in (i for i in b if i in a):
        x, y = a[sid], b[sid]
        if x.type != y.type:
            out.append(f"sensors.{sid}: type {x.type} -> {y.type}")
            continue
        for f in dataclasses.fields(x):
            if f.name in ("line", "id", "type"):
                continue
            _walk(f"sensors.{sid}.{f.name}", getattr(x, f.name), getattr(y, f.name), out)


def changes(old: SiteConfig, new: SiteConfig) -> list[str]:
    out: list[str] = []
    _walk("", old, new, out)
    _sensors(old.sensors, new.sensors, out)
    if old.welfare != new.welfare:
        out.append("welfare: rules changed")
    if len(out) > MAX_LINES:
        out = [*out[:MAX_LINES], f"... and {len(out) - MAX_LINES} more"]
    return out
