"""`malseq diff OLD NEW` and `malseq scan --against-previous` (registered by `malseq._cli`).

Exit codes of `malseq diff`:
  0  both sides scanned; the change is not judged malicious
  1  the change is judged malicious: NEW is flagged by the model and the added behaviours include
     install- or import-time transmission or execution (malseq.diff)
  2  usage error: a bad option or target, or OLD and NEW from different ecosystems
  3  one side could not be scanned (the report names it), or a side got no verdict (no usable model)
  4  the report could not be written
`--fail-on` and the config's fail-on change 1 and 3 as `malseq.policy.diff_exit_code` says.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from malseq._cli_policy import add_policy_arguments, apply_policy
from malseq.intake.limits import DEFAULT_LIMITS
from malseq.model import OPERATING_POINTS
from malseq.sanitize import clean
from malseq.scan import ScanOptions, TargetResult


def register(sub: Any) -> None:
    dp = sub.add_parser(
        "diff",
        help="what a release adds to another: files, behaviours in execution order, hooks, dependencies",
        description=(
            "Compare two targets of one ecosystem (folders, archives, pypi:/npm: releases, package URLs): files "
            "added, removed, changed and renamed, the behaviours NEW adds in its execution order (install first), "
            "new install hooks, dependencies, binaries and network destinations. Exit code 1 when NEW is flagged "
            "and the change adds install- or import-time transmission or execution."
        ),
    )
    dp.add_argument("old", metavar="OLD")
    dp.add_argument("new", metavar="NEW")
    dp.add_argument("--format", choices=("text", "json", "sarif"), default="text",
                    help="report format (default: text)")
    dp.add_argument("--zip-password", metavar="PASSWORD", help="password for encrypted zips")
    dp.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                    help=f"time budget per side (default: {DEFAULT_LIMITS.time_budget_seconds:g})")
    dp.add_argument("--pypi-index-url", metavar="URL", help="PyPI simple index (as for scan)")
    dp.add_argument("--npm-registry", metavar="URL", help="npm registry (as for scan)")
    from malseq._cli import add_pypi_file_options

    add_pypi_file_options(dp)  # --wheel/--sdist/--python-version/--platform, as for scan
    dp.add_argument("--cache-dir", type=Path, metavar="DIR", help="download cache (as for scan)")
    dp.add_argument("--offline", action="store_true", default=None,
                    help="never touch the network; registry targets must be cached")
    dp.add_argument("--model", type=Path, metavar="DIR", help="model folder (default: the shipped model)")
    dp.add_argument("--no-isolate", action="store_true", help="scan in this process instead of a worker process")
    dp.add_argument("--operating-point", choices=OPERATING_POINTS, default=None,
                    help="verdict threshold for NEW's score (as for scan)")
    dp.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_policy_arguments(dp, strict=False)
    dp.set_defaults(no_analysis=False)


def run(args: argparse.Namespace) -> int:
    from malseq._cli import _emit, _scan_options
    from malseq.diff import diff_targets
    from malseq.policy import diff_exit_code

    policy = apply_policy(args)
    options = _scan_options(args)
    if not args.quiet:
        print(f"diffing {clean(args.old, 200)} -> {clean(args.new, 200)}", file=sys.stderr)
    diff = diff_targets(args.old, args.new, options)
    if args.format == "json":
        from malseq.report.diff_report import render_diff_json

        _emit(render_diff_json(diff))
    elif args.format == "sarif":
        from malseq.report.diff_report import render_diff_sarif

        _emit(render_diff_sarif(diff))
    else:
        from malseq.report.diff_report import render_diff_text

        _emit(render_diff_text(diff))
    if diff.error is not None:
        side = diff.old if diff.error.side.value == "old" else diff.new
        print(f"malseq: error: the {diff.error.side.value} side {clean(side.target, 200)} could not be scanned: "
              f"{clean(diff.error.error.kind, 80)}: {clean(diff.error.error.message, 400)}", file=sys.stderr)
        return diff_exit_code(diff, policy)
    for warning in sorted({r.model_warning for r in (diff.old, diff.new) if r.model_warning}):
        print(f"malseq: warning: {clean(warning, 300)}", file=sys.stderr)
    unscored = sorted({r.unscored for r in (diff.old, diff.new) if r.unscored})
    for why in unscored:
        print(f"malseq: error: no verdict: {clean(why, 300)}", file=sys.stderr)
    return diff_exit_code(diff, policy)


def add_lookalike(result: TargetResult, options: ScanOptions, quiet: bool) -> TargetResult:
    """`scan --lookalikes`: a result whose package is named like a popular one gains `lookalike`."""
    from malseq.diff.lookalike import check_lookalike

    comparison = check_lookalike(result, replace(options, score=True))
    if comparison is None:
        return result
    if not quiet:
        what = comparison.notice or f"copy of {comparison.original}"
        print(f"{clean(result.target, 200)}: look-alike check: {clean(what, 400)}", file=sys.stderr)
    return replace(result, lookalike=comparison)


def add_against_previous(results: Sequence[TargetResult], texts: Sequence[str], options: ScanOptions,
                         quiet: bool) -> list[TargetResult]:
    """`scan --against-previous`: each registry release's result gains `previous` (other targets: unchanged)."""
    from malseq.diff.previous import against_previous
    from malseq.intake.targets import RegistryTarget, parse_target

    by_text = dict(zip(texts, [parse_target(t) for t in texts], strict=True))
    out: list[TargetResult] = []
    for result in results:
        target = by_text.get(result.target)
        if not isinstance(target, RegistryTarget):
            out.append(result)
            continue
        if not quiet:
            print(f"{clean(result.target, 200)}: comparing with the previous release", file=sys.stderr)
        comparison = against_previous(result, target, replace(options, score=True))
        if comparison.notice and not quiet:
            print(f"malseq: notice: {clean(result.target, 200)}: {clean(comparison.notice, 400)}", file=sys.stderr)
        out.append(replace(result, previous=comparison))
    return out
