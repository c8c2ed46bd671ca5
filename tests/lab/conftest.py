"""The lab's tests run its commands through `malseq._cli`, as a user would.

When the lab is importable but not installed (e.g. run with PYTHONPATH=src:lab/src), its entry
points are read from lab/pyproject.toml itself, so the declaration the CLI relies on is what is
tested either way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lab_helpers import declared_commands


@pytest.fixture(autouse=True)
def lab_commands(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from malseq import _cli

    installed = _cli._command_entry_points()
    if not set(_cli.LAB_COMMANDS) <= set(installed):

        def from_pyproject() -> dict[str, Callable[[], Any]]:
            return {name: (lambda target=target: importlib.import_module(target))
                    for name, target in declared_commands().items()}

        monkeypatch.setattr(_cli, "_command_entry_points", from_pyproject)
    yield
