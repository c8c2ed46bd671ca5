"""Grouped cross-validation for model choices that must not read the test split.

Two uses (issue 11, "What to build" 1):

- **Thresholds.** A 0.1% false-positive budget on a validation split of a few hundred benign
  packages allows no false positive at all, so the threshold is set by the single highest benign
  score. `cross_validated_threshold` applies the threshold rule
  (`malseq_lab.model.threshold.choose_threshold`) to out-of-fold scores over train+validation
  pooled, where the budget covers thousands of benign packages, and reports how the rule fares
  fold by fold (each fold judged at the threshold its complement chose), so the spread of the
  held-out FPR shows whether one or two packages set it.
- **Keeping a component.** `cross_fitted_scores` gives out-of-fold scores of a model fitted on
  the validation split (the stack), so the keep rule compares models on validation packages none
  of them was fitted on, instead of reading the test split.

Folds are cut by group (near-duplicate clusters from `malseq_lab.corpus.grouping`): a group is
never split between folds, and malicious and benign groups are dealt separately so each fold
gets its share of both. Everything is deterministic given the seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from malseq_lab.model.threshold import choose_threshold

DEFAULT_FOLDS = 5
DEFAULT_SEED = 20261130


def grouped_folds(
    groups: Sequence[str], labels: Sequence[int], folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED
) -> list[int]:
    """The fold (0..folds-1) of each item; items of one group always share a fold."""
    if len(groups) != len(labels):
        raise ValueError("groups and labels differ in length")
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    size: dict[str, int] = {}
    malicious: dict[str, int] = {}
    for g, y in zip(groups, labels, strict=True):
        size[g] = size.get(g, 0) + 1
        malicious[g] = max(malicious.get(g, 0), 1 if y else 0)
    fold_of: dict[str, int] = {}
    for kind in (1, 0):
        members = [g for g in size if malicious[g] == kind]
        # largest groups first so the greedy fill stays even; ties in a seeded order
        members.sort(key=lambda g: (-size[g], hashlib.sha256(f"{seed}:{g}".encode()).hexdigest()))
        filled = [0] * folds
        for g in members:
            target = min(range(folds), key=lambda f: (filled[f], f))
            fold_of[g] = target
            filled[target] += size[g]
    return [fold_of[g] for g in groups]


@dataclass(frozen=True)
class FoldedThreshold:
    """A threshold chosen on pooled out-of-fold scores, with how the rule fares fold by fold."""

    threshold: float  # the rule on every score pooled
    fold_thresholds: tuple[float, ...]  # the rule on each fold's complement
    fold_fpr: tuple[float, ...]  # each fold's benign FPR at its complement's threshold
    tp: int  # pooled over the held-out folds, each at its complement's threshold
    fp: int
    fn: int
    tn: int

    @property
    def fpr(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "threshold": self.threshold,
            "fold_thresholds": list(self.fold_thresholds),
            "fold_fpr": [round(f, 6) for f in self.fold_fpr],
            "held_out": {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn},
            "f1": round(self.f1, 4),
            "fpr": round(self.fpr, 6),
            "recall": round(self.recall, 4),
        }


def cross_validated_threshold(
    labels: Sequence[int],
    scores: Sequence[float],
    groups: Sequence[str],
    max_fpr: float,
    *,
    strata: Sequence[str] | None = None,
    max_fpr_by_stratum: Mapping[str, float] | None = None,
    folds: int = DEFAULT_FOLDS,
    seed: int = DEFAULT_SEED,
) -> FoldedThreshold:
    """The FPR rule over out-of-fold scores of train+validation, checked fold by fold.

    `scores` must be out-of-fold (each package scored by a model that did not train on its
    group); the returned `threshold` is the rule on all of them pooled.
    """
    n = len(labels)
    if not (len(scores) == len(groups) == n) or (strata is not None and len(strata) != n):
        raise ValueError("labels, scores, groups (and strata) differ in length")
    fold = grouped_folds(groups, labels, folds, seed)
    pooled = choose_threshold(labels, scores, max_fpr, strata, max_fpr_by_stratum)
    fold_thresholds = []
    fold_fpr = []
    tp = fp = fn = tn = 0
    for f in range(folds):
        rest = [i for i in range(n) if fold[i] != f]
        held = [i for i in range(n) if fold[i] == f]
        t = choose_threshold(
            [labels[i] for i in rest],
            [scores[i] for i in rest],
            max_fpr,
            [strata[i] for i in rest] if strata is not None else None,
            max_fpr_by_stratum,
        )
        fold_thresholds.append(t)
        f_fp = f_tn = 0
        for i in held:
            flagged = scores[i] >= t
            if labels[i]:
                tp += flagged
                fn += not flagged
            else:
                f_fp += flagged
                f_tn += not flagged
        fp += f_fp
        tn += f_tn
        fold_fpr.append(f_fp / (f_fp + f_tn) if f_fp + f_tn else 0.0)
    return FoldedThreshold(pooled, tuple(fold_thresholds), tuple(fold_fpr), tp, fp, fn, tn)


Fit = Callable[[Sequence[Sequence[float]], Sequence[int]], Callable[[Sequence[float]], float]]
"""(feature columns, labels) -> a scorer of one row of features."""


def cross_fitted_scores(
    columns: Sequence[Sequence[float]],
    labels: Sequence[int],
    groups: Sequence[str],
    fit: Fit,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = DEFAULT_SEED,
) -> list[float]:
    """Each item scored by a model fitted on the other folds (never on its own group)."""
    n = len(labels)
    fold = grouped_folds(groups, labels, folds, seed)
    out = [0.0] * n
    for f in range(folds):
        rest = [i for i in range(n) if fold[i] != f]
        held = [i for i in range(n) if fold[i] == f]
        if not held:
            continue
        model = fit([[c[i] for i in rest] for c in columns], [labels[i] for i in rest])
        for i in held:
            out[i] = model([c[i] for c in columns])
    return out
