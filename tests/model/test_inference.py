"""Scan-time model code that needs no trained model: the model text and a missing model."""

from __future__ import annotations

from pathlib import Path

import pytest

from malseq.errors import ModelNotAvailableError
from malseq.model.infer import SequenceScorer, try_load
from malseq.model.text import model_text


def test_model_text_normalises() -> None:
    assert model_text("  Install :  READ file\n; x ") == "install : read file ; x"

    class Seq:
        text = "A ; B"

    assert model_text(Seq()) == "a ; b"
    assert model_text(None) == ""


def test_missing_model_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError):
        SequenceScorer.load(tmp_path)
    scorer, why = try_load(tmp_path)
    assert scorer is None and why and "no trained sequence model" in why
