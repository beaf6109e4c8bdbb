"""YAML to a located node tree, with ``${NAME}`` / ``${NAME:-default}`` substitution.

Every node keeps the line it came from so that every configuration problem can be reported
as ``FILE:LINE: dotted.path: message``. Only safe YAML is read (no tags, no objects).

Reading is bounded (:class:`Limits`): nesting depth, nodes after alias expansion (an
"alias bomb" of a few hundred bytes would otherwise expand to billions of values), and an
alias that contains itself. Each limit is a located problem, never a RecursionError or a
runaway process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from edge_agent.config.yamlerrors import syntax_problem
from edge_agent.core.errors import ConfigProblem

_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null")
)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


@dataclass(frozen=True)
class Limits:
    """How much YAML one site file may make us read (docs/design/0006-config-limits.md)."""

    max_bytes: int = 1024 * 1024  # a real site file is a few KiB
    max_depth: int = 32  # mappings/lists inside each other (real files: about 6)
    max_nodes: int = 50_000  # values after alias expansion (200 sensors: about 5,000)


class LimitExceeded(Exception):
    def __init__(self, line: int, path: str, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.path = path
        self.message = message


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses too deep or too many nodes before recursing."""

    def __init__(self, stream: str, limits: Limits) -> None:
        super().__init__(stream)
        self._limits = limits
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > self._limits.max_depth:
                raise LimitExceeded(line, "", _too_deep(self._limits))
            if self._nodes > self._limits.max_nodes:
                raise LimitExceeded(line, "", _too_many(self._limits))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _too_deep(limits: Limits) -> str:
    return (f"nested more than {limits.max_depth} levels deep (mappings and lists inside "
            "each other, aliases included): a site file needs far fewer; flatten it")


def _too_many(limits: Limits) -> str:
    return (f"more than {limits.max_nodes} values (counting every alias expansion): a site "
            "file needs far fewer; write the values out instead of nesting aliases")


@dataclass
class Node:
    line: int  # 1-based


@dataclass
class Scalar(Node):
    value: Any  # str, int, float, bool or None
    # already reported (unset variable, refused tag): the validator skips it silently so
    # that one mistake gives one problem
    bad: bool = False


@dataclass
class Seq(Node):
    items: list[Node] = field(default_factory=list)


@dataclass
class Map(Node):
    # (key, key line, value node), in file order
    items: list[tuple[str, int, Node]] = field(default_factory=list)

    def get(self, key: str) -> Node | None:
        for k, _, v in self.items:
            if k == key:
                return v
        return None


