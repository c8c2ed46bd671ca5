"""The delta model (`malseq.diff.delta_model`): the verdict on what a release adds, trained on deltas.

Packages are built in tmp_path from inert text (tests/test_diff.py's fixtures); nothing is installed or run.
"""

from __future__ import annotations

import gzip
import importlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from malseq.diff import PackageDiff, diff_targets
from malseq.diff.delta import clear_delta_models
from malseq.diff.delta_model import DELTA_MODEL_FILE, DeltaFacts, DeltaModel, delta_features, facts_of
from malseq.errors import ModelNotAvailableError
from malseq.model import DATA_DIR
from malseq.model.profile import Tree, TreeModel
from malseq.report.diff_report import render_diff_json, render_diff_text
from malseq.scan import ScanOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
diff_tests: Any = importlib.import_module("test_diff")
npm_benign, npm_stealer = diff_tests.npm_benign, diff_tests.npm_stealer


@pytest.fixture(autouse=True)
def fresh_models() -> Any:
    clear_delta_models()
    yield
    clear_delta_models()


def model_folder(tmp_path: Path, delta_file: bytes | None) -> Path:
    """The shipped model folder's files (the sequence model linked, not copied), with `delta_file` as the delta
    model (None: no delta model)."""
    folder = tmp_path / "model"
    folder.mkdir()
    for path in DATA_DIR.iterdir():
        if path.name == DELTA_MODEL_FILE or not path.is_file():
            continue
        (folder / path.name).symlink_to(path)
    if delta_file is not None:
        (folder / DELTA_MODEL_FILE).write_bytes(delta_file)
    return folder


def stealer(tmp_path: Path, model_dir: Path | None = None) -> PackageDiff:
    old, new = npm_benign(tmp_path / "old"), npm_stealer(tmp_path / "new")
    return diff_targets(str(old), str(new), ScanOptions(model_dir=model_dir))


def test_the_shipped_delta_model_decides_and_flags_an_injected_postinstall_stealer(tmp_path: Path) -> None:
    assert (DATA_DIR / DELTA_MODEL_FILE).is_file()
    diff = stealer(tmp_path)
    delta = diff.delta
    assert delta is not None and delta.decided_by == "delta model" and delta.model == DELTA_MODEL_FILE
    assert delta.verdict == "malicious" and delta.score is not None and delta.threshold is not None
    assert delta.score >= delta.threshold
    model = DeltaModel.load(DATA_DIR / DELTA_MODEL_FILE)
    assert delta.threshold == model.threshold_for("npm")
    # the sequence model's own score of the delta is kept beside the decision
    assert delta.sequence_score is not None and ("delta model", delta.score) in delta.components
    doc = json.loads(render_diff_json(diff))["delta"]
    assert doc["decided_by"] == "delta model" and doc["model"] == DELTA_MODEL_FILE
    assert doc["threshold"] == delta.threshold and doc["sequence_score"] is not None
    assert "delta model delta_model.json.gz" in render_diff_text(diff)


def test_an_identical_pair_has_no_delta_to_score(tmp_path: Path) -> None:
    a, b = npm_benign(tmp_path / "a"), npm_benign(tmp_path / "b")
    diff = diff_targets(str(a), str(b), ScanOptions())
    assert diff.empty and diff.delta is not None
    assert diff.delta.score is None and diff.delta.verdict is None and diff.delta.decided_by == "sequence model"


def test_without_a_delta_model_the_sequence_model_decides(tmp_path: Path) -> None:
    diff = stealer(tmp_path, model_folder(tmp_path, None))
    assert diff.delta is not None and diff.delta.decided_by == "sequence model" and diff.delta.model is None
    assert diff.delta.score == diff.delta.sequence_score and diff.delta.note is None
    assert "sequence model, not trained on deltas" in render_diff_text(diff)


@pytest.mark.parametrize("content", [b"not gzip at all", gzip.compress(b"{\"kind\": \"something else\"}"),
                                     gzip.compress(b"{\"kind\": \"delta model\", \"combination\": \"trees\"}")])
def test_a_corrupt_delta_model_falls_back_to_the_sequence_model_and_says_why(tmp_path: Path, content: bytes) -> None:
    folder = model_folder(tmp_path, content)
    with pytest.raises(ModelNotAvailableError, match="cannot be read"):
        DeltaModel.load(folder / DELTA_MODEL_FILE)
    diff = stealer(tmp_path, folder)
    delta = diff.delta
    assert delta is not None and delta.decided_by == "sequence model" and delta.score == delta.sequence_score
    assert delta.note is not None and "delta model not used" in delta.note and "cannot be read" in delta.note
    assert "delta model not used" in render_diff_text(diff)


