"""The command line's shape: one module per sub-command, ``-V``/``--version``."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent import __version__
from edge_agent.cli.main import COMMANDS, build_parser, main


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([flag])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"edge-agent {__version__}"


def test_every_sub_command_is_a_module_with_arguments_and_run() -> None:
    assert set(COMMANDS) == {"run", "check-config", "demo", "decode", "status", "doctor",
                             "keys", "unseal", "replay", "watch"}
    parser = build_parser()
    for name, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(f"edge_agent.cli.{module_name}")
        assert callable(module.add_arguments) and callable(module.run), name
    args = parser.parse_args(["check-config", "site.yaml"])
    assert args.func is importlib.import_module("edge_agent.cli.check_config").run


def test_decode_takes_its_arguments_from_the_decode_module() -> None:
    args = build_parser().parse_args(["decode", "-p", "dsmr-p1", "capture.bin"])
    assert args.protocol == "dsmr-p1" and str(args.file) == "capture.bin" and args.key is None


def test_a_sub_command_loads_only_its_own_module(tmp_path: Path) -> None:
    """The daemon's start-up does not pay for the demo, doctor or unseal code."""
    code = ("import sys\nfrom edge_agent.cli.main import main\n"
            f"main(['check-config', {str(tmp_path / 'absent.yaml')!r}])\n"
            "print(sorted(m for m in sys.modules if m.startswith('edge_agent.cli.')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.stdout.strip() == "['edge_agent.cli.check_config', 'edge_agent.cli.common', " \
                               "'edge_agent.cli.main']", r.stderr
