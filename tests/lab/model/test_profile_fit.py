"""The behaviour-profile model: features, the copy of scikit-learn's trees, and its file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from malseq.model.profile import BehaviourProfile, TreeModel, feature_values
from malseq_lab.model.fit import fit_sklearn, matrix, tree_model_from_sklearn, vocabulary

BENIGN_POOL = ["fs_read", "fs_write", "import_os_module", "import_fs_module", "network_request", "use_url", "os_call"]
EVIL_POOL = ["npm_install_script", "read_env", "upload_data", "base64_string", "eval_code", "run_command"]


def _corpus(n: int = 300, seed: int = 7) -> tuple[list[BehaviourProfile], list[int]]:
    rng = random.Random(seed)
    items, labels = [], []
    for i in range(n):
        bad = i % 3 == 0
        pool = BENIGN_POOL + (EVIL_POOL if bad else [])
        seq = [rng.choice(pool) for _ in range(rng.randint(1, 30))]
        items.append(BehaviourProfile(rng.choice(["pypi", "npm"]), tuple(seq + seq[: rng.randint(0, 5)]), tuple(seq)))
        labels.append(int(bad))
    return items, labels


def test_feature_values_count_behaviours_bigrams_and_size() -> None:
    item = BehaviourProfile("npm", ("read_env", "read_env", "upload_data"), ("read_env", "upload_data"))
    features = vocabulary([item], min_bigram_count=1)
    index = {n: k for k, n in enumerate(features)}
    row = feature_values(item, index)
    assert row[index["ecosystem=npm"]] == 1.0
    assert row[index["events"]] == 3.0
    assert row[index["distinct"]] == 2.0
    assert row[index["n:read_env"]] == 2.0
    assert row[index["bi:read_env>upload_data"]] == 1.0
    assert index["n:eval_code"] not in row  # absent behaviours are zeros


def test_rare_bigrams_are_not_features() -> None:
    items = [BehaviourProfile("pypi", (), ("read_env", "upload_data"))] * 2
    assert "bi:read_env>upload_data" not in vocabulary(items, min_bigram_count=3)
    assert "bi:read_env>upload_data" in vocabulary(items, min_bigram_count=2)


def test_copied_trees_score_like_scikit_learn(tmp_path: Path) -> None:
    items, labels = _corpus()
    model, features = fit_sklearn(items, labels, max_iter=60)
    expected = model.predict_proba(matrix(items, features))[:, 1]
    copied = tree_model_from_sklearn(model, features)
    assert len(copied.trees) == model.n_iter_
    assert copied.scores(items) == pytest.approx(list(expected), abs=1e-6)
    # and the model separates the classes it was trained on
    evil = [s for s, y in zip(copied.scores(items), labels, strict=True) if y]
    plain = [s for s, y in zip(copied.scores(items), labels, strict=True) if not y]
    assert sum(evil) / len(evil) > 0.8 > 0.2 > sum(plain) / len(plain)


@pytest.mark.parametrize("name", ["profile.json", "profile.json.gz"])
def test_saved_model_scores_the_same(tmp_path: Path, name: str) -> None:
    items, labels = _corpus(120, seed=3)
    model, features = fit_sklearn(items, labels, max_iter=20)
    copied = tree_model_from_sklearn(model, features)
    copied.save(tmp_path / name)
    again = TreeModel.load(tmp_path / name)
    assert again.features == copied.features
    assert again.scores(items) == copied.scores(items)


def test_unknown_behaviours_are_ignored_at_scoring_time() -> None:
    items, labels = _corpus(120, seed=5)
    model, features = fit_sklearn(items, labels, max_iter=20)
    copied = tree_model_from_sklearn(model, features)
    odd = BehaviourProfile("pypi", ("some_future_behaviour",), ("some_future_behaviour",))
    assert 0.0 <= copied.score(odd) <= 1.0


def test_staged_steps_read_the_model_text_by_stage() -> None:
    from malseq.model.profile import staged_steps

    text = "install : read environment variables , upload data to server ; use : run external command"
    assert staged_steps(text) == ("install:read_env", "install:upload_data", "use:run_command")
    # the diff's marker word before the first stage, and a phrase outside the catalogue
    assert staged_steps("delta import : some new thing") == ("import:some_new_thing",)
    assert staged_steps("") == ()


def test_stage_columns_tell_install_time_from_later_use() -> None:
    """Same behaviours, same counts: only the stage columns separate install-time exfiltration
    from a library that does the same when its API is called."""
    from malseq.model.profile import staged_steps

    evil_text = "install : read environment variables , upload data to server"
    plain_text = "use : read environment variables , upload data to server"
    ids = ("read_env", "upload_data")
    items = [BehaviourProfile("pypi", ids, ids, staged_steps(evil_text if i % 2 else plain_text)) for i in range(60)]
    labels = [i % 2 for i in range(60)]
    features = vocabulary(items)
    assert {"st:install:read_env", "stn:install", "stn:use"} <= set(features)
    index = {n: k for k, n in enumerate(features)}
    row = feature_values(items[1], index)
    assert row[index["st:install:upload_data"]] == 1.0 and row[index["stn:install"]] == 2.0
    assert index["stn:use"] not in row
    model = tree_model_from_sklearn(fit_sklearn(items, labels, max_iter=60)[0], features)
    assert model.score(items[1]) > 0.8 > 0.2 > model.score(items[0])
    # a profile without stage information (a model fitted before the columns, or no text) still scores
    assert 0.0 <= model.score(BehaviourProfile("pypi", ids, ids)) <= 1.0