def test_a_tree_pointing_outside_itself_is_refused(tmp_path: Path) -> None:
    bad = TreeModel(("added",), 0.0, (Tree((0,), (0.5,), (5,), (6,), (0.0,)),))
    path = tmp_path / DELTA_MODEL_FILE
    DeltaModel(bad, 0.5, (), "trees").save(path)
    with pytest.raises(ModelNotAvailableError, match="outside"):
        DeltaModel.load(path)


def test_facts_and_features_of_an_injected_stealer(tmp_path: Path) -> None:
    diff = stealer(tmp_path, model_folder(tmp_path, None))
    facts = facts_of(diff, 0.25)
    assert facts.ecosystem == "npm" and facts.sequence_delta_score == 0.25
    assert "added:npm_script" in facts.hooks and "added" in facts.dependencies
    assert all(a.startswith("install:") for a in facts.added)
    assert DeltaFacts.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts
    features = delta_features(facts)
    assert features["stage:install"] == len(facts.added) and features["hook:added:npm_script"] == 1
    assert features["a:install:network_request"] >= 1 and features["ecosystem=npm"] == 1


def test_a_saved_model_scores_as_before_and_the_combination_is_applied(tmp_path: Path) -> None:
    # one stump: "stage:install" > 0.5 -> +4, else -4
    stump = TreeModel(("stage:install",), 0.0, (Tree((0, 0, 0), (0.5, 0.0, 0.0), (1, -1, -1), (2, -1, -1),
                                                     (0.0, -4.0, 4.0)),))
    facts = DeltaFacts("npm", ("install:network_request",), (), (), (), (), 0, (), 0.1, 0.9)
    quiet = DeltaFacts("npm", ("use:read_file",), (), (), (), (), 0, (), 0.1, 0.9)
    for combination, high, low in (("trees", 0.982, 0.018), ("max", 0.982, 0.9)):
        model = DeltaModel(stump, 0.7, (("pypi", 0.8),), combination, (("threshold_rule", "test"),),
                           balanced_threshold=0.5)
        model.save(tmp_path / DELTA_MODEL_FILE)
        loaded = DeltaModel.load(tmp_path / DELTA_MODEL_FILE)
        assert loaded.score(facts) == pytest.approx(high, abs=1e-3)
        assert loaded.score(quiet) == pytest.approx(low, abs=1e-3)
        assert loaded.threshold_for("npm") == 0.7 and loaded.threshold_for("pypi") == 0.8
        assert loaded.threshold_for("npm", "balanced") == 0.5 and dict(loaded.info)["threshold_rule"] == "test"


def test_the_lab_copy_of_the_trees_scores_as_scikit_learn_does() -> None:
    pytest.importorskip("sklearn")
    from malseq_lab.model.delta import fit_trees, matrix

    items = [DeltaFacts("npm" if i % 3 else "pypi", tuple(["install:network_request"] * (i % 4)
                                                          + ["use:read_file"] * (i % 5)),
                        (), ("use:read_file",) * (i % 2), (), (), 0, (), (i % 7) / 7, (i % 11) / 11)
             for i in range(1, 120)]
    items = [f for f in items if f.added]
    labels = [int("install:network_request" in f.added and (f.sequence_delta_score or 0) > 0.3) for f in items]
    trees = fit_trees(items, labels, lambda name: True)
    model = DeltaModel(trees, 0.5, (), "trees")
    from sklearn.ensemble import HistGradientBoostingClassifier

    refit = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=10,
                                           l2_regularization=1.0, early_stopping=False, random_state=0)
    refit.fit(matrix(items, trees.features), labels)
    expected = refit.predict_proba(matrix(items, trees.features))[:, 1]
    assert [model.score(f) for f in items] == pytest.approx(list(expected), abs=1e-6)


def test_the_shipped_file_is_small_and_records_its_threshold_rule() -> None:
    path = DATA_DIR / DELTA_MODEL_FILE
    assert path.stat().st_size < 200_000
    doc = json.loads(gzip.decompress(path.read_bytes()))
    assert doc["kind"] == "delta model" and 0 < doc["threshold"] < 1
    assert {"threshold_rule", "trained_on", "chosen_on"} <= set(doc["info"])


def test_a_missing_folder_gives_no_model(tmp_path: Path) -> None:
    from malseq.diff.delta_model import load_delta_model

    assert load_delta_model(tmp_path) is None
    shutil.rmtree(tmp_path)
    assert load_delta_model(tmp_path) is None
