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
        help="corpus work dir (default: $MALSEQ_CORPUS_DIR, else $MALSEQ_CACHE_DIR/corpus, else "
        "~/.cache/malseq/corpus)",
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


def add_protocol_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--protocol",
        choices=("time", "random"),
        default="time",
        help="time (default): the time split, WORKDIR/split-time.json, made from the corpus if missing; "
        "random: the grouped random split, WORKDIR/split.json",
    )
    p.add_argument("--split-file", type=Path, metavar="FILE", help="a split file (overrides --protocol)")


def protocol_split_file(args: argparse.Namespace, workdir: Path) -> Path:
    """--split-file, else the work dir's split for --protocol (made from the corpus if missing)."""
    if args.split_file:
        return Path(args.split_file)
    from malseq_lab.corpus.pipeline import ensure_split

    return ensure_split(workdir, args.protocol, log=_log)


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
        "--protocol",
        "--split",
        dest="protocol",
        choices=("time", "random"),
        default="time",
        help="time: train on the past, test on the newest dated samples (PyPI by `added`; npm and benign "
        "lists grouped at random), written to split-time.json; random: grouped random split, split.json "
        "(default time)",
    )
    b.add_argument("--seed", type=int, default=20261101)
    b.add_argument(
        "--fractions", help="train,val,test shares (default 0.6,0.15,0.25 for time, 0.6,0.2,0.2 for random)"
    )
    b.add_argument("--retry-errors", action="store_true", help="analyse packages that failed before again")
    b.add_argument("--resplit", action="store_true", help="write a new split even if split.json exists")
    b.add_argument(
        "--pin-split",
        type=Path,
        metavar="FILE",
        help="an earlier split file: its samples keep their split (a group keeps the most held-out split of "
        "its members), only new ones are assigned; a grown corpus so keeps its old test set held out",
    )
    b.add_argument(
        "--split-file",
        type=Path,
        metavar="FILE",
        help="where to write the split (default WORKDIR/split-time.json or split.json, by protocol)",
    )

    hn = csub.add_parser(
        "hardneg",
        help="pick benign releases from registry metadata and write benign lists: hard negatives (old sdists, "
        "native builds, stubs, install scripts...) or, with --kind current, latest releases (popular, long tail)",
    )
    _common(hn)
    hn.add_argument(
        "--kind",
        choices=("hardneg", "current"),
        default="hardneg",
        help="hardneg: benign-hardneg-*.tsv; current: benign-current-*.tsv, latest releases of names in no "
        "other list (the hard-negative lists of lab/data are excluded too) (default hardneg)",
    )
    hn.add_argument(
        "--as-of",
        metavar="YYYY-MM-DD",
        help="--kind current: the long-tail PyPI stratum takes sdists uploaded in the two years before this "
        "date (default: the module's DEFAULT_AS_OF, fixed so that a rebuild gives the same lists)",
    )
    hn.add_argument(
        "--datasets",
        type=Path,
        metavar="DIR",
        help="shared datasets (names to exclude and reserved-names.sha256; default: $MALSEQ_DATASETS "
        "or ../shared/datasets next to the checkout)",
    )
    hn.add_argument("--pypi-list", type=Path, default=Path("/usr/share/package-lists/pypi.tsv"), metavar="TSV")
    hn.add_argument("--npm-list", type=Path, default=Path("/usr/share/package-lists/npm.tsv"), metavar="TSV")
    hn.add_argument("--out-dir", type=Path, metavar="DIR", help="where the lists go (default: lab/data)")
    hn.add_argument(
        "--exclude-list",
        type=Path,
        action="append",
        default=[],
        metavar="TSV",
        help="also leave out every name of this benign list (repeatable), e.g. the committed lists when building "
        "a fresh validation set of names no model was trained on",
    )
    hn.add_argument(
        "--ecosystem", choices=("pypi", "npm", "both"), default="both", help="which list to (re)write (default both)"
    )
    hn.add_argument("--seed", type=int, default=20261130)
    hn.add_argument("--threads", type=int, default=4, help="registry requests in flight (default 4)")
    hn.add_argument(
        "--quota",
        action="append",
        default=[],
        metavar="[ECOSYSTEM:]STRATUM=N",
        help="releases for a stratum (repeatable; default: the module's DEFAULT_QUOTAS; with --kind current "
        "a stratum without ECOSYSTEM: is set for both ecosystems)",
    )
    hn.add_argument("--pypi-index-url", metavar="URL")
    hn.add_argument("--npm-registry", metavar="URL")

    st = csub.add_parser("stats", help="summarise the work dir: samples, cache, split")
    _common(st)

    rk = csub.add_parser(
        "rekey",
        help="carry the analysis cache over to new analysis code that should change no output (a speed-up): "
        "a seeded sample is analysed again and compared field by field; one difference copies nothing",
    )
    _common(rk)
    rk.add_argument("--from-key", required=True, metavar="KEY", help="the analysis key the rows were made with")
    rk.add_argument("--sample", type=int, default=1000, metavar="N", help="rows to analyse again (default 1000)")
    rk.add_argument("--minimum", type=int, default=100, metavar="N",
                    help="refuse unless at least N rows could be compared (default 100)")
    rk.add_argument("--seed", type=int, default=20261201)
    rk.add_argument("--jobs", type=int, default=2, help="worker processes for the verification (default 2)")
    rk.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per-package budget (default 60)")

    ex = csub.add_parser(
        "export",
        help="write what training and evaluation read (samples, split, analyses at the running code's key; no "
        "archives) to one gzip JSON-lines file, so a work dir survives a machine reset (`malseq corpus import`)",
    )
    _common(ex)
    ex.add_argument("--split-file", type=Path, metavar="FILE",
                    help="the split to export (default WORKDIR/split-time.json)")
    ex.add_argument("--out", type=Path, required=True, metavar="FILE.jsonl.gz", help="the export file")

    im = csub.add_parser(
        "import",
        help="write a work dir back from `malseq corpus export`'s file: samples.tsv, the split, the analysis "
        "cache rows; `malseq train` and `malseq eval` then run on it with no archives",
    )
    im.add_argument("file", type=Path, metavar="FILE.jsonl.gz")
    _common(im)
    im.add_argument("--split-file", type=Path, metavar="FILE",
                    help="where to write the split (default WORKDIR/split-time.json for a time split, "
                    "split.json for a random one)")
    im.add_argument("--force", action="store_true", help="overwrite a work dir that already holds samples.tsv")

    ev = sub.add_parser("eval", help="train the baselines on the split and report metrics (needs the eval extra)")
    _common(ev)
    add_protocol_options(ev)
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


