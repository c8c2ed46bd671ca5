"""`malseq audit [PATH]` (registered by `malseq._cli`): every dependency of a project, one by one.

Exit codes of `malseq audit`:
  0  every dependency scanned, none flagged, no failing finding
  1  a dependency flagged as malicious (not suppressed), or a failing integrity finding: a lockfile
     hash that the downloaded archive does not match, an installed package that differs from the
     registry's release (one without install scripts), an installed distribution changed since
     its RECORD was written, a pin without hashes that more than one searched index serves
     (dependency confusion)
  2  usage error
  3  a dependency could not be scanned or got no verdict, or a lockfile could not be read (malformed,
     truncated, merge conflict markers) or a requirements file's -r/-c include (missing);
     with --strict, also any entry not scanned (git, path, URL, private index, unread lockfile,
     manifest without a lockfile);
     also: nothing to audit in PATH
  4  the report could not be written
  130  interrupted (Ctrl-C): text prints the targets that finished, jsonl has them already
`--fail-on` and the config's fail-on change 1 and 3 as `malseq.policy.exit_code` says (failing
integrity findings count under `malicious`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from malseq._cli_policy import add_policy_arguments, apply_policy
from malseq.errors import UsageError
from malseq.intake.limits import DEFAULT_LIMITS
from malseq.model import OPERATING_POINTS
from malseq.sanitize import clean

if TYPE_CHECKING:
    from collections.abc import Sequence

    from malseq.audit import AuditedTarget, AuditReport, NotScannedEntry
    from malseq.policy import Policy


def register(sub: Any) -> None:
    ap = sub.add_parser(
        "audit",
        help="scan every dependency of a project: its lockfiles' pins and what is installed",
        description=(
            "Find the project's lockfiles (package-lock.json, npm-shrinkwrap.json, yarn.lock, pnpm-lock.yaml, "
            "bun.lock, requirements*.txt with -r/-c includes, poetry.lock, uv.lock, pdm.lock, Pipfile.lock) and "
            "installed packages (node_modules, nested and scoped; a virtualenv's site-packages), scan each one, "
            "check lockfile hashes against the downloads and installed files against the registry's release. "
            "Entries that are not registry releases are listed as not scanned."
        ),
    )
    ap.add_argument("path", nargs="?", default=".", metavar="PATH",
                    help="the project folder (default: .), or one lockfile to audit on its own")
    ap.add_argument("--format", choices=("text", "json", "jsonl", "sarif"), default="text",
                    help="report format (default: text); jsonl: one line per target as it finishes, then the "
                    "findings, entries not scanned and a summary line")
    ap.add_argument("--no-installed", action="store_true", help="only the lockfiles: skip node_modules and virtualenvs")
    ap.add_argument("--no-lockfiles", action="store_true", help="only what is installed: skip the lockfiles")
    ap.add_argument("--no-verify", action="store_true",
                    help="do not compare lockfile hashes and installed files with the registry's files")
    ap.add_argument("--features", action="store_true", help="list every behaviour found with file:line")
    ap.add_argument("--sequence", action="store_true", help="show each target's behaviours in execution order")
    ap.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                    help=f"time budget per target, in CPU seconds (default: {DEFAULT_LIMITS.time_budget_seconds:g})")
    ap.add_argument("--pypi-index-url", metavar="URL", help="PyPI simple index (as for scan)")
    ap.add_argument("--npm-registry", metavar="URL", help="npm registry (as for scan)")
    ap.add_argument("--cache-dir", type=Path, metavar="DIR", help="download cache (as for scan)")
    ap.add_argument("--offline", action="store_true", default=None,
                    help="never touch the network: pinned releases and comparisons come from the cache only")
    ap.add_argument("--model", type=Path, metavar="DIR", help="model folder (default: the shipped model)")
    ap.add_argument("--no-isolate", action="store_true", help="scan in this process instead of a worker process")
    ap.add_argument("--operating-point", choices=OPERATING_POINTS, default=None,
                    help="verdict threshold (as for scan)")
    ap.add_argument("--suppressions", type=Path, metavar="FILE",
                    help="TOML file of reviewed archives (as for scan; default: $MALSEQ_SUPPRESSIONS, then the "
                    "config's suppressions)")
    # --config, --no-config, --fail-on, --suspicious-score and --strict (exit 3 when any entry was not
    # scanned: git, path, URL, private index, unread lockfile), read with the project's config
    add_policy_arguments(ap)
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr (the report still lists "
                    "everything not scanned)")
    from malseq._cli import add_pypi_file_options

    add_pypi_file_options(ap)  # --wheel/--sdist/--python-version/--platform: which file of a PyPI pin is scanned
    ap.set_defaults(no_analysis=False, zip_password=None)


def run(args: argparse.Namespace) -> int:
    from malseq._cli import _emit, _scan_options, _StderrProgress
    from malseq.audit import AuditOptions, audit
    from malseq.policy import exit_code, suspicious_reasons
    from malseq.suppress import apply_suppressions, load_suppressions

    if not args.path.strip():  # Path("") is the working directory: `malseq audit "$UNSET"` must not audit it
        raise UsageError("an empty PATH", hint="give the project folder or one lockfile; for the working "
                         "directory, give . or no PATH")
    policy = apply_policy(args)  # the config file under the flags; sets args.timeout, operating_point...
    options = AuditOptions(scan=_scan_options(args), lockfiles=not args.no_lockfiles,
                           installed=not args.no_installed, verify=not args.no_verify)
    suppressions = load_suppressions(policy.suppressions) if policy.suppressions else {}
    if not args.quiet:
        print(f"auditing {clean(args.path, 200)}", file=sys.stderr)
    lines = None
    if args.format == "jsonl":
        from malseq.report.audit_report import AuditJsonLines

        lines = AuditJsonLines(_emit)

    done: list[AuditedTarget] = []  # text: the targets that finished, for a Ctrl-C before the report

    def streamed(target: AuditedTarget) -> None:  # jsonl: out at once, a pipeline reads it while the audit goes on
        [result] = apply_suppressions([target.result], suppressions)
        if lines is not None:
            lines.target(replace(target, result=result))
        else:
            done.append(replace(target, result=result))

    try:
        report = audit(Path(args.path), options, _StderrProgress(enabled=not args.quiet),
                       on_target=streamed if lines is not None or args.format == "text" else None)
    except KeyboardInterrupt:
        from malseq._cli import EXIT_INTERRUPTED

        if lines is not None:
            lines.interrupted(EXIT_INTERRUPTED)  # what finished is already out; say the run did not end
            return EXIT_INTERRUPTED
        if args.format != "text":
            raise  # a JSON/SARIF document half written would be no document: exit 130, nothing on stdout
        # as `malseq scan`: what finished, then one line saying the run did not end (even with -q: a log
        # must not read the partial list as the whole audit)
        from malseq.report.audit_report import render_audit_targets

        _emit("".join(f"{line}\n" for line in render_audit_targets(done, args.features, args.sequence)))
        print(f"malseq: interrupted: {len(done)} target(s) finished (listed above); the audit did not complete: "
              "no findings, entries not scanned or summary", file=sys.stderr)
        return EXIT_INTERRUPTED
    results = apply_suppressions(list(report.results), suppressions)
    report = replace(report, targets=tuple(replace(t, result=r) for t, r in zip(report.targets, results, strict=True)))
    code = exit_code(results, policy, not_scanned=len(report.not_scanned), findings=len(report.failing_findings),
                     unread=len(report.unreadable_files))
    if lines is not None:
        lines.finish(report, code)
    elif args.format == "json":
        from malseq.report.audit_report import render_audit_json

        _emit(render_audit_json(report, code))
    elif args.format == "sarif":
        from malseq.policy import FailOn
        from malseq.report.audit_report import render_audit_sarif

        _emit(render_audit_sarif(report, code, not_scanned_fails=FailOn.NOT_SCANNED in policy.failing_on,
                                 unread_fails=FailOn.ERRORS in policy.failing_on))
    else:
        from malseq.report.audit_report import render_audit_text

        _emit(render_audit_text(report, show_features=args.features, show_sequence=args.sequence))
    for warning in sorted({r.model_warning for r in results if r.model_warning}):
        print(f"malseq: warning: {clean(warning, 300)}", file=sys.stderr)
    unscored = sorted({r.unscored for r in results if r.unscored})
    for why in unscored:
        print(f"malseq: error: no verdict: {clean(why, 300)}", file=sys.stderr)
    for why in report.unchecked if args.format != "text" else ():  # the text report says it itself
        print(f"malseq: warning: {clean(why, 400)}", file=sys.stderr)
    if report.not_scanned and args.format != "text":  # the text report lists them itself
        print(f"malseq: {len(report.not_scanned)} entr{'y' if len(report.not_scanned) == 1 else 'ies'} not scanned "
              "(listed in the report)", file=sys.stderr)
    for why in suspicious_reasons(results, policy):  # even with -q: it decides exit 1 on a BENIGN verdict
        print(f"malseq: failing: {clean(why, 300)}", file=sys.stderr)
    for why in exit_reasons(report, policy, code):  # even with -q: a CI log must say why the job failed
        print(f"malseq: exit {code}: {why}", file=sys.stderr)
    return code


def _names(items: list[str]) -> str:
    """The first few of `items`, then how many more (a CI log line stays readable)."""
    shown = ", ".join(clean(i, 120) for i in items[:3])
    return shown + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def unread_reason(entries: Sequence[NotScannedEntry]) -> str:
    """Why unreadable dependency files fail the run (exit 3 under fail-on errors), at the line to fix: where
    a lockfile's parser stopped, or the -r line of a missing include. `malseq scan --lockfile` says the same."""
    def _names(items: list[str]) -> str:
        shown = ", ".join(clean(i, 120) for i in items[:3])
        return shown + (f" and {len(items) - 3} more" if len(items) > 3 else "")

    files = len({n.subject for n in entries})
    what = "lockfile(s)" if all(n.subject == n.where for n in entries) else "lockfile(s) or -r include(s)"
    places = [n.where + (f" line {n.line}" if n.line else "") + ("" if n.subject == n.where else f" ({n.subject})")
              for n in entries]
    return (f"{files} {what} could not be read, so nothing they pin was audited: {_names(places)} (fix or "
            "regenerate them with their tool; fail-on errors)")


