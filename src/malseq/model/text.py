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


def shuffled_text(text: str, seed: int) -> str:
    """The same behaviours in a random order within each stage block (the ordered-vs-shuffled experiment).

    The model text is `stage : phrase , phrase ; stage : ...` (`malseq.sequence.render`); the
    phrases of each block are shuffled with a seeded generator, blocks and stage words stay put,
    like `render_text(..., order="shuffled")`.
    """
    rng = random.Random(seed)
    blocks = []
    for block in text.split(" ; "):
        head, colon, body = block.partition(" : ")
        if not colon:
            head, body = "", block
        items = body.split(" , ")
        rng.shuffle(items)
        blocks.append((head + " : " if colon else "") + " , ".join(items))
    return " ; ".join(blocks)
