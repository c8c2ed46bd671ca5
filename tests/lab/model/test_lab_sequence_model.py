"""The lab's training path on a tiny random-initialised BERT: train, export, quantise, then scan with it.

Runs in CI (the `train` extra is installed by `make test`); skipped only when torch is absent.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from malseq.errors import ModelNotAvailableError
from malseq.model.infer import SequenceScorer, verdict
from malseq.model.text import model_text
from malseq_lab.model.threshold import choose_threshold, fpr_at

MALICIOUS_CORE = "install : read environment variables , encode or decode data , upload data to server"
BENIGN_STEPS = [
    "import file system module", "read file", "write file", "import network module", "send network request",
    "import operating system module", "call operating system function", "use url", "spawn process",
]


def _synthetic(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        steps = rng.sample(BENIGN_STEPS, rng.randint(1, 5))
        if i % 2:
            texts.append(MALICIOUS_CORE + " ; import : " + " , ".join(steps))
            labels.append(1)
        else:
            texts.append("import : " + " , ".join(steps))
            labels.append(0)
    return texts, labels


def _tokenizer(path: Path, texts: list[str]) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(texts, trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    out = path / "tokenizer.json"
    tok.save(str(out))
    return out


# -- pure Python parts


def test_threshold_is_lowest_score_within_fpr_budget() -> None:
    labels = [0] * 200 + [1] * 5
    scores = [i / 1000 for i in range(200)] + [0.99, 0.9, 0.5, 0.195, 0.1]
    # 0.5% of 200 benign = 1 false positive allowed: the highest benign score 0.199 may be flagged,
    # the second highest (0.198) may not, so the lowest allowed threshold is 0.199.
    t = choose_threshold(labels, scores, max_fpr=0.005)
    assert t == pytest.approx(0.199)
    assert fpr_at(labels, scores, t) <= 0.005
    assert fpr_at(labels, scores, 0.198) > 0.005
    # no false positive allowed: just above the top benign score
    t0 = choose_threshold(labels, scores, max_fpr=0.0)
    assert t0 == pytest.approx(0.5) and fpr_at(labels, scores, t0) == 0.0


def test_threshold_per_stratum_limit() -> None:
    labels = [0] * 100 + [0] * 100 + [1]
    strata = ["long-tail"] * 100 + ["popular"] * 100 + ["malicious"]
    scores = [0.0] * 99 + [0.8] + [0.0] * 99 + [0.7] + [0.9]
    assert choose_threshold(labels, scores, 0.01, strata) == pytest.approx(0.7)
    # popular limited to 0 false positives: the popular 0.7 must stay below the threshold
    t = choose_threshold(labels, scores, 0.01, strata, {"popular": 0.0})
    assert t == pytest.approx(0.8)


def test_threshold_when_budget_broken_at_top() -> None:
    assert choose_threshold([0, 1], [0.9, 0.1], max_fpr=0.0) > 0.9


def test_shuffled_text_reorders_within_each_stage() -> None:
    from malseq_lab.model.experiment import shuffled_text

    text = "install : a , b , c , d , e ; import : f , g , h"
    s = shuffled_text(text, seed=1)
    install, imp = s.split(" ; ")
    assert install.startswith("install : ") and imp.startswith("import : ")
    assert sorted(install[10:].split(" , ")) == ["a", "b", "c", "d", "e"]
    assert sorted(imp[9:].split(" , ")) == ["f", "g", "h"]
    assert s == shuffled_text(text, seed=1) and s != text


def test_bucketed_batches_cover_every_sample_once_with_little_padding() -> None:
    from malseq_lab.model.train import bucketed_batches

    rng = random.Random(0)
    lengths = [rng.randint(5, 256) for _ in range(1000)]
    batches = bucketed_batches(lengths, 16, random.Random(1), pool=10)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(1 <= len(b) <= 16 for b in batches) and len(batches) == 63  # ceil(1000 / 16)
    assert batches == bucketed_batches(lengths, 16, random.Random(1), pool=10)  # seeded
    assert batches != bucketed_batches(lengths, 16, random.Random(2), pool=10)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    plain = list(range(1000))
    random.Random(1).shuffle(plain)
    padded_plain = sum(max(lengths[i] for i in plain[k : k + 16]) * len(plain[k : k + 16]) for k in range(0, 1000, 16))
    assert padded < 0.7 * padded_plain


# -- the tiny end-to-end run (torch)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("onnx")
    from malseq_lab.model.export import agreement, assemble, export_onnx, quantize
    from malseq_lab.model.train import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny")
    train_texts, train_labels = _synthetic(40, seed=1)
    val_texts, val_labels = _synthetic(20, seed=2)
    tok = _tokenizer(root, train_texts + val_texts)
    events: list[dict[str, object]] = []
    config = TrainConfig(tokenizer=str(tok), tiny={}, max_len=64, batch_size=8, lr=1e-3, epochs=3, patience=3,
                         threads=1, log_every=2)
    result = train(train_texts, train_labels, val_texts, val_labels, config, root / "run", events.append)
    fp32 = export_onnx(result.checkpoint, root / "fp32.onnx", max_len=64)
    from tokenizers import Tokenizer

    int8 = quantize(fp32, root / "int8.onnx", 64, Tokenizer.from_file(str(tok)).get_vocab_size())
    card = {"name": "tiny", "max_len": 64, "threshold": result.threshold, "created": "test"}
    fp32_dir = assemble(root / "fp32", fp32, tok, card)
    int8_dir = assemble(root / "int8", int8, tok, card)
    agree = agreement(fp32_dir, int8_dir, val_texts, result.threshold, val_labels)
    return {"result": result, "events": events, "fp32_dir": fp32_dir, "int8_dir": int8_dir, "agree": agree,
            "val": (val_texts, val_labels), "root": root}


def test_tiny_training_logs_and_learns(tiny_run: dict[str, object]) -> None:
    result = tiny_run["result"]
    events = tiny_run["events"]
    assert isinstance(events, list)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "eval" in kinds and "step" in kinds
    out_dir = result.out_dir  # type: ignore[attr-defined]
    lines = (out_dir / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == len(events)
    summary = json.loads((out_dir / "training.json").read_text())
    assert summary["threshold"] == result.threshold  # type: ignore[attr-defined]
    assert (out_dir / "checkpoint" / "config.json").is_file()
    # the pattern is trivial: the tiny model separates it
    assert summary["val_metrics"]["pr_auc"] > 0.9


def test_onnx_scores_and_agreement(tiny_run: dict[str, object]) -> None:
    val_texts, val_labels = tiny_run["val"]  # type: ignore[misc]
    scorer = SequenceScorer.load(tiny_run["int8_dir"])  # type: ignore[arg-type]
    assert SequenceScorer.load(tiny_run["int8_dir"]) is scorer  # loaded once per process
    scores = scorer.score(val_texts)
    assert len(scores) == len(val_texts)
    assert all(0.0 <= s <= 1.0 for s in scores)
    # order is kept across length-sorted batches; int8 dynamic quantisation scales activations
    # per batch, so another batch composition moves a score slightly
    assert scorer.score(val_texts[:3]) == pytest.approx(scores[:3], abs=1e-3)
    assert scorer.score([]) == []
    agree = tiny_run["agree"]
    assert isinstance(agree, dict)
    assert agree["n"] == len(val_texts)
    assert agree["max_abs_diff"] < 0.2
    assert 0.0 <= agree["verdict_agreement"] <= 1.0
    # the fp32 export reproduces the torch checkpoint's validation scores
    fp32 = SequenceScorer.load(tiny_run["fp32_dir"]).score(val_texts)  # type: ignore[arg-type]
    assert fp32 == pytest.approx(tiny_run["result"].val_scores, abs=1e-4)  # type: ignore[attr-defined]
    low = scorer.threshold_for("low-fpr")
    assert verdict(1.0, low) == "malicious" and verdict(-1.0, low) == "benign"


def _fake_corpus(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """A corpus work dir (samples, split, analysis cache) of 60 synthetic packages; returns texts and split."""
    from malseq_lab.corpus.cache import AnalysisCache, CachedAnalysis, extractor_version
    from malseq_lab.corpus.pipeline import CACHE_FILE, SAMPLES_FILE, SPLIT_FILE
    from malseq_lab.corpus.records import Sample, write_samples
    from malseq_lab.corpus.splits import Split

    texts, labels = _synthetic(60, seed=3)
    samples, rows, assignments = [], [], {}
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        eco = "npm" if i % 4 < 2 else "pypi"
        sha = f"{i:064x}"
        stratum = "malicious" if label else ("popular" if i % 3 else "long-tail")
        samples.append(Sample(eco, f"p{i}", "1.0", label, "test", stratum, path=f"/nowhere/{i}", sha256=sha))
        ids = ("read_env", "encoding_call", "upload_data") if label else ("fs_read", "network_request")
        rows.append(CachedAnalysis(sha, extractor_version(), "ok", ecosystem=eco, name=f"p{i}", version="1.0",
                                   events=tuple({"behaviour": b, "file": "x", "line": 1, "scope": ""} for b in ids),
                                   sequence_ids=ids, sequence_text=text, sequencer="test"))
        assignments[sha] = ("train", "train", "train", "val", "test")[i % 5] if i % 10 != 9 else "val"
    write_samples(tmp_path / SAMPLES_FILE, samples)
    Split(assignments, {k: k for k in assignments}, {"mode": "test"}).save(tmp_path / SPLIT_FILE)
    with AnalysisCache(tmp_path / CACHE_FILE) as cache:
        cache.put_many(rows)
    return texts, assignments


def test_run_training_on_a_corpus_workdir(tmp_path: Path) -> None:
    """`malseq train`'s pipeline on a fake corpus work dir (samples, split, analysis cache)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from malseq_lab.model.experiment import run_training
    from malseq_lab.model.train import TrainConfig

    texts, assignments = _fake_corpus(tmp_path)
    tok = _tokenizer(tmp_path, texts)
    config = TrainConfig(tokenizer=str(tok), tiny={}, max_len=64, batch_size=8, lr=1e-3, epochs=2, threads=1)
    doc = run_training(tmp_path, tmp_path / "run", config, log=lambda m: None)
    assert set(doc["models"]["bert-int8"]["by_ecosystem"]) == {"pypi", "npm"}
    assert doc["agreement_fp32_int8"]["n"] == sum(1 for v in assignments.values() if v == "test")
    assert doc["latency_int8_one_thread"]["single_median_ms"] > 0
    card = json.loads((tmp_path / "run" / "model-int8" / "model_card.json").read_text())
    assert card["threshold"] == doc["models"]["bert-int8"]["threshold"]
    assert 0.0 <= card["threshold_balanced"] <= 1.0
    assert "pypi" in card["test"] and card["max_len"] == 64
    # the card records which analysis code made its training data; a scan compares its own
    from malseq.analysis import analysis_key

    assert card["analysis_key"] == analysis_key()
    assert SequenceScorer.load(tmp_path / "run" / "model-int8").score(["install : read file"])[0] <= 1.0
    # the profile model and the stack are fitted on the same split and reported on test
    stack = doc["stack"]
    assert set(stack["models"]) == {"sequence", "profile", "ensemble"}
    assert set(stack["models"]["profile"]["test"]) == {"pypi", "npm"}
    assert stack["data"]["test"] == doc["agreement_fp32_int8"]["n"]
    assert isinstance(stack["keep_ensemble"], bool)
    assert (tmp_path / "run" / "ensemble.json").is_file() and (tmp_path / "run" / "profile_model.json.gz").is_file()
    assert json.loads((tmp_path / "run" / "stack_report.json").read_text())["keep_ensemble"] == stack["keep_ensemble"]
    # the keep rule reads validation only: the decision follows the validation figures, and
    # rewriting every test score (best or worst possible for the ensemble) leaves it unchanged
    from malseq_lab.model.stack import keep_rule, run_stack

    assert stack["keep_ensemble"] == keep_rule(stack["validation"]["sequence"], stack["validation"]["ensemble"], 0.005)
    scores_file = tmp_path / "run" / "test_scores.json"
    original = scores_file.read_text()
    for flipped in (1.0, 0.0):
        rewritten = [{**d, "int8": flipped} for d in json.loads(original)]
        scores_file.write_text(json.dumps(rewritten))
        assert run_stack(tmp_path, tmp_path / "run", log=lambda m: None)["keep_ensemble"] == stack["keep_ensemble"]
    scores_file.write_text(original)
    # shipping the stack: only beside the run's own sequence model; the card says whether it was kept
    import shutil

    shipped = tmp_path / "shipped"
    shutil.copytree(tmp_path / "run" / "model-int8", shipped)
    doc2 = run_stack(tmp_path, tmp_path / "run", ship_to=shipped, log=lambda m: None)
    card2 = json.loads((shipped / "model_card.json").read_text())
    assert card2["ensemble"]["kept"] == doc2["keep_ensemble"]
    assert (shipped / "ensemble.json").exists() == doc2["keep_ensemble"]
    (shipped / "model.onnx").write_bytes(b"another model")
    with pytest.raises(ModelNotAvailableError, match="not this run"):
        run_stack(tmp_path, tmp_path / "run", ship_to=shipped, log=lambda m: None)
    # shipping the finished run as it is (`malseq train --ship-only`): the run's model, card and, when
    # kept, its ensemble; a stale ensemble in the target folder never survives
    from malseq_lab.model.experiment import ship_run

    target = tmp_path / "ship-only"
    target.mkdir()
    (target / "ensemble.json").write_text("{}")
    ship_run(tmp_path / "run", target, log=lambda m: None)
    assert (target / "model.onnx").read_bytes() == (tmp_path / "run" / "model-int8" / "model.onnx").read_bytes()
    card3 = json.loads((target / "model_card.json").read_text())
    assert card3["ensemble"]["kept"] == doc2["keep_ensemble"]
    assert (target / "ensemble.json").exists() == doc2["keep_ensemble"]
    if doc2["keep_ensemble"]:
        assert (target / "ensemble.json").read_bytes() == (tmp_path / "run" / "ensemble.json").read_bytes()
        assert "thresholds_by_ecosystem" not in card3  # the ensemble's own thresholds decide
    else:  # the sequence model decides at the per-ecosystem thresholds the keep rule compared it at
        assert card3["thresholds_by_ecosystem"] == doc2["models"]["sequence"]["thresholds_by_ecosystem"]