def substitute(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace ``${NAME}`` and ``${NAME:-default}``; returns (text, problems).

    A ``${`` that does not start a well-formed reference is a problem, not literal text.
    """
    errors: list[str] = []
    out: list[str] = []
    pos = 0
    for m in _VAR.finditer(text):
        _check_literal(text, text[pos:m.start()], errors)
        name, default = m.group(1), m.group(2)
        if name in env and (env[name] != "" or default is None):
            out.append(text[pos:m.start()] + env[name])
        elif default is not None:
            out.append(text[pos:m.start()] + default)
        else:
            errors.append(f"environment variable ${{{name}}} is not set "
                          f"(give it a value or write ${{{name}:-default}})")
            out.append(text[pos:m.start()])
        pos = m.end()
    _check_literal(text, text[pos:], errors)
    out.append(text[pos:])
    return "".join(out), errors


def _check_literal(whole: str, part: str, errors: list[str]) -> None:
    i = part.find("${")
    if i < 0:
        return
    rest = part[i:]
    if "}" not in rest:
        errors.append(f"unclosed ${{ in {whole!r} (write ${{NAME}} or ${{NAME:-default}})")
    else:
        ref = rest[:rest.index("}") + 1]
        errors.append(f"bad variable reference {ref} in {whole!r} (write ${{NAME}} or "
                      "${NAME:-default}; NAME is letters, digits and _)")


class _Builder:
    def __init__(self, file: str, env: Mapping[str, str], limits: Limits) -> None:
        self.file = file
        self.env = env
        self.limits = limits
        self.problems: list[ConfigProblem] = []
        self._loader = yaml.SafeLoader("")
        self._nodes = 0
        self._open: set[int] = set()  # ids of the nodes being built (an alias loop test)

    def problem(self, line: int, path: str, msg: str) -> None:
        self.problems.append(ConfigProblem(self.file, line, path, msg))

    def build(self, node: yaml.Node, path: str, depth: int = 1) -> Node:
        line = node.start_mark.line + 1
        self._nodes += 1
        if self._nodes > self.limits.max_nodes:
            raise LimitExceeded(line, path, _too_many(self.limits))
        if depth > self.limits.max_depth:
            raise LimitExceeded(line, path, _too_deep(self.limits))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path, line)
        if id(node) in self._open:
            raise LimitExceeded(line, path, "an alias refers to a mapping or list that "
                                "contains it (an endless loop): remove the *alias")
        self._open.add(id(node))
        try:
            return self._collection(node, path, line, depth)
        finally:
            self._open.discard(id(node))

    def _collection(self, node: yaml.Node, path: str, line: int, depth: int) -> Node:
        if isinstance(node, yaml.MappingNode):
            out = Map(line)
            seen: dict[str, int] = {}
            for knode, vnode in node.value:
                kline = knode.start_mark.line + 1
                if not isinstance(knode, yaml.ScalarNode):
                    self.problem(kline, path, "mapping keys must be plain strings")
                    continue
                key = str(knode.value)
                sub = f"{path}.{key}" if path else key
                if key in seen:
                    self.problem(kline, sub, f"duplicate key (first given on line {seen[key]})")
                    continue
                seen[key] = kline
                out.items.append((key, kline, self.build(vnode, sub, depth + 1)))
            return out
        assert isinstance(node, yaml.SequenceNode)
        return Seq(line, [self.build(v, f"{path}[{i}]", depth + 1)
                          for i, v in enumerate(node.value)])

    def _scalar(self, node: yaml.ScalarNode, path: str, line: int) -> Node:
        if node.tag not in _PLAIN_TAGS:
            self.problem(line, path, f"YAML tag {node.tag} is not allowed")
            return Scalar(line, None, bad=True)
        if isinstance(node.value, str) and "${" in node.value:
            text, errors = substitute(node.value, self.env)
            for msg in errors:
                self.problem(line, path, msg)
            return Scalar(line, text, bad=bool(errors))
        try:
            value = self._loader.construct_object(node, deep=True)
        except ValueError:  # an int of more than 4300 digits (sys.int_info)
            self.problem(line, path, f"the number {node.value[:20]}... is too long")
            return Scalar(line, None, bad=True)
        return Scalar(line, value)


def parse_yaml(text: str, file: str, env: Mapping[str, str],
               limits: Limits | None = None) -> tuple[Node | None, list[ConfigProblem]]:
    """Parse one YAML document; returns the located tree and any problems found."""
    limits = limits or Limits()
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        return None, [ConfigProblem(file, 1, "", too_big(size, limits))]
    b = _Builder(file, env, limits)
    try:
        loader = _BoundedLoader(text, limits)  # ReaderError: a character YAML refuses
    except yaml.YAMLError as exc:
        return None, [syntax_problem(exc, text, file)]
    try:
        root = loader.get_single_node()
        if root is None:
            return None, [ConfigProblem(file, 1, "", "the file is empty: write the site "
                                        "configuration (see configs/ for examples)")]
        return b.build(root, ""), b.problems
    except LimitExceeded as exc:
        return None, [ConfigProblem(file, exc.line, exc.path, exc.message)]
    except yaml.YAMLError as exc:
        return None, [syntax_problem(exc, text, file)]
    finally:
        loader.dispose()


def too_big(size: int, limits: Limits) -> str:
    return (f"the file is {size} bytes, more than the {limits.max_bytes} a site file may "
            "have: is this the right file?")


def node_at(tree: Node, *keys: str | int) -> Node:
    """The deepest node along ``keys`` (for locating cross-field problems)."""
    node = tree
    for k in keys:
        nxt: Node | None = None
        if isinstance(node, Map) and isinstance(k, str):
            nxt = node.get(k)
        elif isinstance(node, Seq) and isinstance(k, int) and k < len(node.items):
            nxt = node.items[k]
        if nxt is None:
            break
        node = nxt
    return node
