"""The behaviour-profile model: gradient-boosted trees over a package's behaviour counts.

The sequence model reads at most `max_len` tokens of the ordered behaviour text and never sees
how often a behaviour occurs or how large the package is. This model sees exactly that: per
behaviour the number of events in the whole package, behaviour bigrams of the sequence, the
number of events and of distinct behaviours, and the ecosystem; and, read from the model text,
per stage (install, import, use, unreached) the number of steps and of each behaviour, so that a
package whose few steps all run at install time is not judged by totals that look like any small
library's (models fitted before the stage columns existed have none and score as before). It is stacked with the
sequence model (`malseq.model.ensemble`) when that helps on the held-out split.

Training (the lab: `malseq_lab.model.fit`) uses scikit-learn's `HistGradientBoostingClassifier`
and copies its trees into plain lists, stored as JSON, so scanning walks them here in pure Python
with no scikit-learn or numpy (about 300 trees of at most 31 leaves: well under a millisecond per
package).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from malseq.model._math import sigmoid

PROFILE_FILE = "profile_model.json.gz"


@dataclass(frozen=True)
class BehaviourProfile:
    """What the profile model sees of one package."""

    ecosystem: str
    behaviours: tuple[str, ...]  # every event's behaviour id (any order)
    sequence: tuple[str, ...]  # behaviour ids in sequence order
    staged: tuple[str, ...] = ()  # "stage:behaviour id" per step of the model text (`staged_steps`)


_STAGE_WORDS = ("install", "import", "use", "unreached")


def staged_steps(text: str) -> tuple[str, ...]:
    """The model text's steps as "stage:behaviour id", in text order.

    Reads the text `malseq.sequence.render_text` writes ("install : phrase , phrase ; import : ...",
    lower-cased by `model_text`); a phrase outside the catalogue keeps its words joined by "_", a
    block whose stage word is unknown (e.g. the diff's "delta" marker before the first block) is
    read under the stage word that follows the marker.
    """
    from malseq.features.catalogue import BY_ID

    by_phrase = {b.phrase.lower(): b.id for b in BY_ID.values()}
    out: list[str] = []
    for block in text.split(" ; "):
        head, sep, body = block.partition(" : ")
        if not sep:
            continue
        words = head.split()
        stage = words[-1] if words else ""
        if stage not in _STAGE_WORDS:
            continue
        for phrase in body.split(" , "):
            phrase = phrase.strip()
            if phrase:
                out.append(f"{stage}:{by_phrase.get(phrase, phrase.replace(' ', '_'))}")
    return tuple(out)


def bigrams(sequence: Sequence[str]) -> list[str]:
    return [f"{a}>{b}" for a, b in zip(sequence, sequence[1:], strict=False) if a != b]


def feature_values(item: BehaviourProfile, index: Mapping[str, int]) -> dict[int, float]:
    """The non-zero features of one package, column -> value."""
    row: dict[int, float] = {0: float(item.ecosystem == "npm"), 1: float(len(item.behaviours)),
                             2: float(len(set(item.behaviours)))}
    for b, c in Counter(item.behaviours).items():
        col = index.get(f"n:{b}")
        if col is not None:
            row[col] = float(c)
    for g, c in Counter(bigrams(item.sequence)).items():
        col = index.get(f"bi:{g}")
        if col is not None:
            row[col] = float(c)
    for name, c in staged_counts(item.staged).items():
        col = index.get(name)
        if col is not None:
            row[col] = float(c)
    return row


def staged_counts(staged: Sequence[str]) -> Counter[str]:
    """Per-stage feature counts: "st:stage:id" per behaviour and "stn:stage" steps per stage."""
    counts: Counter[str] = Counter(f"st:{s}" for s in staged)
    counts.update(f"stn:{s.partition(':')[0]}" for s in staged)
    return counts


@dataclass(frozen=True)
class Tree:
    """One regression tree as parallel lists; node 0 is the root, `left[k] == -1` marks a leaf."""

    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    value: tuple[float, ...]

    def predict(self, row: Mapping[int, float]) -> float:
        k = 0
        while self.left[k] != -1:
            # scikit-learn's rule for numeric features: go left when x <= threshold
            k = self.left[k] if row.get(self.feature[k], 0.0) <= self.threshold[k] else self.right[k]
        return self.value[k]


@dataclass(frozen=True)
class TreeModel:
    """A binary gradient-boosted tree ensemble: P(malicious) = sigmoid(baseline + sum of trees)."""

    features: tuple[str, ...]
    baseline: float
    trees: tuple[Tree, ...]

    def score(self, item: BehaviourProfile) -> float:
        row = feature_values(item, self._index)
        return sigmoid(self.baseline + sum(t.predict(row) for t in self.trees))

    def scores(self, items: Sequence[BehaviourProfile]) -> list[float]:
        return [self.score(i) for i in items]

    @property
    def _index(self) -> dict[str, int]:
        cached: dict[str, int] | None = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {n: k for k, n in enumerate(self.features)}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "gradient-boosted trees", "features": list(self.features), "baseline": self.baseline,
                "trees": [[list(t.feature), list(t.threshold), list(t.left), list(t.right), list(t.value)]
                          for t in self.trees]}

    def save(self, path: Path) -> None:
        data = json.dumps(self.to_dict(), separators=(",", ":")).encode()
        Path(path).write_bytes(gzip.compress(data, mtime=0) if str(path).endswith(".gz") else data)

    @classmethod
    def load(cls, path: Path) -> TreeModel:
        raw = Path(path).read_bytes()
        doc = json.loads(gzip.decompress(raw) if str(path).endswith(".gz") else raw)
        trees = tuple(  # map(): the same values as a generator per list, in two thirds of a scan's load time
            Tree(tuple(map(int, f)), tuple(map(float, t)), tuple(map(int, lft)), tuple(map(int, rgt)),
                 tuple(map(float, val)))
            for f, t, lft, rgt, val in doc["trees"]
        )
        return cls(tuple(doc["features"]), float(doc["baseline"]), trees)