def _without_reserved(samples: list[Any], args: argparse.Namespace) -> list[Any]:
    """Drop releases of reserved names (shared/datasets/reserved-names.sha256) before anything is fetched."""
    from malseq_lab.corpus.hardneg import read_reserved, reserved_digest
    from malseq_lab.corpus.pipeline import default_datasets_dir

    path = (args.datasets or default_datasets_dir()) / "reserved-names.sha256"
    if not path.is_file():
        return samples
    reserved = read_reserved(path)
    kept = [s for s in samples if s.path or reserved_digest(s.ecosystem, s.name) not in reserved]
    if len(kept) < len(samples):
        _log(f"download: {len(samples) - len(kept)} releases of reserved names left out, never requested")
    return kept


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
            split_file=protocol_split_file(args, workdir),
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
    if args.corpus_command == "hardneg":
        return _run_hardneg(args, workdir)
    if args.corpus_command == "rekey":
        return _run_rekey(args, workdir)
    if args.corpus_command == "export":
        return _run_export(args, workdir)
    if args.corpus_command == "import":
        return _run_import(args, workdir)
    sources = _build_sources(args)
    if args.corpus_command == "download":
        from malseq_lab.corpus.download import download_samples
        from malseq_lab.corpus.pipeline import load_sources

        samples = _without_reserved(load_sources(sources, args.limit), args)
        if any(s.ecosystem == "npm" and not s.path for s in samples) and not (
            args.npm_registry or os.environ.get("MALSEQ_NPM_REGISTRY")
        ):
            from malseq_lab.corpus.hardneg import pin_npm_registry

            pin_npm_registry()
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
    from malseq_lab.corpus.splits import PROTOCOL_FRACTIONS, split_file_name

    fractions = (
        tuple(float(x) for x in args.fractions.split(",")) if args.fractions else PROTOCOL_FRACTIONS[args.protocol]
    )
    report = run_build(
        workdir,
        sources,
        download=not args.no_download,
        analyse=not args.no_analyse,
        jobs=max(1, min(args.jobs, 2)),
        budget=args.timeout,
        threads=args.threads,
        split_mode=args.protocol,
        seed=args.seed,
        fractions=fractions,
        resplit=args.resplit,
        retry_errors=args.retry_errors,
        limit_per_source=args.limit,
        registry_options=_intake_options(args, workdir),
        split_file=args.split_file or workdir / split_file_name(args.protocol),
        pin_split=args.pin_split,
        log=_log,
    )
    seconds = report.get("seconds", {})
    assert isinstance(seconds, dict)
    print("corpus build: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    return 0


def _run_export(args: argparse.Namespace, workdir: Path) -> int:
    from malseq_lab.corpus.export import export_corpus

    start = time.process_time()
    summary = export_corpus(workdir, args.out, args.split_file)
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_status.items()))
    print(f"exported {summary.samples} samples ({statuses}) at {summary.extractor_version} to {summary.path}: "
          f"{summary.size_bytes:,} bytes, {time.process_time() - start:.1f} s CPU")
    return 0


