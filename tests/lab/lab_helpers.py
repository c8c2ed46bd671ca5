from __future__ import annotations

import tomllib
from pathlib import Path

LAB_PYPROJECT = Path(__file__).resolve().parents[2] / "lab" / "pyproject.toml"


def declared_commands() -> dict[str, str]:
    """The lab's `malseq.commands` entry points, as lab/pyproject.toml declares them."""
    doc = tomllib.loads(LAB_PYPROJECT.read_text(encoding="utf-8"))
    return dict(doc["project"]["entry-points"]["malseq.commands"])
