"""A verdict on the delta: the steps a release adds, scored by the shipped model on their own.

The added behaviours' steps, in NEW's execution order (install first), are rendered the way the
sequence stage renders a whole package (`malseq.sequence.render_text`), prefixed with the marker
word `DELTA_MARKER`, and scored like a package (sequence model and, when shipped, the behaviour
profile model over the added behaviours only).

The shipped model was trained on whole packages, never on delta texts (training on deltas is a
later step of issue 12): a high delta score says "these added steps alone read like malware to a
whole-package model", which is strong evidence for an added install-time stealer and weak
evidence otherwise (a delta is short, and short benign texts are rare in the training data).
docs/diff.md says how to read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from malseq.diff.types import BehaviourDelta, DeltaVerdict, SideScan
from malseq.model import LOW_FPR
from malseq.sequence.types import BehaviourSequence

__all__ = ["DELTA_MARKER", "delta_sequence", "delta_text", "score_delta"]

# the word in front of a delta text, so that a model trained later on both kinds can tell them apart
DELTA_MARKER = "delta"


def delta_sequence(new: SideScan, added: Sequence[BehaviourDelta]) -> BehaviourSequence | None:
    """NEW's sequence cut down to the steps that hold an added behaviour (None: NEW has no sequence)."""
    sequence = new.result.sequence
    if sequence is None:
        return None
    indexes = sorted({d.step for d in added if d.step is not None})
    steps = tuple(sequence.steps[i - 1] for i in indexes)
    return BehaviourSequence(steps, sequence.entry_points, sequence.budget_exhausted, 0.0)


def delta_text(sequence: BehaviourSequence) -> str:
    """The model input of a delta: the marker word, then the steps as `render_text` renders them."""
    from malseq.model.text import model_text
    from malseq.sequence import render_text

    return model_text(f"{DELTA_MARKER} {render_text(sequence)}")


def score_delta(new: SideScan, added: Sequence[BehaviourDelta], model_dir: Path | None = None,
                operating_point: str = LOW_FPR) -> DeltaVerdict:
    """Score the added steps with the shipped model (one input, scored alone: no batch padding)."""
    from malseq.model.profile import BehaviourProfile, staged_steps
    from malseq.model.scoring import ScoreInput, score_inputs

    sequence = delta_sequence(new, added)
    if sequence is None or not sequence.steps:
        return DeltaVerdict("", 0, None, None, (), "no added step in NEW's sequence: nothing to score")
    text = delta_text(sequence)
    ecosystem = new.result.package.ecosystem.value if new.result.package is not None else ""
    profile = BehaviourProfile(ecosystem, tuple(d.event.behaviour for d in added), tuple(sequence.ids),
                               staged_steps(text))
    [scored], why = score_inputs([ScoreInput(text, profile)], model_dir, operating_point)
    if scored is None:
        return DeltaVerdict(text, len(sequence.steps), None, None, (), f"not scored: {why or 'no model'}")
    return DeltaVerdict(text, len(sequence.steps), scored.score, scored.verdict, scored.components, None,
                        scored.threshold, operating_point)
