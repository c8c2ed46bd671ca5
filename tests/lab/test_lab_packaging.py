"""The lab plugs its commands into the scanner's CLI through entry points, and only that way."""

from __future__ import annotations

import importlib

import pytest
from lab_helpers import declared_commands

from malseq import _cli


def test_lab_declares_every_lab_command_with_a_runnable_module() -> None:
    declared = declared_commands()
    assert set(declared) == set(_cli.LAB_COMMANDS)
    for target in declared.values():
        module = importlib.import_module(target)
        assert callable(module.register) and callable(module.run)


def test_lab_commands_run_through_the_scanner_cli(capsys: pytest.CaptureFixture[str]) -> None:
    for word in _cli.LAB_COMMANDS:
        assert _cli.main([word, "--help"]) == 0
        assert f"usage: malseq {word}" in capsys.readouterr().out
    assert _cli.main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(word in listing for word in ("scan", *_cli.LAB_COMMANDS))
