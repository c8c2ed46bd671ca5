"""Grouped cross-validation: folds never cut a group; thresholds over pooled out-of-fold scores."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from malseq_lab.model.crossval import cross_fitted_scores, cross_validated_threshold, grouped_folds
from malseq_lab.model.threshold import choose_threshold, fpr_at


def _synthetic(n_benign: int, n_malicious: int, seed: int) -> tuple[list[int], list[float], list[str]]:
    """Benign scores low, malicious high, overlapping; groups of 1-4 near-copies sharing a score range."""
    rng = random.Random(seed)
    labels, scores, groups = [], [], []
    for label, count in ((0, n_benign), (1, n_malicious)):
        made = 0
        g = 0
        while made < count:
            size = min(rng.randint(1, 4), count - made)
            centre = rng.betavariate(2, 8) if label == 0 else rng.betavariate(8, 2)
            for _ in range(size):
                labels.append(label)
                scores.append(min(1.0, max(0.0, centre + rng.uniform(-0.02, 0.02))))
                groups.append(f"{label}-{g}")
            made += size
            g += 1
    return labels, scores, groups


def test_folds_never_cut_a_group_and_share_both_labels() -> None:
    labels, _, groups = _synthetic(900, 300, seed=1)
    folds = grouped_folds(groups, labels, folds=5, seed=7)
    fold_of_group: dict[str, set[int]] = {}
    for g, f in zip(groups, folds, strict=True):
        fold_of_group.setdefault(g, set()).add(f)
    assert all(len(fs) == 1 for fs in fold_of_group.values())
    for f in range(5):
        benign = sum(1 for y, k in zip(labels, folds, strict=True) if k == f and not y)
        malicious = sum(1 for y, k in zip(labels, folds, strict=True) if k == f and y)
        assert abs(benign - 180) <= 4 and abs(malicious - 60) <= 4
    # deterministic, and independent of the order items come in
    assert grouped_folds(groups, labels, 5, 7) == folds
    order = list(range(len(groups)))
    random.Random(3).shuffle(order)
    shuffled = grouped_folds([groups[i] for i in order], [labels[i] for i in order], 5, 7)
    assert [shuffled[order.index(i)] for i in range(len(groups))] == folds


def test_threshold_over_pooled_folds_is_not_set_by_one_benign_outlier() -> None:
    labels, scores, groups = _synthetic(3000, 600, seed=2)
    # one benign package scoring like malware, as an old setup.py does
    labels.append(0)
    scores.append(0.995)
    groups.append("outlier")
    folded = cross_validated_threshold(labels, scores, groups, max_fpr=0.001, folds=5, seed=11)
    # pooled: 3,001 benign at 0.1% allow 3 false positives, so the outlier does not set the threshold
    assert folded.threshold == choose_threshold(labels, scores, 0.001)
    assert folded.threshold < 0.995
    assert fpr_at(labels, scores, folded.threshold) <= 0.001
    # a validation split of 400 benign packages (the size issue 11 names) allows none: the outlier sets it
    small_idx = [i for i in range(len(labels)) if labels[i] == 1][:120] + [
        i for i in range(len(labels)) if labels[i] == 0
    ][:400] + [len(labels) - 1]
    small = choose_threshold([labels[i] for i in small_idx], [scores[i] for i in small_idx], 0.001)
    assert small > 0.995
    # fold by fold: each fold judged at its complement's threshold, the counts add up
    assert len(folded.fold_thresholds) == len(folded.fold_fpr) == 5
    assert folded.tp + folded.fn == 600 and folded.fp + folded.tn == 3001
    assert 0 < folded.recall <= 1 and folded.fpr <= 0.01
    assert folded.summary()["held_out"] == {"tp": folded.tp, "fp": folded.fp, "fn": folded.fn, "tn": folded.tn}


def test_threshold_respects_a_stratum_limit() -> None:
    labels, scores, groups = _synthetic(2000, 400, seed=4)
    strata = ["popular" if i % 2 else "long-tail" for i in range(len(labels))]
    loose = cross_validated_threshold(labels, scores, groups, 0.01, strata=strata, folds=4)
    tight = cross_validated_threshold(
        labels, scores, groups, 0.01, strata=strata, max_fpr_by_stratum={"popular": 0.0}, folds=4
    )
    assert tight.threshold >= loose.threshold
    popular = [i for i, s in enumerate(strata) if s == "popular"]
    assert fpr_at([labels[i] for i in popular], [scores[i] for i in popular], tight.threshold) == 0.0


def test_inputs_must_line_up() -> None:
    with pytest.raises(ValueError):
        cross_validated_threshold([0, 1], [0.1], ["a", "b"], 0.01)
    with pytest.raises(ValueError):
        grouped_folds(["a"], [0], folds=1)


@dataclass
class _MeanOfOwnFold:
    """A 'model' that scores 1.0 exactly the items it was fitted on: shows what each scorer saw."""

    seen: list[list[float]]

    def __call__(self, columns: list[list[float]], labels: list[int]) -> object:
        self.seen.append(sorted(columns[0]))
        ids = set(columns[0])
        return lambda row: 1.0 if row[0] in ids else 0.0


def test_cross_fitted_scores_never_come_from_a_model_fitted_on_the_same_group() -> None:
    labels, scores, groups = _synthetic(200, 60, seed=5)
    ids = [float(i) for i in range(len(labels))]
    fitter = _MeanOfOwnFold([])
    out = cross_fitted_scores([ids, scores], labels, groups, fitter, folds=5)  # type: ignore[arg-type]
    # every item was scored by a model that never saw it (the fake returns 1.0 for seen items)
    assert out == [0.0] * len(labels)
    assert len(fitter.seen) == 5
