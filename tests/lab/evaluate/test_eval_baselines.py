from __future__ import annotations

import random

import pytest

from malseq_lab.evaluate.baselines import ModelInput, RuleBaseline, TreeBaseline

MAL = ["npm_install_script", "read_env", "encoding_call", "upload_data", "network_request"]
BEN = ["import_fs_module", "fs_read", "fs_write", "import_os_module", "os_call"]


def _data(n: int, seed: int) -> tuple[list[ModelInput], list[int]]:
    rng = random.Random(seed)
    items, labels = [], []
    for i in range(n):
        y = i % 2
        pool = MAL if y else BEN
        seq = [rng.choice(pool) for _ in range(rng.randrange(3, 12))] + [rng.choice(MAL + BEN) for _ in range(2)]
        items.append(ModelInput(rng.choice(["pypi", "npm"]), tuple(seq), tuple(seq)))
        labels.append(y)
    return items, labels


def test_rules_rank_chains_above_plain_code() -> None:
    r = RuleBaseline()
    evil = ModelInput("npm", ("npm_install_script", "read_env", "upload_data"), ())
    plain = ModelInput("npm", ("fs_read", "fs_read", "fs_write") * 50, ())
    s_evil, s_plain = r.scores([evil, plain])
    assert 0 <= s_plain < s_evil < 1
    assert r.scores([ModelInput("pypi", (), ())]) == [0.0]


def test_tree_learns_tiny_synthetic_data() -> None:
    pytest.importorskip("sklearn")
    train, ytrain = _data(240, 1)
    test, ytest = _data(60, 2)
    model = TreeBaseline(min_bigram_count=2, max_iter=50)
    model.fit(train, ytrain)
    assert any(k.startswith("bi:") for k in model.features)
    scores = model.scores(test)
    assert all(0 <= s <= 1 for s in scores)
    acc = sum((s >= 0.5) == bool(y) for s, y in zip(scores, ytest, strict=True)) / len(ytest)
    assert acc > 0.9
    assert model.scores([]) == []