def exit_reasons(report: AuditReport, policy: Policy, code: int) -> list[str]:
    """What decided a non-zero exit code, one line each (the first few names of each kind)."""
    from malseq.policy import EXIT_FAILED, EXIT_NOT_JUDGED, FailOn, failing, not_judged

    out: list[str] = []
    if code == EXIT_FAILED:
        flagged = [r.target for r in failing(report.results, policy) if r.verdict == "malicious"]
        if flagged:
            out.append(f"{len(flagged)} dependenc{'y' if len(flagged) == 1 else 'ies'} flagged as malicious: "
                       f"{_names(flagged)}")
        findings = report.failing_findings if FailOn.MALICIOUS in policy.failing_on else ()
        if findings:
            out.append(f"{len(findings)} failing integrity finding(s): " + _names(
                [f"{f.kind.value} {f.subject}" + ("" if f.where == f.subject and not f.line else
                                                  f" ({f.where}" + (f" line {f.line})" if f.line else ")"))
                 for f in findings]))
    elif code == EXIT_NOT_JUDGED:
        if FailOn.ERRORS in policy.failing_on:
            unjudged = not_judged(report.results)
            if unjudged:
                out.append(f"{len(unjudged)} target(s) not scanned completely or without a verdict: "
                           f"{_names([r.target for r in unjudged])} (see the report; fail-on errors)")
            if report.unreadable_files:
                out.append(unread_reason(report.unreadable_entries))
        if FailOn.NOT_SCANNED in policy.failing_on and report.not_scanned:
            out.append(f"{len(report.not_scanned)} entr{'y' if len(report.not_scanned) == 1 else 'ies'} not scanned "
                       "(--strict / fail-on not-scanned)")
    return out