def test_scan_scores_every_analysed_target(tiny_run: dict[str, object], tmp_path: Path) -> None:
    import shutil

    from malseq import _cli
    from malseq.report.json_report import result_to_dict
    from malseq.report.text import render_result
    from malseq.scan import ScanOptions, scan

    examples = Path(__file__).resolve().parents[3] / "examples"
    targets = [str(p) for p in sorted(examples.iterdir()) if p.is_dir()]
    results = scan(targets, ScanOptions(model_dir=tiny_run["int8_dir"]))  # type: ignore[arg-type]
    scored = [r for r in results if r.sequence is not None]
    assert scored and all(r.score is not None and 0.0 <= r.score <= 1.0 for r in scored)
    assert all(r.verdict in ("malicious", "benign") for r in scored)
    # no model: no score, no crash
    bare = scan(targets[:1], ScanOptions(model_dir=tmp_path / "none"))
    assert bare[0].score is None and bare[0].verdict is None and bare[0].error is None
    assert bare[0].unscored is not None and "no trained sequence model" in bare[0].unscored
    # ... but the command line does not let it pass as clean
    assert _cli.main(["scan", "-q", "--model", str(tmp_path / "none"), targets[0]]) == 3
    # a threshold of 0 flags everything: JSON carries score and verdict, and the exit code is 1
    flag_all = tmp_path / "flag-all"
    shutil.copytree(tiny_run["int8_dir"], flag_all)  # type: ignore[arg-type]
    card = json.loads((flag_all / "model_card.json").read_text())
    (flag_all / "model_card.json").write_text(json.dumps({**card, "threshold": 0.0}))
    assert _cli.main(["scan", "-q", "--model", str(flag_all), targets[0]]) == 1
    assert _cli.main(["scan", "-q", "--no-analysis", "--model", str(flag_all), targets[0]]) == 0
    # the balanced operating point uses the card's threshold_balanced, and needs one
    assert _cli.main(["scan", "-q", "--model", str(flag_all), "--operating-point", "balanced", targets[0]]) == 3
    two_points = tmp_path / "two-points"
    shutil.copytree(tiny_run["int8_dir"], two_points)  # type: ignore[arg-type]
    (two_points / "model_card.json").write_text(json.dumps({**card, "threshold": 2.0, "threshold_balanced": 0.0}))
    assert _cli.main(["scan", "-q", "--model", str(two_points), targets[0]]) == 0
    assert _cli.main(["scan", "-q", "--model", str(two_points), "--operating-point", "balanced", targets[0]]) == 1
    # per-ecosystem thresholds on the card decide for their ecosystem; others keep `threshold`
    # (the examples' first folder is an npm package)
    first = scan(targets[:1], ScanOptions(model_dir=flag_all))[0]
    assert first.package is not None and first.package.ecosystem.value == "npm"
    for case, (thresholds, code) in enumerate((({"npm": 0.0}, 1), ({"npm": 2.0}, 0), ({"pypi": 0.0}, 0))):
        by_ecosystem = tmp_path / f"by-ecosystem-{case}"  # a folder each: a loaded model is kept per folder
        shutil.copytree(tiny_run["int8_dir"], by_ecosystem)  # type: ignore[arg-type]
        (by_ecosystem / "model_card.json").write_text(
            json.dumps({**card, "threshold": 2.0, "thresholds_by_ecosystem": thresholds}))
        assert _cli.main(["scan", "-q", "--model", str(by_ecosystem), targets[0]]) == code, thresholds
        # the report says which threshold decided, and at which operating point
        judged = scan(targets[:1], ScanOptions(model_dir=by_ecosystem))[0]
        assert (judged.threshold, judged.operating_point) == (thresholds.get("npm", 2.0), "low-fpr")
        doc = result_to_dict(judged)
        assert (doc["threshold"], doc["operating_point"]) == (thresholds.get("npm", 2.0), "low-fpr")
        assert f"threshold {thresholds.get('npm', 2.0):.4f} at low-fpr" in render_result(judged)
    # a card whose per-ecosystem thresholds are malformed or name an unknown ecosystem is refused (a
    # misspelt "PyPI" would otherwise fall back to the pooled threshold without a word): no verdict, exit 3
    for case, bad in enumerate(([["npm", 0.5]], {"PyPI": 0.5}, {"npm": "high"})):
        refused = tmp_path / f"refused-{case}"
        shutil.copytree(tiny_run["int8_dir"], refused)  # type: ignore[arg-type]
        (refused / "model_card.json").write_text(json.dumps({**card, "thresholds_by_ecosystem": bad}))
        [unjudged] = scan(targets[:1], ScanOptions(model_dir=refused))
        assert unjudged.verdict is None and "thresholds_by_ecosystem" in (unjudged.unscored or ""), bad
        assert _cli.main(["scan", "-q", "--model", str(refused), targets[0]]) == 3
    never = tmp_path / "never"
    shutil.copytree(tiny_run["int8_dir"], never)  # type: ignore[arg-type]
    (never / "model_card.json").write_text(json.dumps({**card, "threshold": 2.0}))
    assert _cli.main(["scan", "-q", "--model", str(never), targets[0]]) == 0


