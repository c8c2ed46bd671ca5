"""The delta model: a verdict on what a release adds, trained on deltas (issue 12).

`malseq.diff.delta` scores the added steps with the whole-package sequence model, which never saw a
delta. This module holds what the lab trains for deltas instead: gradient-boosted trees (the same
JSON tree format and pure-Python evaluator as the behaviour-profile model, `malseq.model.profile`)
over features of the diff (`DeltaFacts`): the added behaviours by execution stage, how many there are,
those OLD had later in its sequence, removed behaviours, new install hooks, dependencies, binaries and
network destinations, and the sequence model's scores of NEW and of the delta.

The trained model ships as `DELTA_MODEL_FILE` next to the model card, with its verdict threshold, how
that threshold was chosen, and how the tree score is combined with the sequence model's delta score.
A diff whose NEW adds no behaviour gets no delta score from either model (nothing was added to judge).
"""

from __future__ import annotations

import gzip
import json
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from malseq.errors import ModelNotAvailableError
from malseq.model._math import sigmoid
from malseq.model.profile import Tree, TreeModel

__all__ = [
    "DELTA_MODEL_FILE",
    "DeltaFacts",
    "DeltaModel",
    "delta_features",
    "facts_of",
    "load_delta_model",
]

DELTA_MODEL_FILE = "delta_model.json.gz"
NO_STEP = "none"  # the stage word of an added behaviour that no step of NEW's sequence holds
COMBINATIONS = ("trees", "max")  # the tree score alone, or the larger of it and the sequence model's delta score


@dataclass(frozen=True)
class DeltaFacts:
    """What the delta model reads of one diff (JSON-able, so the lab can keep it without the diff)."""

    ecosystem: str
    added: tuple[str, ...]  # "stage:behaviour" per added behaviour, in NEW's execution order
    moved: tuple[str, ...]  # of those, OLD had them at a later stage or unreached: "old stage:behaviour"
    removed: tuple[str, ...]  # "stage:behaviour" per removed behaviour
    hooks: tuple[str, ...]  # "change:kind" per install-hook change ("added:npm_script")
    dependencies: tuple[str, ...]  # "added", "removed" or "changed" per dependency change
    binaries_added: int
    destinations: tuple[str, ...]  # the kind ("url", "host", "ip") per network destination NEW adds
    new_score: float | None  # the sequence model (or shipped ensemble) on NEW alone
    sequence_delta_score: float | None  # the sequence model on the delta text (`malseq.diff.delta`)

    def to_dict(self) -> dict[str, Any]:
        return {"ecosystem": self.ecosystem, "added": list(self.added), "moved": list(self.moved),
                "removed": list(self.removed), "hooks": list(self.hooks), "dependencies": list(self.dependencies),
                "binaries_added": self.binaries_added, "destinations": list(self.destinations),
                "new_score": self.new_score, "sequence_delta_score": self.sequence_delta_score}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DeltaFacts:
        def floats(value: Any) -> float | None:
            return None if value is None else float(value)

        return cls(str(doc["ecosystem"]), tuple(doc["added"]), tuple(doc["moved"]), tuple(doc["removed"]),
                   tuple(doc["hooks"]), tuple(doc["dependencies"]), int(doc["binaries_added"]),
                   tuple(doc["destinations"]), floats(doc["new_score"]), floats(doc["sequence_delta_score"]))


def facts_of(diff: Any, sequence_delta_score: float | None = None) -> DeltaFacts:
    """The facts of a `malseq.diff.PackageDiff` (typed `Any` here: `malseq.diff` imports this module)."""
    def staged(stage: Any, behaviour: str) -> str:
        return f"{stage.value if stage is not None else NO_STEP}:{behaviour}"

    ecosystem = diff.new.package.ecosystem.value if diff.new.package is not None else ""
    return DeltaFacts(
        ecosystem=ecosystem,
        added=tuple(staged(d.stage, d.event.behaviour) for d in diff.added_behaviours),
        moved=tuple(staged(d.old_stage, d.event.behaviour) for d in diff.added_behaviours if d.moved),
        removed=tuple(staged(d.stage, d.event.behaviour) for d in diff.removed_behaviours),
        hooks=tuple(f"{h.change}:{h.kind}" for h in diff.install_hooks),
        dependencies=tuple(d.change for d in diff.dependencies),
        binaries_added=len(diff.binaries_added),
        destinations=tuple(d.kind for d in diff.destinations_added),
        new_score=diff.new.score,
        sequence_delta_score=sequence_delta_score,
    )


