"""Scan-time model code that needs no trained model: the model text and a missing model."""

from __future__ import annotations

from pathlib import Path

import pytest

from malseq.errors import ModelNotAvailableError
from malseq.model.infer import SequenceScorer, try_load
from malseq.model.text import model_text, shuffled_text


def test_model_text_normalises_and_shuffles() -> None:
    assert model_text("  Install :  READ file\n; x ") == "install : read file ; x"

    class Seq:
        text = "A ; B"

    assert model_text(Seq()) == "a ; b"
    text = "install : a , b , c , d , e ; import : f , g , h"
    s = shuffled_text(text, seed=1)
    install, imp = s.split(" ; ")
    assert install.startswith("install : ") and imp.startswith("import : ")
    assert sorted(install[10:].split(" , ")) == ["a", "b", "c", "d", "e"]
    assert sorted(imp[9:].split(" , ")) == ["f", "g", "h"]
    assert s == shuffled_text(text, seed=1) and s != text


def test_missing_model_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError):
        SequenceScorer.load(tmp_path)
    scorer, why = try_load(tmp_path)
    assert scorer is None and why and "no trained sequence model" in why
