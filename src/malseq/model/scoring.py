"""Scoring scan results: one model load and one batched inference for every analysed target.

Used by `malseq.scan.scan` after the per-target loop. A target gets a `score` in [0, 1] and a
`verdict` ("malicious"/"benign", at the model card's threshold) when it was analysed and has a
behaviour sequence; when no model is installed, every target keeps `score=None` and the reason
is returned (the scan goes on, it never crashes for want of a model).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from malseq.model.text import model_text


def sequence_text(result: Any) -> str | None:
    """The model text of a scan result's behaviour sequence, or None if it has none."""
    seq = getattr(result, "sequence", None)
    if seq is None or getattr(result, "error", None) is not None:
        return None
    if isinstance(seq, str):
        return model_text(seq)
    from malseq.sequence import render_text

    return model_text(render_text(seq))


def score_texts(
    texts: Sequence[str | None], model_dir: Path | None = None
) -> tuple[list[float | None], list[str | None], str | None]:
    """(scores, verdicts, why-no-score): None entries where a text is None or no model is available."""
    from malseq.model.infer import try_load

    if all(t is None for t in texts):
        return [None] * len(texts), [None] * len(texts), None
    scorer, why = try_load(model_dir)
    if scorer is None:
        return [None] * len(texts), [None] * len(texts), why
    idx = [i for i, t in enumerate(texts) if t is not None]
    values = scorer.score([texts[i] for i in idx])
    scores: list[float | None] = [None] * len(texts)
    verdicts: list[str | None] = [None] * len(texts)
    for i, v in zip(idx, values, strict=True):
        scores[i] = v
        verdicts[i] = scorer.verdict(v)
    return scores, verdicts, None