def _logit(p: float | None) -> float:
    if p is None:
        return -20.0
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def delta_features(facts: DeltaFacts) -> dict[str, float]:
    """Named feature values (absent names are 0). Counts, so a tree can split on "at least k"."""
    out: defaultdict[str, float] = defaultdict(float)
    out["ecosystem=npm"] = float(facts.ecosystem == "npm")
    out["added"] = float(len(facts.added))
    out["added_distinct"] = float(len(set(facts.added)))
    out["moved"] = float(len(facts.moved))
    out["removed"] = float(len(facts.removed))
    for item in facts.added:
        stage, _, behaviour = item.partition(":")
        out[f"a:{item}"] += 1
        out[f"a:{behaviour}"] += 1
        out[f"stage:{stage}"] += 1
    for item in facts.moved:
        out[f"moved_from:{item.partition(':')[0]}"] += 1
    for item in facts.removed:
        out[f"r:{item.partition(':')[2]}"] += 1
    for hook in facts.hooks:
        out[f"hook:{hook}"] += 1
    for change in facts.dependencies:
        out[f"dependency:{change}"] += 1
    out["binaries_added"] = float(facts.binaries_added)
    out["destinations"] = float(len(facts.destinations))
    for kind in facts.destinations:
        out[f"destination:{kind}"] += 1
    out["new_score_logit"] = _logit(facts.new_score)
    out["sequence_delta_logit"] = _logit(facts.sequence_delta_score)
    return {k: float(v) for k, v in out.items() if v}


@dataclass(frozen=True)
class DeltaModel:
    """The trained delta model: trees, the verdict thresholds and how the score is made."""

    trees: TreeModel
    threshold: float  # the low-fpr operating point, for any ecosystem without its own
    thresholds: tuple[tuple[str, float], ...]  # low-fpr, per ecosystem
    combination: str  # one of COMBINATIONS
    info: tuple[tuple[str, str], ...] = ()  # how it was trained and thresholded
    path: str = ""
    balanced_threshold: float | None = None  # the balanced operating point (None: the low-fpr one serves)

    def score(self, facts: DeltaFacts) -> float:
        row = delta_features(facts)
        index = self.trees._index
        columns = {index[name]: value for name, value in row.items() if name in index}
        trees = sigmoid(self.trees.baseline + sum(t.predict(columns) for t in self.trees.trees))
        if self.combination == "max" and facts.sequence_delta_score is not None:
            return max(trees, facts.sequence_delta_score)
        return trees

    def threshold_for(self, ecosystem: str, operating_point: str = "low-fpr") -> float:
        if operating_point == "balanced" and self.balanced_threshold is not None:
            return self.balanced_threshold
        return dict(self.thresholds).get(ecosystem, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "delta model", "combination": self.combination, "threshold": self.threshold,
                "thresholds": dict(self.thresholds), "balanced_threshold": self.balanced_threshold,
                "info": dict(self.info), "trees": self.trees.to_dict()}

    def save(self, path: Path) -> None:
        data = json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode()
        Path(path).write_bytes(gzip.compress(data, mtime=0))

    @classmethod
    def load(cls, path: Path) -> DeltaModel:
        """Raises `ModelNotAvailableError` (with what to do) when the file is unreadable or malformed."""
        try:
            doc = json.loads(gzip.decompress(Path(path).read_bytes()))
            if doc.get("kind") != "delta model" or doc.get("combination") not in COMBINATIONS:
                raise ValueError("not a delta model file")
            tree_doc = doc["trees"]
            trees = TreeModel(
                tuple(str(f) for f in tree_doc["features"]), float(tree_doc["baseline"]),
                tuple(Tree(tuple(map(int, f)), tuple(map(float, t)), tuple(map(int, lft)), tuple(map(int, rgt)),
                           tuple(map(float, val)))
                      for f, t, lft, rgt, val in tree_doc["trees"]))
            for tree in trees.trees:
                n = len(tree.feature)
                if not (n == len(tree.threshold) == len(tree.left) == len(tree.right) == len(tree.value)) or any(
                        not -1 <= k < n for k in (*tree.left, *tree.right)) or any(
                        not 0 <= f < len(trees.features) for f, lft in zip(tree.feature, tree.left, strict=True)
                        if lft != -1):
                    raise ValueError("a tree's nodes point outside it")
            thresholds = tuple(sorted((str(k), float(v)) for k, v in dict(doc.get("thresholds") or {}).items()))
            info = tuple(sorted((str(k), str(v)) for k, v in dict(doc.get("info") or {}).items()))
            balanced = doc.get("balanced_threshold")
            return cls(trees, float(doc["threshold"]), thresholds, str(doc["combination"]), info, str(path),
                       None if balanced is None else float(balanced))
        except (OSError, EOFError, gzip.BadGzipFile, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelNotAvailableError(
                f"the delta model {path} cannot be read ({type(exc).__name__}: {str(exc)[:120]})",
                hint="reinstall malseq, or remove the file to fall back to the sequence model's delta score",
            ) from exc


def load_delta_model(model_dir: Path) -> DeltaModel | None:
    """The delta model shipped in `model_dir`, None when the folder has none; raises
    `ModelNotAvailableError` when the file is there but cannot be read."""
    path = Path(model_dir) / DELTA_MODEL_FILE
    if not path.is_file():
        return None
    return DeltaModel.load(path)
