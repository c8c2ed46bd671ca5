"""The fitting halves of the shipped models (training only; needs numpy and scikit-learn).

The scanner evaluates what these fit in pure Python: `malseq.model.profile.TreeModel` (the
behaviour-profile model) and `malseq.model.ensemble.Ensemble` (the logistic stack).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from malseq.model._math import logit
from malseq.model.ensemble import Ensemble
from malseq.model.profile import BehaviourProfile, Tree, TreeModel, bigrams, feature_values, staged_counts


def vocabulary(items: Sequence[BehaviourProfile], min_bigram_count: int = 3) -> tuple[str, ...]:
    """Feature names: fixed columns, one count per catalogue behaviour, bigrams seen in >= N packages."""
    from malseq.features.catalogue import IDS

    names = ["ecosystem=npm", "events", "distinct"] + [f"n:{b}" for b in sorted(IDS)]
    seen = {f"n:{b}" for i in items for b in i.behaviours} - set(names)
    names += sorted(seen)  # behaviour ids outside the catalogue, if an extractor adds some
    bigram_docs = Counter(g for i in items for g in set(bigrams(i.sequence)))
    names += sorted(f"bi:{g}" for g, c in bigram_docs.items() if c >= min_bigram_count)
    # per-stage columns seen in >= N packages (a stage's step count, each behaviour's count in a stage)
    staged_docs = Counter(n for i in items for n in staged_counts(i.staged))
    names += sorted(n for n, c in staged_docs.items() if c >= min_bigram_count)
    return tuple(names)


def matrix(items: Sequence[BehaviourProfile], features: Sequence[str]) -> Any:
    """The dense float32 feature matrix (training and evaluation; needs numpy)."""
    import numpy as np

    index = {n: k for k, n in enumerate(features)}
    x = np.zeros((len(items), len(features)), dtype=np.float32)
    for r, item in enumerate(items):
        for col, value in feature_values(item, index).items():
            x[r, col] = value
    return x


def tree_model_from_sklearn(model: Any, features: Sequence[str]) -> TreeModel:
    """Copy a fitted binary `HistGradientBoostingClassifier` (numeric features, no missing values)."""
    if getattr(model, "n_trees_per_iteration_", 1) != 1:
        raise ValueError("only binary classifiers can be copied")
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits are not supported")
        leaf = nodes["is_leaf"].astype(bool)
        trees.append(Tree(
            feature=tuple(int(v) for v in nodes["feature_idx"]),
            threshold=tuple(float(v) for v in nodes["num_threshold"]),
            left=tuple(-1 if is_leaf else int(v) for v, is_leaf in zip(nodes["left"], leaf, strict=True)),
            right=tuple(-1 if is_leaf else int(v) for v, is_leaf in zip(nodes["right"], leaf, strict=True)),
            value=tuple(float(v) for v in nodes["value"]),
        ))
    baseline = float(model._baseline_prediction.ravel()[0])
    return TreeModel(tuple(features), baseline, tuple(trees))


def fit_sklearn(
    items: Sequence[BehaviourProfile], labels: Sequence[int], *, seed: int = 0, max_iter: int = 300,
    threads: int = 1, min_bigram_count: int = 3,
) -> tuple[Any, tuple[str, ...]]:
    """Fit the scikit-learn model (training only) and return it with its feature names."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    features = vocabulary(items, min_bigram_count)
    model = HistGradientBoostingClassifier(
        max_iter=max_iter,
        learning_rate=0.08,
        max_leaf_nodes=31,
        l2_regularization=1.0,
        early_stopping=len(items) >= 200,
        validation_fraction=0.15,
        n_iter_no_change=20,
        random_state=seed,
    )
    # OpenMP threads: more than one thrashes badly on a shared 2-core machine
    with threadpool_limits(limits=threads):
        model.fit(matrix(items, features), list(labels))
    return model, features


def fit_tree_model(items: Sequence[BehaviourProfile], labels: Sequence[int], *, seed: int = 0) -> TreeModel:
    model, features = fit_sklearn(items, labels, seed=seed)
    return tree_model_from_sklearn(model, features)


def fit_stack(
    columns: Sequence[Sequence[float]], labels: Sequence[int], components: Sequence[str],
    l2: float = 0.1, iterations: int = 100,
) -> Ensemble:
    """Logistic regression on the components' logits (Newton's method, numpy; training only).

    `columns[k][i]` is component k's score for sample i; the first component starts with weight 1.
    """
    import numpy as np

    k = len(columns)
    x = np.array([[1.0, *(logit(c[i]) for c in columns)] for i in range(len(labels))])
    y = np.array(labels, dtype=np.float64)
    beta = np.array([0.0, 1.0] + [0.0] * (k - 1))
    reg = np.array([0.0] + [l2] * k)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(x @ beta)))
        grad = x.T @ (p - y) + reg * beta
        h = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg) + 1e-9 * np.eye(k + 1)
        step = np.linalg.solve(h, grad)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return Ensemble(tuple(float(b) for b in beta[1:]), float(beta[0]), components=tuple(components))
