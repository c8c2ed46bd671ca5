"""Where the CPU of one package goes in a `malseq scan --jobs N` batch, stage by stage.

Runs each stage of what a worker and the parent do for one archive, in this one process, timed with
the CPU clock of this process (`time.process_time`), and prints CPU milliseconds per package for
each, plus what a run pays once (imports, model load):

- intake: read the archive into a Package (`malseq.intake.load_target`);
- features: behaviour events of every file (`malseq.features.analyse_package`);
- sequence: execution order and the model text (`malseq.sequence`, `malseq.model.text`);
- ipc (with call graph) / ipc (as sent): pickling the result in a worker and reading it in the
  parent, with the whole analysis and without the call graph (`ScanOptions.keep_call_graph=False`,
  what a plain `malseq scan` sends);
- tokenise, onnx, profile: the sequence model's tokenizer and inference (one text, one thread) and
  the behaviour-profile trees, in the parent;
- report: the JSON entry of the result.

The workers' garbage-collector settings (`malseq._isolation.WORKER_GC_THRESHOLDS`, frozen start)
apply, as in a worker. A benchmark, not a test: it asserts nothing.

    PYTHONPATH=src nice python bench/package_cpu.py --samples /work/runs/corpus/samples.tsv --per-ecosystem 30
    PYTHONPATH=src nice python bench/package_cpu.py --list archives.txt
"""

from __future__ import annotations

import argparse
import gc
import pickle
import sys
import time
from pathlib import Path

CLOCK = time.process_time
STAGES = ("intake", "features", "sequence", "ipc (with call graph)", "ipc (as sent)", "tokenise", "onnx", "profile",
          "report")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from throughput import add_archive_arguments, archive_groups

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_archive_arguments(parser)
    args = parser.parse_args()

    start = CLOCK()
    import malseq._isolation
    import malseq.analysis
    import malseq.features.javascript
    import malseq.features.manifest
    import malseq.features.python
    import malseq.report.json_report
    import malseq.scan  # noqa: F401
    imports = CLOCK() - start
    from malseq.model.infer import SequenceScorer
    from malseq.model.scoring import key_warning, load_stack

    start = CLOCK()
    scorer = SequenceScorer.load()
    stack = load_stack(scorer.model_dir)
    key_warning(scorer.card)
    model_load = CLOCK() - start
    gc.freeze()
    gc.set_threshold(*malseq._isolation.WORKER_GC_THRESHOLDS)

    groups = archive_groups(args)
    print(f"once per run: imports {imports:.2f} CPU s, model load {model_load:.2f} CPU s")
    print("| group | packages | source KB/package | " + " | ".join(STAGES) + " | total |")
    print("|---|---|---|" + "---|" * (len(STAGES) + 1))
    for group, archives in groups.items():
        spent, source = measure(archives, scorer, stack)
        n = len(archives)
        cells = [f"{spent[s] / n * 1000:.1f}" for s in STAGES]
        total = sum(v for k, v in spent.items() if k != "ipc (with call graph)") / n * 1000
        print(f"| {group} | {n} | {source / n / 1e3:.0f} | " + " | ".join(cells) + f" | {total:.0f} |")
    print("CPU ms per package; total: every stage but `ipc (with call graph)`")
    return 0


def measure(archives: list[str], scorer: object, stack: object) -> tuple[dict[str, float], int]:
    import numpy as np

    from malseq._deadline import Deadline
    from malseq.features import analyse_package
    from malseq.intake import IntakeOptions, load_target
    from malseq.intake.build import check_analysable
    from malseq.model.scoring import score_input
    from malseq.model.text import model_text
    from malseq.report.json_report import render_json
    from malseq.scan import PackageInfo, TargetResult, parse_targets, without_call_graph
    from malseq.sequence import build_sequence, render_text

    spent = dict.fromkeys(STAGES, 0.0)
    source = 0
    session, tokenizer = scorer._session, scorer._tokenizer  # type: ignore[attr-defined]
    names = [i.name for i in session.get_inputs()]

    def timed(stage: str, start: float) -> float:
        now = CLOCK()
        spent[stage] += now - start
        return now

    for text, target in zip(archives, parse_targets(archives), strict=True):
        t = CLOCK()
        deadline = Deadline(60)
        package = load_target(target, IntakeOptions(offline=True), deadline)
        check_analysable(package)
        source += sum(f.size for f in package.source_files)
        t = timed("intake", t)
        analysis = analyse_package(package, deadline)
        t = timed("features", t)
        sequence = build_sequence(package, analysis, deadline)
        model_input = model_text(render_text(sequence))
        t = timed("sequence", t)
        whole = TargetResult(text, PackageInfo.of(package), analysis, None, 0.0, sequence, model_input=model_input)
        pickle.loads(pickle.dumps(whole))
        t = timed("ipc (with call graph)", t)
        result = TargetResult(text, PackageInfo.of(package), without_call_graph(analysis), None, 0.0, sequence,
                              model_input=model_input)
        pickle.loads(pickle.dumps(result))
        t = timed("ipc (as sent)", t)
        [encoding] = tokenizer.encode_batch([model_input])
        t = timed("tokenise", t)
        ids = np.asarray([encoding.ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        session.run(None, {k: v for k, v in feeds.items() if k in names})
        t = timed("onnx", t)
        item = score_input(result)
        if item is not None and stack is not None:
            stack.profile.score(item.profile)  # type: ignore[attr-defined]
        t = timed("profile", t)
        render_json([result])
        timed("report", t)
    return spent, source


if __name__ == "__main__":
    sys.exit(main())
