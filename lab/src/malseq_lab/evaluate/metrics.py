"""Binary-classification metrics in plain Python (checked against scikit-learn in the tests).

Scores: higher means more likely malicious; a sample is flagged when score >= threshold.
Labels: 1 malicious, 0 benign.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def fpr(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def mcc(self) -> float:
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
        den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return (tp * tn - fp * fn) / den if den else 0.0


def confusion(labels: Sequence[int], scores: Sequence[float], threshold: float) -> Confusion:
    tp = fp = tn = fn = 0
    for y, s in zip(labels, scores, strict=True):
        flagged = s >= threshold
        if y:
            tp += flagged
            fn += not flagged
        else:
            fp += flagged
            tn += not flagged
    return Confusion(tp, fp, tn, fn)


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """Probability that a random malicious sample outscores a random benign one (ties 1/2)."""
    pairs = sorted(zip(scores, labels, strict=True))
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    if not pos or not neg:
        return None
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg_rank = (i + 1 + j) / 2  # ranks i+1 .. j
        rank_sum += avg_rank * sum(1 for _, y in pairs[i:j] if y)
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def _operating_points(labels: Sequence[int], scores: Sequence[float]) -> list[tuple[float, int, int]]:
    """(threshold, tp, fp) for every distinct score, from the highest down."""
    pairs = sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])
    out = []
    tp = fp = 0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            tp += pairs[j][1] != 0
            fp += pairs[j][1] == 0
            j += 1
        out.append((pairs[i][0], tp, fp))
        i = j
    return out


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """PR-AUC as average precision: sum over thresholds of (R_n - R_{n-1}) * P_n (sklearn's definition)."""
    pos = sum(1 for y in labels if y)
    if not pos:
        return None
    ap = 0.0
    prev_recall = 0.0
    for _, tp, fp in _operating_points(labels, scores):
        recall = tp / pos
        ap += (recall - prev_recall) * (tp / (tp + fp))
        prev_recall = recall
    return ap


def pr_curve(labels: Sequence[int], scores: Sequence[float]) -> list[tuple[float, float, float]]:
    """(threshold, precision, recall) from the highest threshold down."""
    pos = sum(1 for y in labels if y)
    return [(t, tp / (tp + fp), tp / pos if pos else 0.0) for t, tp, fp in _operating_points(labels, scores)]


def recall_at_fpr(labels: Sequence[int], scores: Sequence[float], max_fpr: float) -> tuple[float, float | None]:
    """Best recall with a false-positive rate <= max_fpr, and the threshold giving it.

    With N benign samples the finest FPR step is 1/N: at 586 benign, 0.1% allows no false positive.
    """
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    if not pos or not neg:
        return 0.0, None
    best, best_t = 0.0, None
    for t, tp, fp in _operating_points(labels, scores):
        if fp / neg <= max_fpr and tp / pos >= best:
            best, best_t = tp / pos, t
    return best, best_t


def best_f1_threshold(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The threshold with the highest F1 (ties: the higher threshold)."""
    pos = sum(1 for y in labels if y)
    best, best_t = -1.0, 0.5
    for t, tp, fp in _operating_points(labels, scores):
        p = tp / (tp + fp)
        r = tp / pos if pos else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        if f > best:
            best, best_t = f, t
    return best_t


@dataclass(frozen=True)
class Metrics:
    n: int
    malicious: int
    benign: int
    threshold: float
    precision: float
    recall: float
    f1: float
    mcc: float
    fpr: float
    roc_auc: float | None
    pr_auc: float | None
    recall_at_fpr_0_1pct: float
    recall_at_fpr_1pct: float
    tp: int
    fp: int
    tn: int
    fn: int
    fpr_by_stratum: dict[str, float]
    benign_by_stratum: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def compute_metrics(
    labels: Sequence[int], scores: Sequence[float], threshold: float, strata: Sequence[str] | None = None
) -> Metrics:
    c = confusion(labels, scores, threshold)
    fpr_by: dict[str, float] = {}
    count_by: dict[str, int] = {}
    if strata is not None:
        for name in sorted({s for s, y in zip(strata, labels, strict=True) if not y}):
            idx = [i for i, (s, y) in enumerate(zip(strata, labels, strict=True)) if not y and s == name]
            count_by[name] = len(idx)
            fpr_by[name] = sum(1 for i in idx if scores[i] >= threshold) / len(idx)
    return Metrics(
        n=len(labels),
        malicious=sum(1 for y in labels if y),
        benign=sum(1 for y in labels if not y),
        threshold=threshold,
        precision=c.precision,
        recall=c.recall,
        f1=c.f1,
        mcc=c.mcc,
        fpr=c.fpr,
        roc_auc=roc_auc(labels, scores),
        pr_auc=average_precision(labels, scores),
        recall_at_fpr_0_1pct=recall_at_fpr(labels, scores, 0.001)[0],
        recall_at_fpr_1pct=recall_at_fpr(labels, scores, 0.01)[0],
        tp=c.tp,
        fp=c.fp,
        tn=c.tn,
        fn=c.fn,
        fpr_by_stratum=fpr_by,
        benign_by_stratum=count_by,
    )
