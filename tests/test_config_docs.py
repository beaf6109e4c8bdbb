"""docs/config.md is generated from the config dataclasses and kept current."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args, get_type_hints

from edge_agent.config.docs import SECTIONS, keys, render

REPO = Path(__file__).resolve().parent.parent


def test_committed_config_reference_is_current() -> None:
    committed = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert committed == render(), (
        "docs/config.md is stale: run .venv/bin/python -m edge_agent.config.docs > "
        "docs/config.md")


def test_every_key_has_a_type_default_and_description() -> None:
    for _, path, cls in SECTIONS:
        for k in keys(cls):
            assert k.type and k.default, (path, k)
            assert k.description, f"{path}.{k.name}: write a comment next to the field"


def _nested(tp: Any) -> set[type]:
    found: set[type] = set()
    if dataclasses.is_dataclass(tp) and isinstance(tp, type) \
            and not hasattr(tp, "__config_name__"):
        found.add(tp)
    for a in get_args(tp):
        found |= _nested(a)
    return found


def test_every_nested_mapping_has_a_section() -> None:
    documented = {cls for _, _, cls in SECTIONS}
    for cls in list(documented):
        for tp in get_type_hints(cls, include_extras=True).values():
            missing = _nested(tp) - documented
            assert not missing, f"{cls.__name__}: add a section for {missing}"


def test_the_reference_names_the_keys_installers_ask_about() -> None:
    text = render()
    for key in ("reconnect_min", "reconnect_max", "allow_health_on_ot", "echo_timeout",
                "commit_interval", "`for`"):
        assert key in text, key
    assert "| `keepalive` | a duration (e.g. 1s, 250ms, 7d) | 30s | 1s .. 65535s |" in text


def test_module_entry_point_prints_the_reference() -> None:
    out = subprocess.run([sys.executable, "-m", "edge_agent.config.docs"], capture_output=True,
                         text=True, check=True).stdout
    assert out == render()
