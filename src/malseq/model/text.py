"""What the model reads: the behaviour-sequence text of a package.

The text comes from the sequence stage (`malseq.sequence`); this module only accepts it in
any of the forms the pipeline hands around and normalises whitespace and case, identically
at training and scanning time (a change here changes the model's input and needs retraining).
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def model_text(value: object) -> str:
    """The normalised model input for a sequence text or an object with a `text` attribute."""
    if value is None:
        return ""
    if not isinstance(value, str):
        text = getattr(value, "text", None)
        if text is None:
            from malseq.sequence import BehaviourSequence, render_text

            text = render_text(value) if isinstance(value, BehaviourSequence) else str(value)
        value = text
    assert isinstance(value, str)
    return " ".join(value.split()).lower()


def model_texts(values: Sequence[object]) -> list[str]:
    return [model_text(v) for v in values]


SEPARATORS = (" ; ", " , ")


def shuffled_text(text: str, seed: int) -> str:
    """The same behaviours in a random order (the ordered-vs-shuffled experiment).

    Splits on the coarsest separator present (" ; " between steps, else " , "), shuffles the
    parts with a seeded generator and joins them back with the same separator.
    """
    for sep in SEPARATORS:
        if sep in text:
            parts = text.split(sep)
            random.Random(seed).shuffle(parts)
            return sep.join(parts)
    return text
