from __future__ import annotations

import math
import random

import pytest

from malseq_lab.evaluate.metrics import (
    average_precision,
    best_f1_threshold,
    compute_metrics,
    confusion,
    recall_at_fpr,
    roc_auc,
)

LABELS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
SCORES = [0.9, 0.8, 0.4, 0.3, 0.85, 0.5, 0.2, 0.1, 0.1, 0.05]


def test_confusion_by_hand() -> None:
    c = confusion(LABELS, SCORES, 0.5)
    # flagged: 0.9(1) 0.8(1) 0.85(0) 0.5(0)
    assert (c.tp, c.fp, c.tn, c.fn) == (2, 2, 4, 2)
    assert c.precision == 0.5 and c.recall == 0.5 and c.f1 == 0.5
    assert c.fpr == pytest.approx(2 / 6)
    assert c.mcc == pytest.approx((2 * 4 - 2 * 2) / math.sqrt(4 * 4 * 6 * 6))


def test_auc_by_hand() -> None:
    # pairs (pos, neg) where pos > neg: 0.9 beats 6, 0.8 beats 5, 0.4 beats 4, 0.3 beats 4 -> 19 of 24
    assert roc_auc(LABELS, SCORES) == pytest.approx(19 / 24)
    assert roc_auc([1, 0], [0.5, 0.5]) == 0.5
    assert roc_auc([1, 1], [0.1, 0.2]) is None
    # AP: ranks 0.9(P) 0.85(N) 0.8(P) 0.5(N) 0.4(P) 0.3(P): 1/4*(1 + 2/3 + 3/5 + 4/6)
    assert average_precision(LABELS, SCORES) == pytest.approx((1 + 2 / 3 + 3 / 5 + 4 / 6) / 4)


def test_recall_at_fpr_by_hand() -> None:
    assert recall_at_fpr(LABELS, SCORES, 0.0) == (0.25, 0.9)
    assert recall_at_fpr(LABELS, SCORES, 1 / 6) == (0.5, 0.8)
    assert recall_at_fpr(LABELS, SCORES, 2 / 6)[0] == 1.0


def test_best_threshold_and_strata() -> None:
    t = best_f1_threshold(LABELS, SCORES)
    assert t == 0.3  # flags 4 TP + 2 FP: F1 0.8
    strata = ["malicious"] * 4 + ["popular", "popular", "long-tail", "long-tail", "long-tail", "popular"]
    m = compute_metrics(LABELS, SCORES, 0.5, strata)
    assert m.fpr_by_stratum == {"long-tail": 0.0, "popular": pytest.approx(2 / 3)}
    assert m.benign_by_stratum == {"long-tail": 3, "popular": 3}
    assert (m.tp, m.fp, m.tn, m.fn) == (2, 2, 4, 2)


def test_against_sklearn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = random.Random(5)
    labels = [rng.random() < 0.3 for _ in range(400)]
    scores = [round(rng.random() * (1.5 if y else 1.0), 2) for y in labels]  # rounding makes ties
    labels = [int(y) for y in labels]
    assert roc_auc(labels, scores) == pytest.approx(sk.roc_auc_score(labels, scores))
    assert average_precision(labels, scores) == pytest.approx(sk.average_precision_score(labels, scores))
    pred = [int(s >= 0.6) for s in scores]
    m = compute_metrics(labels, scores, 0.6)
    assert m.precision == pytest.approx(sk.precision_score(labels, pred))
    assert m.recall == pytest.approx(sk.recall_score(labels, pred))
    assert m.f1 == pytest.approx(sk.f1_score(labels, pred))
    assert m.mcc == pytest.approx(sk.matthews_corrcoef(labels, pred))