def _run_import(args: argparse.Namespace, workdir: Path) -> int:
    from malseq_lab.corpus.export import import_corpus

    summary = import_corpus(args.file, workdir, split_file=args.split_file, force=args.force, log=_log)
    print(f"imported {summary.samples} samples ({summary.cache_rows} analyses) into {summary.workdir}; "
          f"split {summary.split_path}")
    if not summary.version_matches:
        # said again after the counts, where it is read: the import worked, training on it will not
        print(f"warning: the analyses are under {summary.extractor_version}, not this code's "
              f"{summary.running_version}: `malseq train` would find no rows", file=sys.stderr)
    return 0


def _run_rekey(args: argparse.Namespace, workdir: Path) -> int:
    from malseq_lab.corpus.analyse import analyse_samples
    from malseq_lab.corpus.cache import AnalysisCache
    from malseq_lab.corpus.records import read_samples
    from malseq_lab.corpus.rekey import RekeyRefused, rekey, version_for_key

    samples = {s.sha256: s for s in read_samples(workdir / "samples.tsv") if s.path and s.sha256}
    with AnalysisCache(workdir / "analysis.sqlite") as cache:

        def verify(rows: list[Any]) -> None:
            picked = [samples[r.sha256] for r in rows if r.sha256 in samples]
            analyse_samples(picked, cache, jobs=args.jobs, budget=args.timeout, log=_log)

        try:
            report = rekey(cache, version_for_key(args.from_key), verify, sample_size=args.sample, seed=args.seed,
                           minimum=args.minimum, log=_log)
        except RekeyRefused as exc:
            print(f"rekey refused: {exc}", file=sys.stderr)
            return 1
    print(f"compared {report.compared}, identical; copied {report.copied}; "
          f"{report.time_dependent_skipped} time-dependent errors left to analyse")
    return 0


