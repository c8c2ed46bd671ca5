"""`malseq corpus ...` and `malseq eval`: dataset tooling and the evaluation harness.

Plugged into `malseq`'s command line through the `malseq.commands` entry points (lab/pyproject.toml);
`eval` needs the lab's `eval` extra.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="corpus work dir (default: $MALSEQ_CORPUS_DIR or ~/.cache/malseq/corpus)",
    )


def _sources(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--datasets",
        type=Path,
        metavar="DIR",
        help="folder with malicious-*/manifest.tsv and benign-*.tsv (default: $MALSEQ_DATASETS "
        "or ../shared/datasets next to the checkout)",
    )
    p.add_argument("--no-default-sources", action="store_true", help="use only the sources given below")
    p.add_argument(
        "--shared",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder in the shared layout (manifest.tsv + archives); repeatable",
    )
    p.add_argument(
        "--benign-list",
        type=Path,
        action="append",
        default=[],
        metavar="TSV",
        help="a benign list (ecosystem, name, version, stratum); repeatable",
    )
    p.add_argument(
        "--datadog",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a checkout of DataDog's malicious-software-packages-dataset; repeatable",
    )
    p.add_argument(
        "--folder",
        action="append",
        default=[],
        metavar="DIR[:LABELS]",
        help="a folder of archives with a labels file (default DIR/labels.tsv); repeatable",
    )
    p.add_argument("--limit", type=int, metavar="N", help="at most N samples per source (smoke runs)")
    p.add_argument("--threads", type=int, default=4, help="parallel downloads (default 4)")
    p.add_argument("--pypi-index-url", metavar="URL")
    p.add_argument("--npm-registry", metavar="URL")


def register(sub: Any) -> None:
    corpus = sub.add_parser("corpus", help="build the evaluation corpus: downloads, analysis cache, grouped split")
    csub = corpus.add_subparsers(dest="corpus_command", required=True)

    dl = csub.add_parser("download", help="download the benign releases only (resumable)")
    _common(dl)
    _sources(dl)
    dl.add_argument("--retry-failed", action="store_true", help="try releases that failed before again")

    b = csub.add_parser("build", help="download, analyse into the cache, group and split; reports timings")
    _common(b)
    _sources(b)
    b.add_argument("--no-download", action="store_true", help="use only releases already downloaded")
    b.add_argument("--no-analyse", action="store_true", help="skip the analysis step (split from the cache)")
    b.add_argument("--jobs", type=int, default=1, help="analysis worker processes, 1 or 2 (default 1)")
    b.add_argument("--timeout", type=float, default=60.0, metavar="S", help="time budget per package (default 60)")
    b.add_argument(
        "--split",
        choices=("random", "time"),
        default="random",
        help="grouped random split, or train on the past where dates exist (default random)",
    )
    b.add_argument("--seed", type=int, default=20261101)
    b.add_argument("--fractions", default="0.6,0.2,0.2", help="train,val,test shares (default 0.6,0.2,0.2)")
    b.add_argument("--retry-errors", action="store_true", help="analyse packages that failed before again")
    b.add_argument("--resplit", action="store_true", help="write a new split even if split.json exists")
    b.add_argument(
        "--split-file", type=Path, metavar="FILE", help="where to write the split (default WORKDIR/split.json)"
    )

    st = csub.add_parser("stats", help="summarise the work dir: samples, cache, split")
    _common(st)

    ev = sub.add_parser("eval", help="train the baselines on the split and report metrics (needs the eval extra)")
    _common(ev)
    ev.add_argument("--split-file", type=Path, metavar="FILE", help="split to use (default WORKDIR/split.json)")
    ev.add_argument("--out", type=Path, metavar="DIR", help="report folder (default WORKDIR/report)")
    ev.add_argument("--models", default="rules,gbt", help="comma-separated: rules, gbt (default both)")
    ev.add_argument(
        "--guarddog",
        action="store_true",
        help="also run GuardDog 3.2.0 (own venv) on the test split, timing malseq alongside",
    )
    ev.add_argument("--guarddog-limit", type=int, metavar="N", help="at most N test packages for GuardDog")
    ev.add_argument("--guarddog-venv", type=Path, metavar="DIR", help="GuardDog's venv (default WORKDIR/guarddog-venv)")
    ev.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per-package budget in the benchmark")


def _workdir(args: argparse.Namespace) -> Path:
    from malseq_lab.corpus import default_workdir

    return Path(args.workdir) if args.workdir else default_workdir()


def _build_sources(args: argparse.Namespace) -> Any:
    from malseq_lab.corpus.pipeline import Sources, default_datasets_dir

    sources = Sources() if args.no_default_sources else Sources.default(args.datasets or default_datasets_dir())
    sources.shared += args.shared
    sources.benign_lists += args.benign_list
    sources.datadog += args.datadog
    for spec in args.folder:
        folder, _, labels = spec.partition(":")
        sources.folders.append((Path(folder), Path(labels) if labels else None))
    return sources


def _intake_options(args: argparse.Namespace, workdir: Path) -> Any:
    from malseq.intake import IntakeOptions, PypiDistribution

    return IntakeOptions(
        pypi_index_url=args.pypi_index_url or os.environ.get("MALSEQ_PYPI_INDEX_URL") or None,
        npm_registry_url=args.npm_registry or os.environ.get("MALSEQ_NPM_REGISTRY") or None,
        cache_dir=workdir / "registry-cache",
        # the corpus is sdists (what the malware datasets hold, and what the shipped model learned);
        # the scanner's default, the wheel pip would install, depends on the machine
        pypi_distribution=PypiDistribution.SDIST,
    )


def run(args: argparse.Namespace) -> int:
    if args.command == "eval":
        from malseq_lab.evaluate.harness import run_eval

        workdir = _workdir(args)
        run_eval(
            workdir,
            split_file=args.split_file,
            out=args.out,
            models=[m.strip() for m in args.models.split(",") if m.strip()],
            guarddog=args.guarddog,
            guarddog_limit=args.guarddog_limit,
            guarddog_venv=args.guarddog_venv,
            budget=args.timeout,
            log=_log,
        )
        return 0
    workdir = _workdir(args)
    if args.corpus_command == "stats":
        from malseq_lab.corpus.pipeline import REPORT_FILE

        path = workdir / REPORT_FILE
        if not path.exists():
            print(f"no build report in {workdir}; run `malseq corpus build` first", file=sys.stderr)
            return 3
        sys.stdout.write(path.read_text())
        return 0
    sources = _build_sources(args)
    if args.corpus_command == "download":
        from malseq_lab.corpus.download import download_samples
        from malseq_lab.corpus.pipeline import load_sources

        samples = load_sources(sources, args.limit)
        stats = download_samples(
            samples,
            workdir,
            _intake_options(args, workdir),
            threads=args.threads,
            retry_failed=args.retry_failed,
            log=_log,
        )
        _log(
            f"download done: {stats.ok} ok, {stats.failed} failed, {stats.already} already there, "
            f"{stats.seconds:.0f} s; failures {stats.failures_by_reason}"
        )
        return 0
    from malseq_lab.corpus.pipeline import run_build

    fractions = tuple(float(x) for x in args.fractions.split(","))
    report = run_build(
        workdir,
        sources,
        download=not args.no_download,
        analyse=not args.no_analyse,
        jobs=max(1, min(args.jobs, 2)),
        budget=args.timeout,
        threads=args.threads,
        split_mode=args.split,
        seed=args.seed,
        fractions=fractions,
        resplit=args.resplit,
        retry_errors=args.retry_errors,
        limit_per_source=args.limit,
        registry_options=_intake_options(args, workdir),
        split_file=args.split_file,
        log=_log,
    )
    seconds = report.get("seconds", {})
    assert isinstance(seconds, dict)
    print("corpus build: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    return 0
