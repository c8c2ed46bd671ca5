"""What the model reads: the behaviour-sequence text of a package.

The text comes from the sequence stage (`malseq.sequence`); this module only accepts it in
any of the forms the pipeline hands around and normalises whitespace and case, identically
at training and scanning time (a change here changes the model's input and needs retraining).
"""

from __future__ import annotations


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
