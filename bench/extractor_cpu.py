"""CPU seconds of the extractors: one file (best of N), or a fixed set of archives split by stage.

One file, to compare two source trees:

    PYTHONPATH=/abs/src .venv/bin/python bench/extractor_cpu.py FILE [REPEATS]

Prints the best process_time over the repeats and whether the file's budget was hit (a run
cut by its budget measures the budget, not the extractor). Reads the file as data only.

A fixed set of archives (`--set`: one `path<TAB>zip_password` per line, as `--make-set` writes it
from the lab corpus), each archive in turn, CPU seconds per stage:

    python bench/extractor_cpu.py --make-set /work/runs/corpus/samples.tsv > set.tsv
    PYTHONPATH=/abs/src python bench/extractor_cpu.py --set set.tsv --out run.jsonl
    python bench/extractor_cpu.py --summary run.jsonl [other.jsonl]
    python bench/extractor_cpu.py --parity before.jsonl after.jsonl

- `parse`: tree-sitter alone over every Python and JavaScript source file of the package (a full
  parse of each file's bytes, the parser's floor);
- `features`: `malseq.features.analyse_package` (parses again, then everything the engines do);
- `sequence`: `build_sequence`, `render_text` and `model_text`.

Each row also records a digest of everything the stages hand on (every file's events with
scope and snippet, functions, call sites, bindings, budget flags; the manifest events; the
sequence's steps; the model text) and the events and text themselves, so `--parity` can say
which archive changed and how. CPU is `time.process_time()` of this process (not wall time: the
machine is shared). Archives are read in memory through malseq's intake; nothing is executed.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

MB = 1e6


def one_file(path: Path, repeats: int) -> None:
    from malseq._deadline import Deadline
    from malseq.features import analyse_file
    from malseq.intake.build import detect_language
    from malseq.intake.package import PackageFile

    data = path.read_bytes()
    pf = PackageFile(path.name, data, detect_language(path.name, data), False)
    best = float("inf")
    events = 0
    budget = False
    for _ in range(repeats):
        start = time.process_time()
        analysis = analyse_file(pf, Deadline(600))
        best = min(best, time.process_time() - start)
        assert analysis is not None
        events, budget = len(analysis.events), analysis.budget_exhausted
    print(f"{path.name} {len(data) / 1e6:.2f} MB: best {best:.3f} CPU s of {repeats}, {events} events, "
          f"budget hit {budget}")


def make_set(samples: Path, per_group: dict[str, int], max_bytes: int) -> None:
    """Every k-th archive (sorted by sha256) of each (ecosystem, label) group, at most `max_bytes` each."""
    groups: dict[str, list[tuple[str, str, str]]] = {}
    with samples.open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            path = Path(row["path"])
            if not row["path"] or not path.is_file() or path.stat().st_size > max_bytes:
                continue
            group = f"{row['ecosystem']}-{'malicious' if row['label'] == '1' else 'benign'}"
            password = row.get("zip_password") or ("infected" if row["label"] == "1" else "")
            groups.setdefault(group, []).append((row["sha256"], row["path"], password))
    for group in sorted(per_group):
        rows = sorted(groups.get(group, []))
        step = max(1, len(rows) // per_group[group])
        for _sha, path, password in rows[::step][:per_group[group]]:
            print(f"{path}\t{password}\t{group}")


def _digest(obj: object) -> str:
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def run_set(set_file: Path, out: Path) -> None:
    import tree_sitter_javascript
    import tree_sitter_python
    from tree_sitter import Language as TSLanguage
    from tree_sitter import Parser

    from malseq._deadline import Deadline
    from malseq.features import analyse_package
    from malseq.intake import IntakeOptions, load_target
    from malseq.intake.package import Language
    from malseq.intake.targets import LocalTarget
    from malseq.model.text import model_text
    from malseq.sequence import build_sequence, render_text

    parsers = {Language.PYTHON: Parser(TSLanguage(tree_sitter_python.language())),
               Language.JAVASCRIPT: Parser(TSLanguage(tree_sitter_javascript.language()))}
    with out.open("w") as sink:
        for line in set_file.read_text().splitlines():
            path, password, group = line.split("\t")
            row: dict[str, object] = {"target": path, "group": group}
            try:
                options = IntakeOptions(zip_password=password.encode() if password else None, offline=True)
                package = load_target(LocalTarget(Path(path)), options, Deadline(600))
            except Exception as exc:  # noqa: BLE001 - a target intake rejects is recorded as such
                row["error"] = type(exc).__name__
                sink.write(json.dumps(row) + "\n")
                continue
            sources = [f for f in package.source_files if f.language in parsers]
            row["source_bytes"] = sum(len(f.data) for f in sources)
            start = time.process_time()
            for f in sources:
                parsers[f.language].parse(f.data)
            row["parse_cpu"] = time.process_time() - start
            try:
                start = time.process_time()
                analysis = analyse_package(package, Deadline(600))
                row["features_cpu"] = time.process_time() - start
                start = time.process_time()
                sequence = build_sequence(package, analysis, Deadline(600))
                text = model_text(render_text(sequence))
                row["sequence_cpu"] = time.process_time() - start
            except Exception as exc:  # noqa: BLE001
                row["error"] = type(exc).__name__
                sink.write(json.dumps(row) + "\n")
                continue
            files = [dataclasses.replace(f, seconds=0.0) for f in analysis.files]
            row["budget_files"] = [f.path for f in files if f.budget_exhausted]
            row["files_digest"] = {f.path: _digest(f) for f in files}
            row["manifest_digest"] = _digest(analysis.manifest_events)
            row["sequence_digest"] = _digest(dataclasses.replace(sequence, seconds=0.0))
            row["events"] = [[e.behaviour, e.file, e.line, e.column, e.scope, e.snippet, e.script]
                             for e in analysis.all_events()]
            row["text"] = text
            sink.write(json.dumps(row) + "\n")
            sink.flush()


def _load(path: Path) -> dict[str, dict[str, object]]:
    return {row["target"]: row for row in map(json.loads, path.read_text().splitlines())}


def summary(runs: list[Path]) -> None:
    print("| run | group | archives | source MB | parse CPU s | features CPU s | sequence CPU s | "
          "parse MB/s | features+sequence MB/s | (features+sequence) / parse |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        rows = [r for r in _load(run).values() if "error" not in r]
        groups = sorted({str(r["group"]) for r in rows}) + ["all"]
        for group in groups:
            sel = [r for r in rows if group in ("all", r["group"])]
            mb = sum(float(r["source_bytes"]) for r in sel) / MB  # type: ignore[arg-type]
            parse = sum(float(r["parse_cpu"]) for r in sel)  # type: ignore[arg-type]
            feat = sum(float(r["features_cpu"]) for r in sel)  # type: ignore[arg-type]
            seq = sum(float(r["sequence_cpu"]) for r in sel)  # type: ignore[arg-type]
            print(f"| {run.name} | {group} | {len(sel)} | {mb:.1f} | {parse:.1f} | {feat:.1f} | {seq:.1f} | "
                  f"{mb / parse if parse else 0:.1f} | {mb / (feat + seq) if feat + seq else 0:.2f} | "
                  f"{(feat + seq) / parse if parse else 0:.1f}x |")


def parity(before_path: Path, after_path: Path) -> int:
    before, after = _load(before_path), _load(after_path)
    same = 0
    diffs: list[str] = []
    for target, b in before.items():
        a = after.get(target)
        if a is None:
            diffs.append(f"{target}: missing in {after_path.name}")
            continue
        if "error" in b or "error" in a:
            if b.get("error") != a.get("error"):
                diffs.append(f"{target}: error {b.get('error')} vs {a.get('error')}")
            else:
                same += 1
            continue
        what = [k for k in ("files_digest", "manifest_digest", "sequence_digest", "events", "text") if a[k] != b[k]]
        if not what:
            same += 1
            continue
        detail = ""
        if a["events"] != b["events"]:
            be = {tuple(e) for e in b["events"]}  # type: ignore[attr-defined]
            ae = {tuple(e) for e in a["events"]}  # type: ignore[attr-defined]
            detail = f" only before {sorted(be - ae, key=str)[:4]} only after {sorted(ae - be, key=str)[:4]}"
        elif a["files_digest"] != b["files_digest"]:
            bf, af = b["files_digest"], a["files_digest"]
            detail = f" files {[p for p in bf if bf[p] != af.get(p)][:4]}"  # type: ignore[union-attr,attr-defined]
        diffs.append(f"{target} ({b['group']}): {', '.join(what)} differ{detail}")
    print(f"archives {len(before)}: identical {same}, different {len(diffs)}")
    print("(identical: every file's events with scope and snippet, functions, call sites, bindings and budget flags;"
          " manifest events; the sequence; the model text)")
    for d in diffs:
        print("DIFF", d)
    return 0 if not diffs else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", type=Path)
    parser.add_argument("repeats", nargs="?", type=int, default=5)
    parser.add_argument("--make-set", type=Path, metavar="SAMPLES_TSV")
    parser.add_argument("--max-bytes", type=int, default=3_000_000, help="largest archive --make-set takes")
    parser.add_argument("--set", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--summary", type=Path, nargs="+")
    parser.add_argument("--parity", type=Path, nargs=2)
    args = parser.parse_args()
    if args.make_set:
        make_set(args.make_set, {"pypi-benign": 120, "npm-benign": 80, "pypi-malicious": 100, "npm-malicious": 60},
                 args.max_bytes)
    elif args.set:
        run_set(args.set, args.out)
    elif args.summary:
        summary(args.summary)
    elif args.parity:
        return parity(*args.parity)
    elif args.file:
        one_file(args.file, args.repeats)
    else:
        parser.error("a FILE, --make-set, --set, --summary or --parity")
    return 0


if __name__ == "__main__":
    sys.exit(main())
