"""The command line's shape: one module per sub-command, ``-V``/``--version``."""

from __future__ import annotations

import importlib

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
                             "keys", "unseal"}
    parser = build_parser()
    for name, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(f"edge_agent.cli.{module_name}")
        assert callable(module.add_arguments) and callable(module.run), name
    args = parser.parse_args(["check-config", "site.yaml"])
    assert args.func is importlib.import_module("edge_agent.cli.check_config").run


def test_decode_takes_its_arguments_from_the_decode_module() -> None:
    args = build_parser().parse_args(["decode", "-p", "dsmr-p1", "capture.bin"])
    assert args.protocol == "dsmr-p1" and str(args.file) == "capture.bin" and args.key is None
