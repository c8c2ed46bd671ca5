from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_behaviour_catalogue_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen", REPO / "tools" / "gen_behaviours_doc.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    current = (REPO / "docs" / "behaviours.md").read_text(encoding="utf-8")
    assert current == gen.render(), "run: python tools/gen_behaviours_doc.py"
