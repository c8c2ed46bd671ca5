"""Choosing the verdict threshold on validation data, for a low false-positive rate.

Rule (documented in docs/model.md): among the validation scores, take the **lowest** score `t`
such that flagging every validation sample with score >= t keeps the false-positive rate on the
benign validation samples at or below `max_fpr` (default 0.5%), and, when strata are given,
each listed stratum's FPR at or below its own limit (e.g. popular <= 0.2%). The lowest such
threshold gives the highest recall the FPR budget allows. If no malicious sample scores at or
above that point the rule still returns it; if even the highest score breaks the budget, the
threshold is just above the highest benign score (nothing benign flagged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

DEFAULT_MAX_FPR = 0.005


def choose_threshold(
    labels: Sequence[int],
    scores: Sequence[float],
    max_fpr: float = DEFAULT_MAX_FPR,
    strata: Sequence[str] | None = None,
    max_fpr_by_stratum: Mapping[str, float] | None = None,
) -> float:
    if len(labels) != len(scores):
        raise ValueError("labels and scores differ in length")
    neg_total = sum(1 for y in labels if not y)
    limits = dict(max_fpr_by_stratum or {})
    neg_by: dict[str, int] = {}
    if strata is not None and limits:
        for y, s in zip(labels, strata, strict=True):
            if not y and s in limits:
                neg_by[s] = neg_by.get(s, 0) + 1
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    fp = 0
    fp_by: dict[str, int] = dict.fromkeys(neg_by, 0)
    best: float | None = None
    i = 0
    while i < len(order):
        j = i
        value = scores[order[i]]
        while j < len(order) and scores[order[j]] == value:
            k = order[j]
            if not labels[k]:
                fp += 1
                if strata is not None and strata[k] in fp_by:
                    fp_by[strata[k]] += 1
            j += 1
        ok = (fp / neg_total if neg_total else 0.0) <= max_fpr and all(
            fp_by[s] / neg_by[s] <= limits[s] for s in neg_by
        )
        if not ok:
            break
        best = value
        i = j
    if best is None:
        top = scores[order[0]] if order else 1.0
        return math.nextafter(top, math.inf)
    return best


def fpr_at(labels: Sequence[int], scores: Sequence[float], threshold: float) -> float:
    neg = [s for y, s in zip(labels, scores, strict=True) if not y]
    return sum(1 for s in neg if s >= threshold) / len(neg) if neg else 0.0
