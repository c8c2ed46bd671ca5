"""A training work dir at the running code's analysis key, from an imported export and the shared malware.

`malseq corpus import` writes the export's rows under the key of the code that made them
(`lab/data/exports/time-split-b0bd18ea.jsonl.gz`: key b0bd18ea), and `malseq train` reads rows at
the running code's key only. The benign archives are not on disk after a machine reset, but the
malicious ones are (`../shared/datasets/malicious-*`). So:

- every malicious sample of the train and validation splits is analysed again from its archive
  with the running code (the changes since b0bd18ea touched malicious layouts: an npm wrapper
  folder beside `__MACOSX/` hid install scripts from 13 of 73 npm test samples);
- benign rows are carried over to the running key unchanged (the same changes moved no benign
  test or fresh-val row: docs/results/time-split/aug/key-255c59d6, key-9357ff1c);
- malicious test rows are not touched (a candidate is chosen on validation; the test split is
  scored afterwards from archives with bench/shipped_metrics.py).

    python bench/retrain_workdir.py --from /work/runs/train --to /work/runs/train-npm \
        --datasets ../shared/datasets --jobs 2

Prints how many rows were carried and analysed, and how many malicious texts changed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="source", type=Path, required=True, help="an imported work dir")
    ap.add_argument("--to", type=Path, required=True, help="the new work dir (created)")
    ap.add_argument("--datasets", type=Path, required=True, help="the shared datasets folder")
    ap.add_argument("--split-file", default="split-time.json")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)

    from malseq_lab.corpus.analyse import analyse_samples
    from malseq_lab.corpus.cache import AnalysisCache, extractor_version
    from malseq_lab.corpus.loaders import load_shared_manifest

    args.to.mkdir(parents=True, exist_ok=False)
    for name in ("samples.tsv", args.split_file, "analysis.sqlite"):
        shutil.copy2(args.source / name, args.to / name)
    split = {s["key"]: s["split"] for s in json.loads((args.to / args.split_file).read_text())["samples"]}
    version = extractor_version()
    db = sqlite3.connect(args.to / "analysis.sqlite")
    old_versions = [v for (v,) in db.execute("SELECT DISTINCT extractor_version FROM analyses")]
    if len(old_versions) != 1:
        raise SystemExit(f"expected rows of one analysis key, found {old_versions}")
    old = old_versions[0]

    malicious = [s for folder in ("malicious-pypi", "malicious-npm")
                 for s in load_shared_manifest(args.datasets / folder)]
    to_analyse = [s for s in malicious if split.get(s.sha256) in ("train", "val")]
    wanted = {s.sha256 for s in to_analyse}
    old_text = {sha: text for sha, text in db.execute(
        "SELECT sha256, sequence_text FROM analyses WHERE extractor_version = ?", (old,)) if sha in wanted}
    benign_keys = {s for s, part in split.items() if part in ("train", "val", "test")} - {s.sha256 for s in malicious}
    carried = 0
    for sha in sorted(benign_keys):
        carried += db.execute(
            "INSERT OR REPLACE INTO analyses SELECT sha256, ?, status, error_kind, error_message, ecosystem, name, "
            "version, files, total_bytes, partial, events, sequence_ids, sequence_text, sequencer, fp_exact, "
            "fp_minhash, fp_tokens, seconds, created FROM analyses WHERE sha256 = ? AND extractor_version = ?",
            (version, sha, old)).rowcount
    db.commit()
    db.close()
    print(f"benign rows carried from {old} to {version}: {carried}")

    cache = AnalysisCache(args.to / "analysis.sqlite")
    stats = analyse_samples(to_analyse, cache, jobs=args.jobs)
    db = sqlite3.connect(args.to / "analysis.sqlite")
    changed = sum(1 for sha, text in db.execute(
        "SELECT sha256, sequence_text FROM analyses WHERE extractor_version = ?", (version,))
        if sha in wanted and old_text.get(sha) != text)
    by_eco: dict[str, int] = {}
    for s in to_analyse:
        by_eco[s.ecosystem] = by_eco.get(s.ecosystem, 0) + 1
    print(json.dumps({"malicious_analysed": len(to_analyse), "by_ecosystem": by_eco, "errors": stats.errors,
                      "sequence_text_changed": changed, "analysis_key": version}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