def _run_hardneg(args: argparse.Namespace, workdir: Path) -> int:
    from malseq_lab.corpus import hardneg
    from malseq_lab.corpus.pipeline import default_datasets_dir

    missing = [str(path) for path in args.exclude_list if not path.is_file()]
    if missing:
        print(f"--exclude-list: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    # a list without a `name` column (or rows) would exclude nothing, silently
    empty = [str(path) for path in args.exclude_list if not hardneg.list_names(path)]
    if empty:
        print(f"--exclude-list: no package names in {', '.join(empty)} (a benign list: TSV with ecosystem and name "
              "columns)", file=sys.stderr)
        return 2
    if args.kind == "current":
        return _run_current(args, workdir)
    quotas = dict(hardneg.DEFAULT_QUOTAS)
    for spec in args.quota:
        stratum, _, count = spec.partition("=")
        if stratum not in quotas or not count.isdigit():
            print(f"--quota {spec!r}: expected STRATUM=N with STRATUM one of {', '.join(quotas)}", file=sys.stderr)
            return 2
        quotas[stratum] = int(count)
    kept = {"pypi": hardneg.PYPI_STRATA, "npm": hardneg.NPM_STRATA}.get(args.ecosystem)
    for stratum in (*hardneg.PYPI_STRATA, *hardneg.NPM_STRATA):
        if kept is not None and stratum not in kept:
            quotas[stratum] = 0
    exclusions = hardneg.load_exclusions(args.datasets or default_datasets_dir()).with_lists(args.exclude_list)
    source = hardneg.RegistryDocuments(
        workdir / "hardneg-documents",
        pypi_index_url=args.pypi_index_url or os.environ.get("MALSEQ_PYPI_INDEX_URL") or None,
        npm_registry_url=args.npm_registry or os.environ.get("MALSEQ_NPM_REGISTRY") or None,
    )
    picks, stats = hardneg.build_lists(
        hardneg.read_pypi_list(args.pypi_list) if args.ecosystem != "npm" else [],
        hardneg.read_npm_list(args.npm_list) if args.ecosystem != "pypi" else [],
        exclusions,
        source,
        seed=args.seed,
        quotas=quotas,
        threads=max(1, min(args.threads, 8)),
        log=_log,
    )
    out_dir = args.out_dir or hardneg.default_out_dir()
    for eco in (hardneg.PYPI, hardneg.NPM):
        if args.ecosystem not in ("both", eco):
            continue
        path = out_dir / f"benign-hardneg-{eco}.tsv"
        n = hardneg.write_list(path, (p for p in picks if p.ecosystem == eco), exclusions)
        _log(f"hardneg: wrote {n} releases to {path}")
    _log(
        f"hardneg: {stats.requested} names read ({source.requests} registry requests, the rest cached), "
        f"{stats.excluded} excluded before any request, {stats.errors} errors, {stats.no_fit} fit no stratum; "
        f"picked {stats.picked}"
    )
    return 0


def _run_current(args: argparse.Namespace, workdir: Path) -> int:
    import datetime

    from malseq_lab.corpus import current, hardneg
    from malseq_lab.corpus.pipeline import default_datasets_dir

    quotas = {eco: dict(current.DEFAULT_QUOTAS[eco]) for eco in (hardneg.PYPI, hardneg.NPM)}
    for spec in args.quota:
        target, _, count = spec.partition("=")
        eco, _, stratum = target.rpartition(":")
        ecosystems = [eco] if eco else list(quotas)
        if stratum not in current.STRATA or not count.isdigit() or any(e not in quotas for e in ecosystems):
            print(
                f"--quota {spec!r}: expected [pypi:|npm:]STRATUM=N with STRATUM one of {', '.join(current.STRATA)}",
                file=sys.stderr,
            )
            return 2
        for e in ecosystems:
            quotas[e][stratum] = int(count)
    for eco in quotas:
        if args.ecosystem not in ("both", eco):
            quotas[eco] = {}
    try:
        as_of = datetime.date.fromisoformat(args.as_of) if args.as_of else current.DEFAULT_AS_OF
    except ValueError:
        print(f"--as-of {args.as_of!r}: expected a date YYYY-MM-DD", file=sys.stderr)
        return 2
    # a package is in one benign list only: the committed hard-negative lists are excluded as well
    hardneg_lists = sorted(hardneg.default_out_dir().glob("benign-hardneg-*.tsv"))
    exclusions = hardneg.load_exclusions(args.datasets or default_datasets_dir()).with_lists(
        [*hardneg_lists, *args.exclude_list]
    )
    source = hardneg.RegistryDocuments(
        workdir / "hardneg-documents",
        pypi_index_url=args.pypi_index_url or os.environ.get("MALSEQ_PYPI_INDEX_URL") or None,
        npm_registry_url=args.npm_registry or os.environ.get("MALSEQ_NPM_REGISTRY") or None,
    )
    picks, stats = current.build_current_lists(
        hardneg.read_pypi_list(args.pypi_list) if quotas[hardneg.PYPI] else [],
        hardneg.read_npm_list(args.npm_list) if quotas[hardneg.NPM] else [],
        exclusions,
        source,
        seed=args.seed,
        as_of=as_of,
        quotas=quotas,
        threads=max(1, min(args.threads, 8)),
        log=_log,
    )
    out_dir = args.out_dir or hardneg.default_out_dir()
    for eco, eco_stats in stats.items():
        path = out_dir / f"benign-current-{eco}.tsv"
        n = hardneg.write_list(path, (p for p in picks if p.ecosystem == eco), exclusions)
        _log(
            f"current: wrote {n} releases to {path}; {eco_stats.requested} names read, {eco_stats.excluded} "
            f"excluded before any request, {eco_stats.errors} errors, {eco_stats.no_fit} fit no stratum; "
            f"picked {eco_stats.picked}"
        )
    _log(f"current: {source.requests} registry requests (the rest cached); excluded names of {len(hardneg_lists)} "
         "hard-negative lists")
    return 0
