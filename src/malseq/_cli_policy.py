"""The policy options every command shares (`--config`, `--fail-on`, ...) and their merge with a config file.

A command adds them with `add_policy_arguments` and declares its overridable options
(`--operating-point`, `--timeout`, `--offline`, `--suppressions`) with a default of None; then
`apply_policy(args)` reads the config, lays the flags over it, writes the effective values back
into `args` (so `_cli._scan_options` sees them) and returns the `Policy` for the exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from malseq.errors import UsageError
from malseq.intake.limits import DEFAULT_LIMITS
from malseq.model import LOW_FPR
from malseq.policy import FailOn, Policy, load_policy, parse_fail_on
from malseq.sanitize import clean

FAIL_ON_HELP = ("comma list of what fails the run: malicious (exit 1), suspicious (score >= --suspicious-score, "
                "exit 1), errors (exit 3), not-scanned (listed dependencies that are not registry pins, exit 3), "
                "or none; default: malicious,errors or the config's fail-on")


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("a score is from 0 to 1")
    return value


def add_policy_arguments(parser: Any, strict: bool = True) -> None:
    """`--config`, `--no-config`, `--fail-on`, `--suspicious-score` and (with `strict`) `--strict`."""
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="policy file: a malseq.toml, or a pyproject.toml with [tool.malseq] (default: the first "
                        "one from the working directory up to the repository root); see docs/config.md")
    parser.add_argument("--no-config", action="store_true", help="ignore any config file")
    parser.add_argument("--fail-on", metavar="LIST", help=FAIL_ON_HELP)
    parser.add_argument("--suspicious-score", type=_score, metavar="SCORE",
                        help="with --fail-on suspicious: a score at or above this fails the run, even below the "
                        "verdict threshold")
    if strict:
        parser.add_argument("--strict", action="store_true",
                            help="also fail (exit 3) when listed dependencies were not scanned: adds not-scanned "
                            "to fail-on")


def policy_from_args(args: argparse.Namespace) -> Policy:
    """The settings the command line gives (None where a flag was not used)."""
    fail_on = None
    if args.fail_on is not None:
        words = args.fail_on.split(",")
        if not any(w.strip() for w in words):
            raise UsageError("--fail-on needs at least one value", hint="use --fail-on none to never fail on findings")
        fail_on = parse_fail_on(words)
    suppressions = getattr(args, "suppressions", None)
    if suppressions is None and os.environ.get("MALSEQ_SUPPRESSIONS"):
        suppressions = Path(os.environ["MALSEQ_SUPPRESSIONS"])
    return Policy(
        operating_point=getattr(args, "operating_point", None),
        fail_on=fail_on,
        suspicious_score=args.suspicious_score,
        suppressions=suppressions,
        timeout=getattr(args, "timeout", None),
        offline=True if getattr(args, "offline", None) else None,
    )


def apply_policy(args: argparse.Namespace, start_dir: Path | None = None) -> Policy:
    """The effective policy: the config file (found from `start_dir`, default the working directory)
    overridden by the flags. Writes the effective settings back into `args`."""
    if args.no_config and args.config is not None:
        raise UsageError("--config and --no-config contradict each other")
    base = Policy() if args.no_config else load_policy(start_dir or Path.cwd(), args.config)
    if base.source is not None and not getattr(args, "quiet", False):
        print(f"malseq: using config {clean(str(base.source), 300)}", file=sys.stderr)
    policy = base.merge(policy_from_args(args))
    if getattr(args, "strict", False):
        policy = replace(policy, fail_on=policy.failing_on | {FailOn.NOT_SCANNED})
    policy.check()
    if args.suspicious_score is not None and FailOn.SUSPICIOUS not in policy.failing_on:
        # A flag that silently changes nothing reads as "passed the check": say what it needs. (A
        # config's suspicious-score alone is normal: a --fail-on given for one run may use it.)
        failing = ",".join(f.value for f in FailOn if f in policy.failing_on)
        print(f"malseq: note: --suspicious-score has no effect: fail-on is {failing or 'none'}, without suspicious "
              f"(add it: --fail-on {failing + ',' if failing else ''}suspicious)", file=sys.stderr)
    args.operating_point = policy.operating_point or LOW_FPR
    args.timeout = policy.timeout if policy.timeout is not None else DEFAULT_LIMITS.time_budget_seconds
    args.offline = bool(policy.offline)
    if hasattr(args, "suppressions"):
        args.suppressions = policy.suppressions
    args.ignore_paths = policy.ignore_paths or ()
    return policy
