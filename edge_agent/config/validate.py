"""A strict, typed validator from a located YAML tree to frozen dataclasses.

It collects every problem (not only the first), each with its line and dotted path.
Supported field types: str, int, float, bool, Path, Enum, Literal, list[T], dict[str, T],
``T | None``, nested dataclasses, and "parsed" types that define ``__config_parse__``.
Unknown keys are errors. Relative paths are resolved against the config file's folder.

Numbers: NaN and infinity are refused for every field, whatever its type. A field typed
``Annotated[T, Range(lo, hi)]`` must lie in that range; a number without one (a sensor
type's options) must lie within +-``DEFAULT_LIMIT``, so no value can overflow what uses it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from edge_agent.config.types import Range
from edge_agent.config.yamlsrc import Map, Node, Scalar, Seq
from edge_agent.core.errors import ConfigProblem

DEFAULT_LIMIT = 1e15  # for numbers without a Range: exact as float and as a C int64

_MISSING = object()


class _Invalid(Exception):
    pass


def type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(tp))
    if origin is Annotated:
        return type_name(get_args(tp)[0])
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {type_name(get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        # the names users write (alarm, normal, bulk), not the values (0, 1, 2)
        return "one of " + ", ".join(m.name.lower() for m in tp)
    if hasattr(tp, "__config_name__"):
        return str(tp.__config_name__)
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if isinstance(tp, type):
        return getattr(tp, "__config_name__", tp.__name__)
    return str(tp)


class Validator:
    def __init__(self, file: str, base_dir: Path) -> None:
        self.file = file
        self.base_dir = base_dir
        self.problems: list[ConfigProblem] = []

    def problem(self, node_or_line: Node | int, path: str, msg: str) -> None:
        line = node_or_line if isinstance(node_or_line, int) else node_or_line.line
        self.problems.append(ConfigProblem(self.file, line, path, msg))

    # -- entry points ---------------------------------------------------------------------

    def dataclass_from(self, cls: Any, node: Node, path: str,
                       extra: dict[str, Any] | None = None,
                       skip_keys: frozenset[str] = frozenset(),
                       also_known: frozenset[str] = frozenset()) -> Any:
        """Build ``cls`` from a Map node; returns None if any field was invalid.

        ``also_known`` names keys handled elsewhere in the same mapping (for instance the
        common sensor keys next to a sensor type's options): an unknown key is compared
        with them too for a "did you mean".
        """
        if not isinstance(node, Map):
            if not (isinstance(node, Scalar) and node.bad):
                self.problem(node, path, f"expected a mapping, got {_kind(node)}")
            return None
        hints = get_type_hints(cls, include_extras=True)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        values: dict[str, Any] = dict(extra or {})
        given: set[str] = set(values)
        ok = True
        for key, kline, vnode in node.items:
            sub = f"{path}.{key}" if path else key
            if key in skip_keys:
                continue
            if key not in fields or key in values:
                known = set(fields) | also_known | skip_keys
                self.problem(kline, sub, f"unknown key{_suggest(key, known)}")
                ok = False
                continue
            given.add(key)
            try:
                values[key] = self.value(hints[key], vnode, sub)
            except _Invalid:
                ok = False
        for name, f in fields.items():
            if name in given:
                continue
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                sub = f"{path}.{name}" if path else name
                self.problem(node, sub, "required key is missing")
                ok = False
        if not ok:
            return None
        try:
            return cls(**values)
        except ValueError as exc:  # checks in __post_init__
            self._post_init_problem(node, path, str(exc), fields)
            return None

    def _post_init_problem(self, node: Map, path: str, msg: str, fields: Any) -> None:
        """Locate a __post_init__ error: at the key its message starts with, if it names one
        of the fields ("pin must be ..."), else at the whole mapping."""
        m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", msg)
        name = m.group(0) if m else ""
        if name not in fields:
            self.problem(node, path, msg)
            return
        line = next((kline for key, kline, _ in node.items if key == name), node.line)
        rest = msg[len(name):]
        if rest.startswith(": "):  # "brokers: give at least one" -> "give at least one"
            msg = rest[2:]
        self.problem(line, f"{path}.{name}" if path else name, msg)

    def value(self, tp: Any, node: Node, path: str, ranged: bool = False) -> Any:
        """``ranged``: a Range around ``tp`` bounds the number (not DEFAULT_LIMIT)."""
        if isinstance(node, Scalar) and node.bad:
            raise _Invalid  # already reported while reading the YAML
        if isinstance(node, Scalar) and isinstance(node.value, float) \
                and not math.isfinite(node.value):
            return self._fail(node, path, f"must be a finite number, got {node.value}")
        origin = get_origin(tp)
        if origin is Annotated:
            base, *meta = get_args(tp)
            out = self.value(base, node, path, ranged=any(isinstance(m, Range) for m in meta))
            for m in meta:
                if isinstance(m, Range) and (msg := m.check(out)):
                    return self._fail(node, path, msg)
            return out
        out = self._value(tp, node, path)
        if not ranged and isinstance(out, int | float) and not isinstance(out, bool) \
                and not -DEFAULT_LIMIT <= out <= DEFAULT_LIMIT:  # NaN fails this too
            return self._fail(node, path, f"{out!r} is out of range "
                                          f"(at most {DEFAULT_LIMIT:g} either way)")
        return out

    def _value(self, tp: Any, node: Node, path: str) -> Any:
        origin = get_origin(tp)
        if origin in (Union, types.UnionType):
            args = get_args(tp)
            if isinstance(node, Scalar) and node.value is None and type(None) in args:
                return None
            non_none = [a for a in args if a is not type(None)]
            if len(non_none) == 1:
                return self.value(non_none[0], node, path)
            for a in non_none:  # first that fits, silently
                v = Validator(self.file, self.base_dir)
                try:
                    res = v.value(a, node, path)
                except _Invalid:
                    continue
                if not v.problems:
                    return res
            return self._fail(node, path, f"expected {type_name(tp)}")
        if origin is Literal:
            allowed = get_args(tp)
            if isinstance(node, Scalar) and node.value in allowed:
                return node.value
            return self._fail(node, path, f"expected {type_name(tp)}, got {_show(node)}")
        if origin is list:
            (item_tp,) = get_args(tp)
            if not isinstance(node, Seq):
                return self._fail(node, path, f"expected a list, got {_kind(node)}")
            out, ok = [], True
            for i, item in enumerate(node.items):
                try:
                    out.append(self.value(item_tp, item, f"{path}[{i}]"))
                except _Invalid:
                    ok = False
            if not ok:
                raise _Invalid
            return out
        if origin is dict:
            key_tp, val_tp = get_args(tp)
            if not isinstance(node, Map):
                return self._fail(node, path, f"expected a mapping, got {_kind(node)}")
            mapping: dict[Any, Any] = {}
            ok = True
            for key, kline, vnode in node.items:
                sub = f"{path}.{key}"
                try:
                    k = self.value(key_tp, Scalar(kline, key), sub)
                    mapping[k] = self.value(val_tp, vnode, sub)
                except _Invalid:
                    ok = False
            if not ok:
                raise _Invalid
            return mapping
        parse = getattr(tp, "__config_parse__", None)
        if parse is not None:
            if not isinstance(node, Scalar):
                return self._fail(node, path, f"expected {type_name(tp)}, got {_kind(node)}")
            try:
                return parse(node.value)
            except (ValueError, TypeError, OverflowError) as exc:
                return self._fail(node, path, str(exc))
        if dataclasses.is_dataclass(tp):
            obj = self.dataclass_from(tp, node, path)
            if obj is None:
                raise _Invalid
            return obj
        if not isinstance(node, Scalar):
            return self._fail(node, path, f"expected {type_name(tp)}, got {_kind(node)}")
        v = node.value
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            for m in tp:
                if m.value == v or (isinstance(v, str) and m.name.lower() == v.lower()):
                    return m
            return self._fail(node, path, f"expected {type_name(tp)}, got {_show(node)}")
        if tp is bool:
            if isinstance(v, bool):
                return v
        elif tp is int:
            if isinstance(v, int) and not isinstance(v, bool):
                return v
        elif tp is float:
            if isinstance(v, int | float) and not isinstance(v, bool):
                return float(v)
        elif tp is str:
            if isinstance(v, str) and v != "":
                return v
            if v == "":
                return self._fail(node, path, "must not be empty")
        elif tp is Path:
            if isinstance(v, str) and v:
                try:
                    p = Path(v).expanduser()
                except RuntimeError:  # "~name" for a user that does not exist
                    return self._fail(node, path, f"cannot expand the home directory in {v!r}")
                return p if p.is_absolute() else (self.base_dir / p)
        else:
            raise TypeError(f"unsupported config type {tp!r}")
        return self._fail(node, path, f"expected {type_name(tp)}, got {_show(node)}")

    def _fail(self, node: Node, path: str, msg: str) -> typing.NoReturn:
        self.problem(node, path, msg)
        raise _Invalid


def _kind(node: Node) -> str:
    if isinstance(node, Map):
        return "a mapping"
    if isinstance(node, Seq):
        return "a list"
    return _show(node)


def _show(node: Node) -> str:
    if isinstance(node, Scalar):
        v = node.value
        if v is None:
            return "nothing (null)"
        return f"{type(v).__name__} {v!r}"
    return _kind(node)


def _suggest(key: str, known: Any) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else (
        f" (expected one of: {', '.join(sorted(known))})" if len(known) <= 20 else "")
