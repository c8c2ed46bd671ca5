"""Score corpus-export texts with one or two model folders, to compare models or CPUs (docs/results/determinism/cpu.md).

    python bench/model_cpu_compare.py EXPORT.jsonl.gz LIMIT OUT.json MODEL_DIR [MODEL_DIR]
    qemu-x86_64 -cpu EPYC-Milan .venv/bin/python bench/model_cpu_compare.py ...   # an emulated CPU without VNNI

Each text (the `sequence_text` of the export's rows; every k-th row for LIMIT of them, 0 for all) is
tokenised as a scan tokenises it and run alone, as a batch of one, through a session opened the way
a scan opens the shipped model (one thread, graph optimisation off). OUT.json holds (split, ecosystem,
label) per text and each folder's scores, so runs on two CPUs can be compared afterwards. With two
folders it also prints how many texts score bit for bit alike. CPU seconds per folder go to stderr.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def export_texts(export: Path, limit: int) -> list[tuple[Any, Any, Any, str]]:
    rows = []
    with gzip.open(export, "rt", encoding="utf-8") as fh:
        next(fh)  # the export's header line
        for line in fh:
            record = json.loads(line)
            analysis = record.get("analysis") or {}
            if analysis.get("sequence_text"):
                rows.append((record.get("split"), analysis.get("ecosystem"), record.get("label"),
                             analysis["sequence_text"]))
    if limit:
        rows = rows[:: max(1, len(rows) // limit)][:limit]
    return rows


def folder_scores(folder: Path, texts: list[str]) -> list[float]:
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from malseq.model.infer import configure_tokenizer
    from malseq.model.text import model_text

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    configure_tokenizer(tokenizer, json.loads((folder / "model_card.json").read_text(encoding="utf-8"))["max_len"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    scores = []
    for text in texts:
        ids = np.asarray([tokenizer.encode(model_text(text)).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        [score, *_] = session.run(None, {k: v for k, v in feeds.items() if k in names})
        scores.append(float(np.asarray(score).reshape(-1)[0]))
    return scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export", type=Path, help="a `malseq corpus export` file (lab/data/exports/)")
    ap.add_argument("limit", type=int, help="how many texts (evenly spread; 0: all)")
    ap.add_argument("out", type=Path)
    ap.add_argument("folders", type=Path, nargs="+", help="one or two model folders")
    args = ap.parse_args(argv)
    rows = export_texts(args.export, args.limit)
    scores: dict[str, list[float]] = {}
    for folder in args.folders:
        start = time.process_time()
        scores[str(folder)] = folder_scores(folder, [r[3] for r in rows])
        print(f"{folder}: {time.process_time() - start:.2f} CPU s for {len(rows)} texts", file=sys.stderr)
    args.out.write_text(json.dumps({"rows": [r[:3] for r in rows], "scores": scores}), encoding="utf-8")
    if len(args.folders) == 2:
        a, b = (scores[str(f)] for f in args.folders)
        same = sum(1 for x, y in zip(a, b, strict=True) if x == y)
        largest = max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)
        print(f"identical {same} of {len(a)}, largest difference {largest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
