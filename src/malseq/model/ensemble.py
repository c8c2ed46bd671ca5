"""Combining the sequence model's score with the metadata model's score (logistic stacking).

`fit_stack` fits p = sigmoid(b + a * logit(sequence) + c * logit(metadata)) on the validation
split (the base models never saw it); `Ensemble` evaluates it in pure Python. The combination
is kept only if it beats the sequence model alone on the held-out test split (decided by the
training/evaluation run and recorded in the model card); otherwise no `ensemble.json` ships
and the scan uses the sequence score alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EPS = 1e-6


def logit(p: float) -> float:
    p = min(1 - EPS, max(EPS, p))
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class Ensemble:
    weights: tuple[float, float]  # (sequence, metadata) on the logit scale
    intercept: float
    threshold: float = 0.5
    info: Mapping[str, Any] = field(default_factory=dict)

    def score(self, sequence: float, metadata: float) -> float:
        return _sigmoid(self.intercept + self.weights[0] * logit(sequence) + self.weights[1] * logit(metadata))

    def save(self, path: Path) -> None:
        doc = {"weights": list(self.weights), "intercept": self.intercept, "threshold": self.threshold,
               "info": dict(self.info)}
        Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Ensemble:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        w = doc["weights"]
        return cls((float(w[0]), float(w[1])), float(doc["intercept"]), float(doc.get("threshold", 0.5)),
                   doc.get("info") or {})


def fit_stack(
    sequence_scores: Sequence[float], metadata_scores: Sequence[float], labels: Sequence[int], l2: float = 0.1,
    iterations: int = 100,
) -> Ensemble:
    """Logistic regression on the two logits (Newton's method, numpy; training only)."""
    import numpy as np

    x = np.array([[1.0, logit(a), logit(b)] for a, b in zip(sequence_scores, metadata_scores, strict=True)])
    y = np.array(labels, dtype=np.float64)
    beta = np.array([0.0, 1.0, 0.0])
    reg = np.array([0.0, l2, l2])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(x @ beta)))
        grad = x.T @ (p - y) + reg * beta
        h = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg) + 1e-9 * np.eye(3)
        step = np.linalg.solve(h, grad)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return Ensemble((float(beta[1]), float(beta[2])), float(beta[0]))
