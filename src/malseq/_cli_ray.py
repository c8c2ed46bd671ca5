"""`malseq scan --engine ray --out-dir DIR`: the scan's options over `malseq.ray_engine` (registry scale).

The report is the directory: one JSON line per target in shard files, as `--format jsonl` writes
them; stdout gets the run's summary (a text line, or `{"summary": {...}}` with `--format json` or
`jsonl`). The exit code follows the same policy as `malseq scan`, over this run's results and the
entries DIR already held for its targets.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from malseq.errors import UsageError
from malseq.sanitize import clean
from malseq.scan import TargetResult

if TYPE_CHECKING:
    from malseq.intake.lockfiles import LockfilePin
    from malseq.policy import Policy
    from malseq.scan import ScanOptions
    from malseq.suppress import Suppression

ENGINES = ("local", "ray")


def register(sc: argparse.ArgumentParser) -> None:
    """The engine options of `malseq scan`."""
    sc.add_argument("--engine", choices=ENGINES, default="local",
                    help="local (default): worker processes on this machine; ray: one Ray task per target over a "
                    "Ray cluster (the `ray` extra), results written as JSON lines into --out-dir, resumable")
    sc.add_argument("--address", metavar="ADDR",
                    help="with --engine ray: the Ray cluster to use (HOST:PORT as `ray start --head` prints it, "
                    "ray://HOST:10001, or auto); default: a local Ray instance with --jobs CPUs")
    sc.add_argument("--out-dir", type=Path, metavar="DIR",
                    help="with --engine ray (required there): where the result shards go; a re-run skips every "
                    "target that already has a result there")
    sc.add_argument("--max-retries", type=int, default=3, metavar="N",
                    help="with --engine ray: re-runs of a target whose Ray worker or node died (default 3)")


def check(args: argparse.Namespace) -> None:
    """Options that make no sense together fail before anything runs (exit 2)."""
    if args.engine != "ray":
        for flag, value in (("--out-dir", args.out_dir), ("--address", args.address)):
            if value is not None:
                raise UsageError(f"{flag} is an option of --engine ray", hint="add --engine ray")
        return
    if args.out_dir is None:
        raise UsageError("--engine ray writes its results into a directory", hint="add --out-dir DIR")
    if args.format == "sarif":
        raise UsageError("--engine ray writes JSON lines into --out-dir, not SARIF",
                         hint="use --format text, json or jsonl for the summary on stdout")
    if args.against_previous:
        raise UsageError("--against-previous is not available with --engine ray", hint="use `malseq diff`")
    if args.max_retries < 0:
        raise UsageError("--max-retries must be 0 or more")


def run(args: argparse.Namespace, targets: list[str], options: ScanOptions, suppressions: Mapping[str, Suppression],
        pins: Mapping[str, tuple[LockfilePin, ...]], lock_not_scanned: int, policy: Policy,
        unreadable: Sequence[TargetResult] = ()) -> int:
    """`unreadable`: `-r`/`-c` includes of a --lockfile that could not be read (`_cli._LockfilePins`):
    never scanned, so in no shard; counted in the summary (errors) and the exit code."""
    from malseq._cli import _emit, _StderrProgress
    from malseq.policy import exit_code
    from malseq.ray_engine import RayOptions, import_ray, scan_on_ray, stored_result
    from malseq.report.jsonl import summary
    from malseq.suppress import apply_suppressions

    import_ray()  # a missing extra is a usage error (exit 2) before anything starts

    ray_options = RayOptions(out_dir=args.out_dir, address=args.address,
                             num_cpus=args.jobs if args.address is None else None, max_retries=args.max_retries)

    def finish(result: TargetResult) -> TargetResult:
        [result] = apply_suppressions([result], suppressions)
        return replace(result, pinned_by=pins.get(result.target, ()))

    progress = _StderrProgress(enabled=not args.quiet, total=len(dict.fromkeys(targets)))
    results: list[TargetResult] = []
    run_ = scan_on_ray(targets, options, ray_options, finish=finish)
    interrupted = False
    try:
        while True:
            result = next(run_)
            results.append(result)
            progress.finished(result)
    except StopIteration as stop:
        ran = stop.value
    except KeyboardInterrupt:
        interrupted = True
        run_.close()  # cancels what is in flight; every finished line is already in DIR
        ran = None
    if ran is None:
        print(f"malseq: interrupted: {len(results)} result(s) written to {clean(str(args.out_dir), 200)}; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    everything = results + [stored_result(s) for s in ran.stored] + list(unreadable)
    code = exit_code(everything, policy, not_scanned=lock_not_scanned, unread=len(unreadable))
    counts = summary(everything, interrupted=interrupted, exit_code=code)
    counts.update({"already_done": ran.skipped, "scanned_now": ran.scanned, "out_dir": str(args.out_dir),
                   "shards": [str(p) for p in ran.shards]})
    if args.format in ("json", "jsonl"):
        _emit(json.dumps({"summary": counts}, ensure_ascii=True) + "\n")
    else:
        _emit(f"{counts['targets']} targets: {ran.scanned} scanned now, {ran.skipped} already in "
              f"{clean(str(args.out_dir), 200)}; {counts['flagged']} flagged, {counts['errors']} errors "
              f"({len(ran.shards)} shard file(s) written)\n")
    for why in sorted({r.unscored for r in results if r.unscored}):
        print(f"malseq: error: no verdict: {clean(why, 300)}", file=sys.stderr)
    for warning in sorted({r.model_warning for r in results if r.model_warning}):
        print(f"malseq: warning: {clean(warning, 300)}", file=sys.stderr)
    return code
