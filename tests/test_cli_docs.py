"""Help with an example for every command; shell completion and the man page generated
from the parser (edge_agent/cli/docs.py), so they cannot drift from it."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from edge_agent.cli import docs
from edge_agent.cli.main import COMMANDS


def test_every_command_and_keys_command_has_an_example_in_its_help() -> None:
    for c in docs.walk(docs.command_tree()):
        if c.path == ("edge-agent",):
            continue
        text = c.parser.format_help()
        assert "example:" in text, " ".join(c.path)
        assert "edge-agent" in text.split("example:")[1], " ".join(c.path)


def complete(script: Path, *words: str) -> list[str]:
    """What bash offers after ``edge-agent WORDS...`` (the last word is being typed)."""
    words_q = " ".join(f"'{w}'" for w in ("edge-agent", *words))
    cmd = (f"source {script}; COMP_WORDS=({words_q}); COMP_CWORD={len(words)}; "
           "_edge_agent; printf '%s\\n' \"${COMPREPLY[@]}\"")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=30,
                       check=True)
    return r.stdout.split()


def test_bash_completion_offers_commands_and_options(tmp_path: Path) -> None:
    script = tmp_path / "edge-agent.bash"
    script.write_text(docs.bash())
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    assert set(complete(script, "")) >= set(COMMANDS)
    assert complete(script, "che") == ["check-config"]
    assert set(complete(script, "keys", "")) >= {"init", "rotate", "shred", "export"}
    assert "--owner" in complete(script, "keys", "init", "--o")
    assert complete(script, "status", "--st") == ["--state-dir"]


def test_zsh_completion_names_every_command(tmp_path: Path) -> None:
    text = docs.zsh()
    assert text.startswith("#compdef edge-agent\n")
    for name in COMMANDS:
        assert f"'{name}:" in text, name
    assert "_edge_agent_keys_rotate()" in text and "'--channel[" in text
    if shutil.which("zsh"):
        f = tmp_path / "_edge-agent"
        f.write_text(text)
        assert subprocess.run(["zsh", "-n", str(f)], check=False).returncode == 0


def test_man_page_covers_every_command_and_renders_cleanly(tmp_path: Path) -> None:
    text = docs.man(dt.date(2026, 1, 1))
    assert text.startswith('.TH EDGE-AGENT 1 "2026-01-01"')
    for name in COMMANDS:
        assert f".SS edge\\-agent {name.replace('-', chr(92) + '-')}" in text, name
    assert "\\-\\-state\\-dir" in text and "EDGE_NODE" in text
    if not shutil.which("groff"):
        pytest.skip("groff is not installed")
    page = tmp_path / "edge-agent.1"
    page.write_text(text)
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", str(page)], capture_output=True,
                       text=True, timeout=30, check=False)
    assert r.returncode == 0 and not r.stderr, r.stderr
