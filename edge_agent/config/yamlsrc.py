"""YAML to a located node tree, with ``${NAME}`` / ``${NAME:-default}`` substitution.

Every node keeps the line it came from so that every configuration problem can be reported
as ``FILE:LINE: dotted.path: message``. Only safe YAML is read (no tags, no objects).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import ConfigProblem

_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null")
)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


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
    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.problems: list[ConfigProblem] = []
        self._loader = yaml.SafeLoader("")

    def problem(self, line: int, path: str, msg: str) -> None:
        self.problems.append(ConfigProblem(self.file, line, path, msg))

    def build(self, node: yaml.Node, path: str) -> Node:
        line = node.start_mark.line + 1
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
                out.items.append((key, kline, self.build(vnode, sub)))
            return out
        if isinstance(node, yaml.SequenceNode):
            return Seq(line, [self.build(v, f"{path}[{i}]") for i, v in enumerate(node.value)])
        assert isinstance(node, yaml.ScalarNode)
        if node.tag not in _PLAIN_TAGS:
            self.problem(line, path, f"YAML tag {node.tag} is not allowed")
            return Scalar(line, None, bad=True)
        if isinstance(node.value, str) and "${" in node.value:
            text, errors = substitute(node.value, self.env)
            for msg in errors:
                self.problem(line, path, msg)
            return Scalar(line, text, bad=bool(errors))
        return Scalar(line, self._loader.construct_object(node, deep=True))


def parse_yaml(text: str, file: str,
               env: Mapping[str, str]) -> tuple[Node | None, list[ConfigProblem]]:
    """Parse one YAML document; returns the located tree and any problems found."""
    b = _Builder(file, env)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return None, [ConfigProblem(file, line, "", f"YAML syntax: {exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return None, [ConfigProblem(file, 1, "", f"YAML: {exc}")]
    if root is None:
        return None, [ConfigProblem(file, 1, "", "the file is empty")]
    tree = b.build(root, "")
    return tree, b.problems