def test_scan_json_has_score_and_verdict(tiny_run: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    from malseq import _cli

    examples = Path(__file__).resolve().parents[3] / "examples"
    target = str(sorted(p for p in examples.iterdir() if p.is_dir())[0])
    _cli.main(["scan", "-q", "--format", "json", "--model", str(tiny_run["int8_dir"]), target])
    doc = json.loads(capsys.readouterr().out)
    assert 0.0 <= doc[0]["score"] <= 1.0 and doc[0]["verdict"] in ("malicious", "benign")


def _stacked_folder(tiny_run: dict[str, object], folder: Path, threshold: float,
                    thresholds: dict[str, float] | None = None) -> Path:
    """The tiny model plus a profile model and an ensemble, as `malseq train` ships them."""
    import shutil

    from malseq.model.ensemble import Ensemble
    from malseq.model.profile import PROFILE_FILE, BehaviourProfile
    from malseq.model.scoring import ENSEMBLE_FILE
    from malseq_lab.model.fit import fit_sklearn, tree_model_from_sklearn

    shutil.copytree(tiny_run["int8_dir"], folder)  # type: ignore[arg-type]
    items = [BehaviourProfile("npm", ("read_env", "upload_data") if i % 2 else ("fs_read",), ()) for i in range(40)]
    model, features = fit_sklearn(items, [i % 2 for i in range(40)], max_iter=10)
    tree_model_from_sklearn(model, features).save(folder / PROFILE_FILE)
    Ensemble((1.0, 1.0), 0.0, threshold, components=("sequence", "profile"),
             thresholds=thresholds or {}).save(folder / ENSEMBLE_FILE)
    return folder


def test_scan_uses_a_shipped_ensemble(tiny_run: dict[str, object], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from malseq import _cli
    from malseq.model.scoring import ENSEMBLE_FILE
    from malseq.scan import ScanOptions, scan

    examples = Path(__file__).resolve().parents[3] / "examples"
    target = str(sorted(p for p in examples.iterdir() if p.is_dir())[0])
    plain = scan([target], ScanOptions(model_dir=tiny_run["int8_dir"]))[0]  # type: ignore[arg-type]
    stacked = _stacked_folder(tiny_run, tmp_path / "stacked", threshold=2.0)
    result = scan([target], ScanOptions(model_dir=stacked))[0]
    parts = dict(result.component_scores)
    assert set(parts) == {"sequence", "profile"}
    assert parts["sequence"] == pytest.approx(plain.score, abs=1e-3)
    assert result.score is not None and result.score != parts["sequence"]
    # the verdict follows the ensemble's threshold, not the sequence model's card
    assert result.verdict == "benign"
    flag_all = _stacked_folder(tiny_run, tmp_path / "flag-all", threshold=0.0)
    assert _cli.main(["scan", "-q", "--format", "json", "--model", str(flag_all), target]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert set(doc[0]["component_scores"]) == {"sequence", "profile"}
    # the balanced operating point of an ensemble
    balanced = _stacked_folder(tiny_run, tmp_path / "balanced", threshold=2.0)
    ens = json.loads((balanced / "ensemble.json").read_text())
    (balanced / "ensemble.json").write_text(json.dumps({**ens, "balanced_threshold": 0.0}))
    assert scan([target], ScanOptions(model_dir=balanced, operating_point="balanced"))[0].verdict == "malicious"
    assert scan([target], ScanOptions(model_dir=balanced))[0].verdict == "benign"
    # per-ecosystem thresholds: only the npm package is judged at 0
    npm_only = _stacked_folder(tiny_run, tmp_path / "npm-zero", threshold=2.0, thresholds={"npm": 0.0})
    both = [str(examples / "npm-env-exfil"), str(examples / "pypi-clean-lib")]
    verdicts = {r.package.ecosystem.value: r.verdict for r in scan(both, ScanOptions(model_dir=npm_only))
                if r.package is not None}
    assert verdicts == {"npm": "malicious", "pypi": "benign"}
    # a broken ensemble file: no score and a reason, never a crash or a silent fallback
    (flag_all / ENSEMBLE_FILE).write_text("{not json")
    from malseq.model.scoring import clear_cache, score_input, score_inputs

    clear_cache()
    broken = scan([target], ScanOptions(model_dir=flag_all, score=False))
    scored, why = score_inputs([score_input(broken[0])], flag_all)
    assert scored == [None] and why is not None and "ensemble" in why
    clear_cache()
    assert _cli.main(["scan", "-q", "--format", "json", "--model", str(flag_all), target]) == 3
    captured = capsys.readouterr()
    assert "ensemble" in json.loads(captured.out)[0]["unscored"] and "no verdict" in captured.err


def test_assembling_a_new_sequence_model_drops_a_stale_ensemble(tiny_run: dict[str, object], tmp_path: Path) -> None:
    from malseq.model.profile import PROFILE_FILE
    from malseq.model.scoring import ENSEMBLE_FILE
    from malseq_lab.model.export import assemble

    folder = _stacked_folder(tiny_run, tmp_path / "m", threshold=0.5)
    int8_dir = Path(tiny_run["int8_dir"])  # type: ignore[arg-type]
    assemble(folder, int8_dir / "model.onnx", int8_dir / "tokenizer.json", {"name": "t", "max_len": 64,
                                                                            "threshold": 0.5})
    assert not (folder / ENSEMBLE_FILE).exists() and not (folder / PROFILE_FILE).exists()


def test_an_assembled_folder_has_a_tokenizer_cut_that_scores_as_the_full_tokenizer(
        tiny_run: dict[str, object], tmp_path: Path) -> None:
    """assemble writes tokenizer_scan.json (read at a scan's start-up) for the tokenizer it copies; the
    scores with it are the scores with tokenizer.json alone, on texts it covers and texts it does not."""
    import shutil

    from malseq.model import SCAN_TOKENIZER_FILE
    from malseq.model.infer import SequenceScorer
    from malseq.model.scan_tokenizer import ScanTokenizer

    int8_dir = Path(tiny_run["int8_dir"])  # type: ignore[arg-type]
    assert (int8_dir / SCAN_TOKENIZER_FILE).is_file()
    val_texts, _ = tiny_run["val"]  # type: ignore[misc]
    texts = [*val_texts, "install : read file, banana ; import : exec code"]
    with_cut = SequenceScorer.load(int8_dir)
    assert isinstance(with_cut._tokenizer, ScanTokenizer)
    plain = tmp_path / "plain"
    shutil.copytree(int8_dir, plain)
    (plain / SCAN_TOKENIZER_FILE).unlink()
    assert with_cut.score(texts) == SequenceScorer.load(plain).score(texts)


@pytest.fixture
def two_step_config(tmp_path: Path) -> Any:
    """A fake corpus in tmp_path and a 2-step tiny-model training config for it."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from malseq_lab.model.train import TrainConfig

    texts, _ = _fake_corpus(tmp_path)
    return TrainConfig(tokenizer=str(_tokenizer(tmp_path, texts)), tiny={}, max_len=64, batch_size=8, epochs=1,
                       max_steps=2, threads=1)


def test_training_with_reordered_copies(tmp_path: Path, two_step_config: Any) -> None:
    from malseq_lab.model.experiment import run_training

    config = two_step_config
    plain = run_training(tmp_path, tmp_path / "plain", config, stack=False, log=lambda m: None)
    augmented = run_training(tmp_path, tmp_path / "aug", config, stack=False, augment_shuffled=1, log=lambda m: None)
    assert augmented["card"]["data"]["augment_shuffled"] == 1
    assert augmented["card"]["data"]["train"] == 2 * plain["card"]["data"]["train"]
    # validation and test keep the execution order: the same test packages are scored
    assert augmented["agreement_fp32_int8"]["n"] == plain["agreement_fp32_int8"]["n"]


def test_oversampling_a_stratum_adds_reordered_copies_of_its_rows_only(tmp_path: Path, two_step_config: Any) -> None:
    from malseq_lab.evaluate.harness import load_rows
    from malseq_lab.model.experiment import run_training

    rows, _ = load_rows(tmp_path, None)
    train = [r for r in rows if r.split == "train" and r.status == "ok"]
    malicious = sum(r.label for r in train)
    assert 0 < malicious < len(train)
    plain = run_training(tmp_path, tmp_path / "plain", two_step_config, stack=False, log=lambda m: None)
    eco = train[0].ecosystem
    messages: list[str] = []
    over = run_training(tmp_path, tmp_path / "over", two_step_config, stack=False,
                        oversample={f"{eco}/malicious": 2}, log=messages.append)
    n_stratum = sum(1 for r in train if r.ecosystem == eco and r.label)
    assert over["card"]["data"]["oversample"] == {f"{eco}/malicious": 2}
    assert over["card"]["data"]["train"] == plain["card"]["data"]["train"] + 2 * n_stratum
    assert any(f"oversample {eco}/malicious: {n_stratum} rows x 2" in m for m in messages)


def test_oversample_specs_are_checked() -> None:
    from malseq_lab.model.experiment import parse_oversample

    assert parse_oversample(["npm/malicious=3", "pypi/benign=0"]) == {"npm/malicious": 3, "pypi/benign": 0}
    for bad in ("npm=3", "npm/evil=1", "npm/malicious", "npm/malicious=-1", "/malicious=2"):
        with pytest.raises(ValueError, match="npm/malicious=3"):
            parse_oversample([bad])


def test_reusing_a_finished_training(tmp_path: Path, two_step_config: Any) -> None:
    from malseq_lab.model.experiment import run_training

    config = two_step_config
    first = run_training(tmp_path, tmp_path / "run", config, stack=False, log=lambda m: None)
    log_before = (tmp_path / "run" / "train" / "train_log.jsonl").read_text()
    messages: list[str] = []
    again = run_training(tmp_path, tmp_path / "run", config, stack=False, reuse_checkpoint=True, log=messages.append)
    assert any("reusing the finished training" in m for m in messages)
    assert (tmp_path / "run" / "train" / "train_log.jsonl").read_text() == log_before  # not trained again
    assert again["card"]["threshold_fp32"] == first["card"]["threshold_fp32"]
    assert again["models"]["bert-fp32"]["by_ecosystem"] == first["models"]["bert-fp32"]["by_ecosystem"]


def test_the_int8_model_is_stored_as_its_optimised_graph(tiny_run: dict[str, object], tmp_path: Path) -> None:
    """`quantize` stores onnxruntime's fused graph (`optimise_graph`): nothing is left to rewrite at load,
    and the rewrite refuses to ship a graph that scores differently."""
    import onnx
    from tokenizers import Tokenizer

    from malseq_lab.model.export import optimise_graph

    int8 = Path(tiny_run["int8_dir"]) / "model.onnx"  # type: ignore[arg-type]
    ops = {(n.domain, n.op_type) for n in onnx.load(str(int8)).graph.node}
    assert any(domain == "com.microsoft" for domain, _ in ops), ops  # fused kernels, e.g. DynamicQuantizeMatMul
    val_texts, _ = tiny_run["val"]  # type: ignore[misc]
    copy = tmp_path / "again"
    copy.mkdir()
    for item in Path(tiny_run["int8_dir"]).iterdir():  # type: ignore[arg-type]
        (copy / item.name).write_bytes(item.read_bytes())
    # optimising the optimised graph again passes its own bit-for-bit check and scores the same
    vocab_size = Tokenizer.from_file(str(copy / "tokenizer.json")).get_vocab_size()
    assert optimise_graph(copy / "model.onnx", 64, vocab_size) == copy / "model.onnx"
    assert SequenceScorer.load(copy).score(val_texts) == SequenceScorer.load(int8.parent).score(val_texts)


def test_the_int8_model_takes_unsigned_weights_and_scores_as_the_signed_one(tiny_run: dict[str, object],
                                                                              tmp_path: Path) -> None:
    """`quantize` stores the integer matmuls' weights as uint8 (`unsigned_weights`), which every CPU multiplies
    exactly (int8 weights saturate on x86 without VNNI: docs/results/determinism/cpu.md); the rewrite keeps
    the numbers, so a signed quantisation of the same fp32 model scores exactly as the unsigned one."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from tokenizers import Tokenizer

    from malseq_lab.model.export import signed_integer_weights, unsigned_weights

    int8_dir = Path(tiny_run["int8_dir"])  # type: ignore[arg-type]
    assert signed_integer_weights(onnx.load(str(int8_dir / "model.onnx"))) == []
    signed = tmp_path / "signed.onnx"
    quantize_dynamic(str(Path(tiny_run["fp32_dir"]) / "model.onnx"), str(signed),  # type: ignore[arg-type]
                     weight_type=QuantType.QInt8, per_channel=True)
    weights = signed_integer_weights(onnx.load(str(signed)))
    assert weights  # the rewrite below has something to do
    vocab_size = Tokenizer.from_file(str(int8_dir / "tokenizer.json")).get_vocab_size()
    unsigned = tmp_path / "unsigned.onnx"
    unsigned.write_bytes(signed.read_bytes())
    assert unsigned_weights(unsigned, 64, vocab_size) == unsigned
    model = onnx.load(str(unsigned))
    assert signed_integer_weights(model) == []
    kinds = {i.name: i.data_type for i in model.graph.initializer}
    assert {kinds[w] for w in weights} == {onnx.TensorProto.UINT8}
    val_texts, _ = tiny_run["val"]  # type: ignore[misc]
    # the signed model as onnxruntime computes it exactly on any CPU: on a CPU whose int8 kernel saturates,
    # `session.x64quantprecision` makes it rewrite the weights as uint8 at load (elsewhere it changes nothing)
    assert _raw_scores(unsigned, int8_dir, val_texts) == _raw_scores(signed, int8_dir, val_texts, exact_int8=True)
    # a second pass finds nothing to rewrite and leaves the file as it is
    before = unsigned.read_bytes()
    unsigned_weights(unsigned, 64, vocab_size)
    assert unsigned.read_bytes() == before


def _raw_scores(model: Path, folder: Path, texts: list[str], exact_int8: bool = False) -> list[bytes]:
    """The model's raw outputs for `texts` (tokenised as the folder's model is), as bytes."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if exact_int8:
        options.add_session_config_entry("session.x64quantprecision", "1")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    tokenizer = SequenceScorer.load(folder)._tokenizer
    out = []
    for encoding in tokenizer.encode_batch([model_text(t) for t in texts]):
        ids = np.asarray([encoding.ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        out.append(b"".join(np.asarray(o).tobytes() for o in session.run(None, {k: v for k, v in feeds.items()
                                                                               if k in names})))
    return out


def test_run_training_without_test_never_scores_the_test_split(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`malseq train --no-test`: candidates are compared on validation before the test split is read.
    The test texts never reach a scorer, the card has no test block and the int8 validation scores
    are written for the comparison."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from malseq_lab.model.experiment import run_training
    from malseq_lab.model.train import TrainConfig

    texts, assignments = _fake_corpus(tmp_path)
    n_val = sum(1 for v in assignments.values() if v == "val")
    tok = _tokenizer(tmp_path, texts)
    scored: list[str] = []
    original_score = SequenceScorer.score

    def recording_score(self: SequenceScorer, batch: list[str]) -> list[float]:
        scored.extend(batch)
        return original_score(self, batch)

    monkeypatch.setattr(SequenceScorer, "score", recording_score)
    config = TrainConfig(tokenizer=str(tok), tiny={}, max_len=64, batch_size=8, lr=1e-3, epochs=1, threads=1)
    doc = run_training(tmp_path, tmp_path / "run", config, stack=False, score_test=False, log=lambda m: None)
    assert doc["test"] == "not scored (--no-test)"
    # the only ONNX scoring is the int8 model's pass over validation (the threshold); none over test
    assert len(scored) == n_val
    card = json.loads((tmp_path / "run" / "model-int8" / "model_card.json").read_text())
    assert "test" not in card and 0.0 <= card["threshold"] <= 1.0
    val_scores = json.loads((tmp_path / "run" / "val_scores_int8.json").read_text())
    assert len(val_scores) == n_val
    assert not (tmp_path / "run" / "test_scores.json").exists()


def test_train_cli_refuses_no_test_with_ship_or_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from malseq import _cli

    for extra in (["--ship", "--no-stack"], []):
        assert _cli.main(["train", "--workdir", str(tmp_path), "--no-test", *extra]) == 2
        assert "--no-test" in capsys.readouterr().err
