"""docs/config.md, generated from the config dataclasses: every key, type, default, range
and description.

    python -m edge_agent.config.docs > docs/config.md      # tests check it is current

A key's description is the comment written next to (or directly above) its field in the
source, so the schema is the one place to change. Type-specific sensor keys are in
docs/devices.md (edge_agent.devices.docs).
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import io
import sys
import textwrap
import tokenize
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from edge_agent.config import _Top
from edge_agent.config.schema import (
    ChannelConfig,
    LoggingConfig,
    MetricsConfig,
    SealConfig,
    SensorCommon,
    StoreConfig,
    TLSConfig,
)
from edge_agent.config.types import Range
from edge_agent.config.validate import type_name
from edge_agent.config.welfare import (
    AwayRule,
    ClimateRule,
    CorroborateRule,
    FallRule,
    InactivityRule,
    MeterRule,
    WelfareSubject,
)

# (heading, YAML path of the mapping, dataclass); nested mappings get their own section
SECTIONS: tuple[tuple[str, str, type], ...] = (
    ("Top level", "", _Top),
    ("Channels", "channels.ot / channels.it", ChannelConfig),
    ("Channel TLS", "channels.<ch>.tls", TLSConfig),
    ("Channel sealing", "channels.<ch>.seal", SealConfig),
    ("Store", "store", StoreConfig),
    ("Logging", "logging", LoggingConfig),
    ("Metrics", "metrics", MetricsConfig),
    ("Sensors (keys every entry may have)", "sensors[]", SensorCommon),
    ("Welfare rules, per resident", "welfare[]", WelfareSubject),
    ("Welfare: meter activity", "welfare[].meter", MeterRule),
    ("Welfare: inactivity", "welfare[].inactivity", InactivityRule),
    ("Welfare: falls", "welfare[].fall", FallRule),
    ("Welfare: away from home", "welfare[].away", AwayRule),
    ("Welfare: room climate", "welfare[].climate", ClimateRule),
    ("Welfare: what counts as activity", "welfare[].corroborate", CorroborateRule),
)

YAML_NAMES = {"for_": "for"}  # Python keywords read under another field name


@dataclasses.dataclass(frozen=True)
class Key:
    name: str
    type: str
    default: str
    range: str
    description: str


def field_comments(cls: type) -> dict[str, str]:
    """Each field's comment: the lines directly above it and the one after it."""
    src = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                              tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.add(tok.start[0])
    (node,) = ast.parse(src).body
    assert isinstance(node, ast.ClassDef)
    out: dict[str, str] = {}
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        above: list[str] = []
        line = stmt.lineno - 1
        while line in comments and line not in code_lines:
            above.insert(0, comments[line])
            line -= 1
        end = stmt.end_lineno or stmt.lineno
        after = [comments[ln] for ln in range(stmt.lineno, end + 1) if ln in comments]
        out[stmt.target.id] = " ".join(above + after)
    return out


def _range(tp: Any) -> Range | None:
    if get_origin(tp) is Annotated:
        return next((m for m in get_args(tp)[1:] if isinstance(m, Range)), None)
    if get_origin(tp) in (Union, types.UnionType):
        for a in get_args(tp):
            r = _range(a)
            if r is not None:
                return r
    if get_origin(tp) is dict:
        return _range(get_args(tp)[1])
    return None


def _type(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is dict:
        key, val = get_args(tp)
        if isinstance(key, type) and issubclass(key, enum.Enum):
            keys = "/".join(m.value for m in key)
            return f"a mapping {keys} -> {_type(val)}"
        return f"a mapping of {_type(val)}"
    if origin is Annotated:
        return _type(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return " or ".join(_type(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {_type(get_args(tp)[0])}"
    if tp is Path:
        return "a file path"
    if hasattr(tp, "__config_name__"):
        return str(tp.__config_name__)
    if dataclasses.is_dataclass(tp):
        return "a mapping (below)"
    return type_name(tp)


def _default(f: dataclasses.Field[Any], tp: Any) -> str:
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        return "**required**"
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        if dataclasses.is_dataclass(value):
            return "(the defaults below)"
        return "empty" if not value else repr(value)
    value = f.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, enum.Enum):
        return value.name.lower()
    r = _range(tp)
    if r is not None and isinstance(value, int | float):
        return _show(r, value)
    return str(value)


def _show(r: Range, value: float) -> str:
    if not r.unit and float(value).is_integer():
        return str(int(value))
    return r.show(float(value))


def keys(cls: type) -> list[Key]:
    hints = get_type_hints(cls, include_extras=True)
    comments = field_comments(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        r = _range(tp)
        span = f"{_show(r, r.lo)} .. {_show(r, r.hi)}" if r is not None else ""
        out.append(Key(YAML_NAMES.get(f.name, f.name), _type(tp), _default(f, tp), span,
                       comments.get(f.name, "")))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    lines = [
        "# Site configuration reference",
        "",
        "<!-- Generated by `python -m edge_agent.config.docs` from the config dataclasses "
        "(edge_agent/config/); do not edit: change the comment next to the field. "
        "tests/test_config_docs.py checks this file is current. -->",
        "",
        "Every key a site YAML may have, with its type, default, allowed range and meaning. "
        "Unknown keys are errors; `${NAME}` and `${NAME:-default}` in any string are taken "
        "from the environment; relative paths are relative to the YAML file. Durations are "
        "written `250ms`, `10s`, `5m`, `2h`, `7d`; sizes `64KiB`, `256MiB`. Keys of each "
        "sensor type (`port`, `pin`, `bus`, `address`, `emulate`, ...) are in "
        "[devices.md](devices.md). `edge-agent check-config FILE` checks a file against "
        "all of this.",
        "",
    ]
    for heading, path, cls in SECTIONS:
        lines.append(f"## {heading}: `{path}`" if path else f"## {heading}")
        lines.append("")
        doc = inspect.getdoc(cls) or ""
        if doc and not doc.startswith(cls.__name__ + "("):
            lines += [" ".join(doc.split("\n\n")[0].split()), ""]
        lines += ["| key | type | default | range | description |",
                  "| --- | --- | --- | --- | --- |"]
        for k in keys(cls):
            lines.append(f"| `{k.name}` | {_cell(k.type)} | {_cell(k.default)} | "
                         f"{_cell(k.range)} | {_cell(k.description)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: typing.Sequence[str] | None = None) -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
