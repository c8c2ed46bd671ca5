"""Scoring scan results: one model load and one batched inference for every analysed target.

Used by `malseq.scan.scan` after the per-target loop. A target gets a `Scored` (score in [0, 1],
verdict "malicious"/"benign" at the shipped threshold, and each component's own score) when it
was analysed and has a behaviour sequence; when no model is installed, every target keeps
`score=None` and the reason is returned (the scan goes on, it never crashes for want of a model).

The model folder holds the sequence model (`model.onnx`, `tokenizer.json`, `model_card.json`)
and, when the training run kept it, a stacked ensemble: `ensemble.json` (weights and the
verdict threshold) with the behaviour-profile model `profile_model.json.gz`
(`malseq.model.profile`). With an ensemble the score and verdict are the ensemble's; the
sequence model's own score is still reported as a component.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from malseq.errors import ModelNotAvailableError
from malseq.model import LOW_FPR
from malseq.model.ensemble import Ensemble
from malseq.model.infer import LoadedModel, ModelCard, SequenceScorer, try_load, verdict
from malseq.model.profile import PROFILE_FILE, BehaviourProfile, TreeModel, staged_steps
from malseq.model.text import model_text

ENSEMBLE_FILE = "ensemble.json"
# the model card field naming the `malseq.analysis.analysis_key()` of the code that made the training data
ANALYSIS_KEY_FIELD = "analysis_key"
# Keys of later analysis code on whose output the model was measured again with the harness and kept
# (a list of {"key", "date", "measured"}): a refactor that changes the model input does not need a
# retrain to stop the warning, but it does need that measurement written into the card.
VALIDATED_KEYS_FIELD = "analysis_keys_validated"
SUPPORTED_COMPONENTS = ("sequence", "profile")


@dataclass(frozen=True)
class ScoreInput:
    """What the detector reads of one package: the sequence text and the behaviour profile."""

    text: str
    profile: BehaviourProfile


@dataclass(frozen=True)
class Scored:
    score: float
    verdict: str
    components: tuple[tuple[str, float], ...]  # each model's own score, e.g. (("sequence", 0.97),)
    warning: str | None = None  # `key_warning` of the model that scored it
    threshold: float | None = None  # what `score` was compared with for `verdict` (per ecosystem, per point)


@dataclass(frozen=True)
class Stack:
    ensemble: Ensemble
    profile: TreeModel


_stacks: dict[str, Stack | None] = {}
_stack_lock = threading.Lock()


def load_stack(model_dir: Path) -> Stack | None:
    """The ensemble shipped beside the sequence model, or None when there is none (cached per folder)."""
    key = str(Path(model_dir).resolve())
    with _stack_lock:
        if key not in _stacks:
            _stacks[key] = _read_stack(Path(model_dir))
        return _stacks[key]


def _read_stack(model_dir: Path) -> Stack | None:
    if not (model_dir / ENSEMBLE_FILE).is_file():
        return None
    try:
        ensemble = Ensemble.load(model_dir / ENSEMBLE_FILE)
        if ensemble.components != SUPPORTED_COMPONENTS:
            raise ValueError(f"components {ensemble.components}, this version reads {SUPPORTED_COMPONENTS}")
        profile = TreeModel.load(model_dir / PROFILE_FILE)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotAvailableError(
            f"the ensemble in {model_dir} cannot be read: {exc}",
            hint="reinstall malseq, or remove ensemble.json to score with the sequence model alone",
        ) from exc
    return Stack(ensemble, profile)


def clear_cache() -> None:
    with _stack_lock:
        _stacks.clear()
    SequenceScorer.clear_cache()


def score_input(result: Any) -> ScoreInput | None:
    """The detector's input for a scan result, or None if it has no behaviour sequence.

    The text is the result's `model_input`, made by `malseq.analysis.analyse` (the same function
    the lab's training data comes from); it is never re-rendered here.
    """
    seq = getattr(result, "sequence", None)
    analysis = getattr(result, "analysis", None)
    text = getattr(result, "model_input", None)
    if seq is None or analysis is None or text is None or getattr(result, "error", None) is not None:
        return None
    package = getattr(result, "package", None)
    ecosystem = package.ecosystem.value if package is not None else ""
    profile = BehaviourProfile(ecosystem, tuple(e.behaviour for e in analysis.all_events()), tuple(seq.ids),
                               staged_steps(model_text(text)))
    return ScoreInput(text, profile)


def key_warning(card: ModelCard) -> str | None:
    """A warning when the model card records the analysis key of different code than this one's.

    Cards without a key (older models) get none: their provenance is unknown, not known to differ.
    """
    recorded = card.raw.get(ANALYSIS_KEY_FIELD)
    if not recorded:
        return None
    from malseq.analysis import analysis_key

    running = analysis_key()
    validated = {str(v.get("key")) for v in card.raw.get(VALIDATED_KEYS_FIELD) or () if isinstance(v, dict)}
    if running == str(recorded) or running in validated:
        return None
    return (f"the model was trained on input from analysis code {recorded}, this malseq's is {running}: "
            "its scores may not match its documented accuracy (retrain with malseq train, or use the "
            "malseq release the model shipped with)")


def score_inputs(
    inputs: Sequence[ScoreInput | None], model_dir: Path | None = None, operating_point: str = LOW_FPR,
    model: LoadedModel | None = None,
) -> tuple[list[Scored | None], str | None]:
    """(one Scored or None per input, why-no-score): None where an input is None or no model is available.

    `operating_point` picks the verdict threshold: "low-fpr" (default) or "balanced". `model`: the
    sequence model of `model_dir` loaded already (e.g. in a model process); by default loaded here.
    """
    if all(i is None for i in inputs):
        return [None] * len(inputs), None
    scorer: LoadedModel | None = model
    if scorer is None:
        scorer, why = try_load(model_dir)
        if scorer is None:
            return [None] * len(inputs), why
    try:
        stack = load_stack(scorer.model_dir)
        if stack is None:
            scorer.threshold_for(operating_point)  # raises now when the card lacks the operating point
        if stack is not None and not stack.ensemble.has_operating_point(operating_point):
            raise ModelNotAvailableError(
                f"the ensemble in {scorer.model_dir} has no {operating_point!r} operating point",
                hint=f"use --operating-point {LOW_FPR}")
    except ModelNotAvailableError as exc:
        return [None] * len(inputs), str(exc)
    warning = key_warning(scorer.card)
    idx = [i for i, item in enumerate(inputs) if item is not None]
    present = [inputs[i] for i in idx]
    sequence_scores = scorer.score([item.text for item in present if item is not None])
    out: list[Scored | None] = [None] * len(inputs)
    for i, item, s in zip(idx, present, sequence_scores, strict=True):
        assert item is not None
        if stack is None:
            alone = scorer.threshold_for(operating_point, item.profile.ecosystem)
            out[i] = Scored(s, verdict(s, alone), (("sequence", s),), warning, alone)
            continue
        p = stack.profile.score(item.profile)
        combined = stack.ensemble.score(s, p)
        threshold = stack.ensemble.threshold_for(item.profile.ecosystem, operating_point)
        assert threshold is not None
        out[i] = Scored(combined, verdict(combined, threshold), (("sequence", s), ("profile", p)), warning,
                        threshold)
    return out, None
