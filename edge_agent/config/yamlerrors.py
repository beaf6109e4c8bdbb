"""PyYAML's syntax errors, said in words a site installer can act on, at the right line.

    problem = syntax_problem(exc, text, "site.yaml")   # ConfigProblem(file, line, "", advice)

PyYAML reports where it *noticed* a problem, which is not always where the problem is: an
unclosed quote is noticed at the end of the file, so the advice points at the line where
the quote was opened. Anything not recognised keeps PyYAML's own words, located.
"""

from __future__ import annotations

import re

import yaml

from edge_agent.core.errors import ConfigProblem

_KEY = re.compile(r"""^(?:-\s+)?(?P<key>[^\s#'"][^:#]*?|'[^']*'|"[^"]*")\s*:(?:\s+#.*)?\s*$""")


def syntax_problem(exc: yaml.YAMLError, text: str, file: str) -> ConfigProblem:
    line, msg = _explain(exc, text)
    return ConfigProblem(file, max(1, line), "", msg)


def _explain(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(0, exc.position)) + 1
        return line, (f"character U+{exc.character:04X} is not allowed in a YAML file (is this "
                      "a binary file?): remove it, a site file is UTF-8 text")
    if not isinstance(exc, yaml.MarkedYAMLError):
        return 1, f"YAML: {exc}"
    problem = exc.problem or ""
    context = exc.context or ""
    at = exc.problem_mark.line + 1 if exc.problem_mark else 1
    ctx_line = exc.context_mark.line + 1 if exc.context_mark else at
    lines = text.splitlines()
    if "'\\t'" in problem:
        return at, "tabs are not allowed for indentation; use spaces"
    if context.startswith("while scanning a quoted scalar"):
        quote = _char_at(lines, exc.context_mark) if exc.context_mark else '"'
        return ctx_line, (f"the {quote} opened here is never closed (noticed on line {at}): "
                          f"add the closing {quote} on this line")
    if context.startswith("while parsing a flow"):
        opener = _char_at(lines, exc.context_mark) if exc.context_mark else "["
        closer = {"[": "]", "{": "}"}.get(opener, "]")
        if "<stream end>" in problem:
            return ctx_line, f"the {opener} opened here is never closed: add the {closer}"
        return ctx_line, (f"the {opener} opened here is not closed before line {at} "
                          f"({problem}): add the {closer}, or put the items on one line")
    if problem == "mapping values are not allowed here":
        if _colon_before(lines, exc.problem_mark):
            return at, ("a second ': ' on this line: put the value in quotes if it "
                        "contains ': '")
        return at, _indent_advice(lines, at)
    if problem.startswith("expected <block end>"):
        return at, _indent_advice(lines, at)
    if problem == "could not find expected ':'":
        return ctx_line, ("this line is neither 'key: value' nor a list item: add the ':' "
                          "after the key, or put a continued value in quotes")
    if "found undefined alias" in problem:
        return at, f"{problem}: an alias (*name) must come after its anchor (&name)"
    if "expected a single document" in context:
        return at, "only one YAML document per file: remove the '---' and what follows"
    if problem == "found unexpected end of stream":
        return ctx_line, f"the file ends inside a {context.removeprefix('while scanning ')}"
    words = f"{context}: {problem}" if context else problem
    return at, f"YAML syntax: {words or exc}"


def _char_at(lines: list[str], mark: yaml.Mark) -> str:
    if 0 <= mark.line < len(lines) and 0 <= mark.column < len(lines[mark.line]):
        return lines[mark.line][mark.column]
    return '"'


def _colon_before(lines: list[str], mark: yaml.Mark | None) -> bool:
    """A ': ' earlier on the same line than the one PyYAML stopped at (``a: b: c``)."""
    if mark is None or not 0 <= mark.line < len(lines):
        return False
    before = lines[mark.line][:mark.column]
    return ": " in before.lstrip("- ")


def _indent(s: str) -> int:
    return len(s) - len(s.lstrip(" "))


def _content(s: str) -> bool:
    t = s.strip()
    return bool(t) and not t.startswith("#")


def _indent_advice(lines: list[str], line: int) -> str:
    """Which key's block the misplaced line is in, and how that block is indented."""
    i = line - 1
    if not 0 <= i < len(lines):
        return "bad indentation: line the keys of one block up in the same column"
    here = _indent(lines[i])
    parent = None
    for j in range(i - 1, -1, -1):
        s = lines[j]
        if _content(s) and _indent(s) < here and _KEY.match(s.strip()):
            parent = j
            break
    if parent is None:
        block, start = "the top level", 0
    else:
        m = _KEY.match(lines[parent].strip())
        assert m is not None
        block, start = f"the block of {m.group('key')!r} (line {parent + 1})", parent + 1
    first = next((lines[j] for j in range(start, i) if _content(lines[j])
                  and (parent is None or _indent(lines[j]) > _indent(lines[parent]))), None)
    if first is None:
        return (f"bad indentation in {block}: this line is indented {here} spaces; "
                "indent it like the other keys of that block")
    want = _indent(first)
    if want == here and first.lstrip().startswith("- ") \
            and not lines[i].lstrip().startswith("- "):
        return (f"{block} is a list ('- ' items) but this line is 'key: value': start it "
                "with '- ', or indent it under the item it belongs to")
    return (f"bad indentation in {block}: its keys are indented {want} spaces, this line "
            f"{here}; indent it with {want} spaces")
