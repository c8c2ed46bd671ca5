"""A verdict on the delta: the steps a release adds, scored by the shipped model on their own.

The added behaviours' steps, in NEW's execution order (install first), are rendered the way the
sequence stage renders a whole package (`malseq.sequence.render_text`), prefixed with the marker
word `DELTA_MARKER`, and scored like a package (sequence model and, when shipped, the behaviour
profile model over the added behaviours only).

The shipped sequence model was trained on whole packages, never on delta texts: a high score says
"these added steps alone read like malware to a whole-package model". When the model folder also
holds a delta model trained on deltas (`malseq.diff.delta_model`, `delta_model.json.gz`),
`judge_delta` lets it decide: its score (over the diff's features and the sequence model's delta
score) against its own threshold, chosen on benign release pairs. docs/diff.md says how to read both.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from malseq.diff.types import BehaviourDelta, DeltaVerdict, SideScan
from malseq.errors import ModelNotAvailableError
from malseq.model import LOW_FPR
from malseq.sequence.types import BehaviourSequence

if TYPE_CHECKING:
    from malseq.diff.delta_model import DeltaModel
    from malseq.diff.types import PackageDiff

__all__ = ["DELTA_MARKER", "delta_sequence", "delta_text", "judge_delta", "score_delta"]

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
                        scored.threshold, operating_point, sequence_score=scored.score)


_models: dict[str, DeltaModel | ModelNotAvailableError | None] = {}
_models_lock = threading.Lock()


def _delta_model(model_dir: Path | None) -> DeltaModel | None:
    """The delta model of the folder (cached per folder); raises `ModelNotAvailableError` for a bad file."""
    from malseq.diff.delta_model import load_delta_model
    from malseq.model import DATA_DIR

    key = str(Path(model_dir or DATA_DIR).resolve())
    with _models_lock:
        if key not in _models:
            try:
                _models[key] = load_delta_model(Path(key))
            except ModelNotAvailableError as exc:
                _models[key] = exc
        found = _models[key]
    if isinstance(found, ModelNotAvailableError):
        raise found
    return found


def clear_delta_models() -> None:
    """Forget the loaded delta models (a test or a training run replaced a file)."""
    with _models_lock:
        _models.clear()


def judge_delta(diff: PackageDiff, scored: DeltaVerdict, model_dir: Path | None = None,
                operating_point: str = LOW_FPR) -> DeltaVerdict:
    """The delta verdict: the delta model's when the model folder has one and the added steps were scored by
    the sequence model (one of its features), else `scored` (the sequence model's) as it is. A delta model
    file that cannot be read leaves the sequence model's verdict, with a note saying why."""
    from malseq.diff.delta_model import facts_of
    from malseq.model.infer import verdict

    if scored.score is None:
        return scored
    try:
        model = _delta_model(model_dir)
    except ModelNotAvailableError as exc:
        return replace(scored, note=f"delta model not used: {exc}; the sequence model's delta score decides")
    if model is None:
        return scored
    facts = facts_of(diff, scored.score)
    score = model.score(facts)
    threshold = model.threshold_for(facts.ecosystem, operating_point)
    return replace(scored, score=score, verdict=verdict(score, threshold), threshold=threshold,
                   components=(*scored.components, ("delta model", score)), decided_by="delta model",
                   model=Path(model.path).name)
