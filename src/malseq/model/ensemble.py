"""Combining the sequence model's score with other models' scores (logistic stacking).

The lab (`malseq_lab.model.fit.fit_stack`) fits p = sigmoid(b + sum_k w_k * logit(score_k)) on
the validation split (the base models never saw it); `Ensemble` evaluates it in pure Python.
`components` names the models in order (e.g. `("sequence", "profile")`). A combination is kept
only if it beats the sequence model alone on the held-out test split (decided by the training run
and recorded in the model card); otherwise no `ensemble.json` ships and the scan uses the sequence
score alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from malseq.model import BALANCED, LOW_FPR
from malseq.model._math import logit, sigmoid


@dataclass(frozen=True)
class Ensemble:
    weights: tuple[float, ...]  # one per component, on the logit scale
    intercept: float
    threshold: float = 0.5
    info: Mapping[str, Any] = field(default_factory=dict)
    components: tuple[str, ...] = ("sequence", "profile")
    # per-ecosystem verdict thresholds (each chosen on that ecosystem's validation packages);
    # `threshold` applies to an ecosystem not listed
    thresholds: Mapping[str, float] = field(default_factory=dict)
    # the validation best-F1 threshold: the "balanced" operating point (more recall, more false alarms)
    balanced_threshold: float | None = None

    def has_operating_point(self, operating_point: str) -> bool:
        return operating_point == LOW_FPR or (operating_point == BALANCED and self.balanced_threshold is not None)

    def threshold_for(self, ecosystem: str, operating_point: str = LOW_FPR) -> float | None:
        """The verdict threshold; None when the ensemble has no such operating point."""
        if operating_point == BALANCED:
            return self.balanced_threshold
        return float(self.thresholds.get(ecosystem, self.threshold))

    def score(self, *scores: float) -> float:
        if len(scores) != len(self.weights):
            raise ValueError(f"the ensemble combines {len(self.weights)} scores ({', '.join(self.components)})")
        return sigmoid(self.intercept + sum(w * logit(p) for w, p in zip(self.weights, scores, strict=True)))

    def save(self, path: Path) -> None:
        doc = {"weights": list(self.weights), "intercept": self.intercept, "threshold": self.threshold,
               "components": list(self.components), "thresholds": dict(self.thresholds),
               "balanced_threshold": self.balanced_threshold, "info": dict(self.info)}
        Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Ensemble:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        weights = tuple(float(w) for w in doc["weights"])
        components = tuple(str(c) for c in doc["components"])  # required: a file must say what it combines
        if len(components) != len(weights):
            raise ValueError(f"{path}: {len(weights)} weights for components {components}")
        thresholds = {str(k): float(v) for k, v in (doc.get("thresholds") or {}).items()}
        balanced = doc.get("balanced_threshold")
        return cls(weights, float(doc["intercept"]), float(doc.get("threshold", 0.5)), doc.get("info") or {},
                   components, thresholds, float(balanced) if balanced is not None else None)
