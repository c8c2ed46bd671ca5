"""Reports of `malseq audit`: the scan report of every dependency, plus the audit's own parts.

Text: what was read, each target as `malseq scan` shows it, then the findings, the entries
not scanned (always, even with -q) and a summary line. JSON: one object (docs/output.md,
"malseq audit"). SARIF: the scan's SARIF run, plus one result per finding and per entry not
scanned, located at the lockfile or folder that names it, relative to the audited folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from malseq.audit import AuditedTarget, AuditReport, DependencyFile, Finding, NotScannedEntry, summary_counts
from malseq.sanitize import clean

if TYPE_CHECKING:
    from malseq.report.sarif import SarifPaths

AUDIT_SCHEMA_VERSION = 1
NOT_SCANNED_RULE = "dependency-not-scanned"
_SHOWN_NOT_SCANNED = 200


def summary_line(report: AuditReport) -> str:
    c = summary_counts(report)
    reported = len(report.findings) - c["findings"]  # findings reported but not failing (install scripts)
    return (f"summary: {c['targets']} target(s): {c['scanned']} scanned, {c['flagged']} flagged, {c['errors']} "
            f"error(s), {c['suppressed']} suppressed, {c['findings']} finding(s)"
            + (f" (and {reported} not failing)" if reported else "")
            + (f", {c['without_verdict']} without a verdict" if c["without_verdict"] else "")
            + (f", {c['unchecked']} dependency-confusion check(s) not run or incomplete" if c["unchecked"] else "")
            + f", {c['not_scanned']} not scanned")


def _at(where: str, line: int | None, limit: int = 200) -> str:
    """`package-lock.json line 12`: the file and the line that name a dependency."""
    return clean(where, limit) + (f" line {line}" if line else "")


def render_audit_targets(targets: Sequence[AuditedTarget], show_features: bool = False,
                         show_sequence: bool = False) -> list[str]:
    """The text report's entries of `targets` (also what an interrupted audit prints: those that finished)."""
    from malseq.report.text import render_result, shared_hint_lines, shared_hints

    lines = []
    shared = shared_hints([t.result for t in targets])  # offline with an empty cache: how to fill it, once
    for t in targets:
        body = render_result(t.result, show_features, show_sequence, omit_hints=shared)
        if t.index is not None:  # its requirements file has pip search several indexes: say which one it was
            head, _, rest = body.partition("\n")
            body = "\n".join([head, f"  from index: {clean(t.index, 200)} (the one pip installs it from)",
                              *([rest] if rest else [])])
        lines.append(body)
    lines.extend(shared_hint_lines(shared))
    return lines


def render_audit_text(report: AuditReport, show_features: bool = False, show_sequence: bool = False) -> str:
    lines = [f"audit of {clean(report.root, 300)}:"]
    for f in report.files:
        extra = f", includes {', '.join(clean(i, 120) for i in f.includes)}" if f.includes else ""
        # the kind only when the name does not already say it: `package-lock.json (npm package-lock)`,
        # `requirements/base.txt (requirements)`, but `pnpm-lock.yaml`, not `pnpm-lock.yaml (pnpm-lock.yaml)`
        kind = "" if f.path.rsplit("/", 1)[-1] == f.kind else f" ({f.kind})"
        lines.append(f"  {clean(f.path, 200)}{kind}: {f.pinned} to scan, {f.not_scanned} not scanned{extra}")
    lines.extend(render_audit_targets(report.targets, show_features, show_sequence))
    if report.findings:
        lines.append(f"findings ({len(report.findings)}):")
        for finding in report.findings:
            level = "FAIL" if finding.fails else "note"
            place = "" if finding.where == finding.subject and not finding.line else \
                f" ({_at(finding.where, finding.line)})"  # an installed folder is its own place
            lines.append(f"  {level} {finding.kind.value}: {clean(finding.subject, 200)}{place}: "
                         f"{clean(finding.message, 600)}")
    if report.not_scanned:
        lines.append(f"not scanned ({len(report.not_scanned)}):")
        for entry in report.not_scanned[:_SHOWN_NOT_SCANNED]:
            # a whole file (a manifest, an unread lockfile) is its own subject: named once
            subject = "" if entry.subject == entry.where else f": {clean(entry.subject, 200)}"
            lines.append(f"  {_at(entry.where, entry.line, 120)}{subject} [{entry.kind}]: {clean(entry.reason, 400)}")
        if len(report.not_scanned) > _SHOWN_NOT_SCANNED:
            lines.append(f"  ... and {len(report.not_scanned) - _SHOWN_NOT_SCANNED} more (see --format json)")
    for note in report.notes[:50]:
        lines.append(f"note: {clean(note, 400)}")
    for unchecked in report.unchecked[:50]:
        lines.append(f"warning: {clean(unchecked, 400)}")
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def _summary(report: AuditReport, exit_code: int | None) -> dict[str, int]:
    counts = summary_counts(report)
    if exit_code is not None:  # the exit code of the run under its fail-on policy (the CLI's)
        counts["exit_code"] = exit_code
    return counts


def target_to_dict(target: AuditedTarget) -> dict[str, Any]:
    """One audited target: the scan report's entry plus where it comes from (`$defs/audited_entry`)."""
    from malseq.report.json_report import result_to_dict

    item = result_to_dict(target.result)
    item["origin"] = target.origin
    item["sources"] = list(target.sources)
    item["index"] = target.index
    return item


def _file_dict(f: DependencyFile) -> dict[str, Any]:
    return {"path": f.path, "kind": f.kind, "pinned": f.pinned, "not_scanned": f.not_scanned,
            "includes": list(f.includes)}


def _finding_dict(f: Finding) -> dict[str, Any]:
    return {"kind": f.kind.value, "subject": f.subject, "where": f.where, "line": f.line, "message": f.message,
            "files": list(f.files), "files_root": f.files_root, "fails": f.fails}


def _not_scanned_dict(n: NotScannedEntry) -> dict[str, Any]:
    return {"subject": n.subject, "kind": n.kind, "reason": n.reason, "where": n.where, "line": n.line}


def audit_to_dict(report: AuditReport, exit_code: int | None = None) -> dict[str, Any]:
    return {
        "schema_version": AUDIT_SCHEMA_VERSION,
        "root": report.root,
        "files": [_file_dict(f) for f in report.files],
        "results": [target_to_dict(t) for t in report.targets],
        "findings": [_finding_dict(f) for f in report.findings],
        "not_scanned": [_not_scanned_dict(n) for n in report.not_scanned],
        "notes": list(report.notes),
        "unchecked": list(report.unchecked),
        "summary": _summary(report, exit_code),
    }


def render_audit_json(report: AuditReport, exit_code: int | None = None) -> str:
    return json.dumps(audit_to_dict(report, exit_code), indent=2, ensure_ascii=True) + "\n"


def _line(doc: dict[str, Any]) -> str:
    # ensure_ascii: control or bidi characters from packages stay escaped, as in the JSON report
    return json.dumps(doc, ensure_ascii=True) + "\n"


class AuditJsonLines:
    """`malseq audit --format jsonl`: each target's line as it finishes (`target_to_dict`, in the order
    targets finish), then, once the audit is done, one line per part of the report that is not a target,
    each an object with one key naming it (`{"file": ...}`, `{"finding": ...}`, `{"not_scanned": ...}`,
    `{"note": ...}`, `{"unchecked": ...}`), and last `{"summary": {...}}` (the JSON report's summary,
    with the exit code). `write` must flush."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self.finished = 0

    def target(self, target: AuditedTarget) -> None:
        self._write(_line(target_to_dict(target)))
        self.finished += 1

    def interrupted(self, exit_code: int) -> None:
        """Ctrl-C: the targets written so far are what finished; the rest of the report is not known."""
        self._write(_line({"summary": {"interrupted": True, "finished": self.finished, "exit_code": exit_code}}))

    def finish(self, report: AuditReport, exit_code: int) -> None:
        parts: list[dict[str, Any]] = [{"root": report.root}]
        parts += [{"file": _file_dict(f)} for f in report.files]
        parts += [{"finding": _finding_dict(f)} for f in report.findings]
        parts += [{"not_scanned": _not_scanned_dict(n)} for n in report.not_scanned]
        parts += [{"note": n} for n in report.notes]
        parts += [{"unchecked": u} for u in report.unchecked]
        parts.append({"summary": _summary(report, exit_code)})
        self._write("".join(_line(p) for p in parts))


def _audit_rules(present: set[str]) -> list[dict[str, Any]]:
    """The audit's own rules, with the metadata GitHub shows (as the scan's rules have); `present`:
    rule ids the run already lists."""
    from malseq.audit import FindingKind
    from malseq.report.sarif import lock_hash_rule

    installed = {
        FindingKind.INSTALLED_DIFFERS_FROM_REGISTRY: (
            "An installed package differs from the registry's release",
            "Files of a package installed in the project differ from, or are missing in, what the registry serves "
            "for that version: it was changed after install, or installed from somewhere else.",
            "Reinstall it from the registry (npm ci, pip install --force-reinstall) and find out what changed it."),
        FindingKind.INSTALLED_DIFFERS_FROM_RECORD: (
            "An installed distribution changed after install (RECORD)",
            "A distribution's files no longer match the hashes its RECORD wrote at install, or its folders hold "
            "files no RECORD lists.",
            "Reinstall the distribution into a fresh virtualenv and find out what changed its files."),
        FindingKind.DEPENDENCY_CONFUSION: (
            "A pinned dependency is served by more than one of the indexes pip searches",
            "The requirements file (or one it includes) adds an index with --extra-index-url, so pip looks every "
            "requirement up on each index and installs whichever serves the highest matching version: whoever "
            "can publish that name on one of them decides what gets installed (dependency confusion).",
            "Pin the requirement with --hash (pip --require-hashes), or drop --extra-index-url and serve private "
            "packages from one index that proxies the public one."),
    }
    rules = [] if FindingKind.LOCKFILE_HASH_MISMATCH.value in present else [lock_hash_rule()]
    rules += [{"id": kind.value, "name": "".join(p.capitalize() for p in kind.value.split("-")),
               "shortDescription": {"text": short}, "fullDescription": {"text": full}, "help": {"text": what},
               "defaultConfiguration": {"level": "error"},
               "properties": {"tags": ["security", "supply-chain", "integrity"], "precision": "high",
                              "problem.severity": "error", "security-severity": "8.0"}}
              for kind, (short, full, what) in installed.items()]
    rules.append({"id": NOT_SCANNED_RULE, "name": "DependencyNotScanned",
                  "shortDescription": {"text": "A dependency malseq did not scan (git, path, URL, private index...)"},
                  "fullDescription": {"text": "The lockfile entry is not a release of the configured registry (a git "
                                              "or URL source, a local path or workspace, another index, an unpinned "
                                              "range, an unreadable file), so malseq did not analyse it."},
                  "help": {"text": "Review that dependency another way (scan its folder or archive with malseq scan), "
                                   "or pin it from the registry; --strict makes such entries fail the run."},
                  "defaultConfiguration": {"level": "warning"},
                  "properties": {"tags": ["supply-chain"], "precision": "very-high", "problem.severity": "warning"}})
    return rules


def sarif_paths(report: AuditReport) -> SarifPaths:
    """Where the audit's SARIF locations are relative to. `%SRCROOT%` is the directory malseq ran in
    when the audited folder is inside it (`malseq audit frontend` from the repository root: GitHub reads
    a relative URI from the repository root and ignores uriBaseId, so `frontend/package-lock.json` is
    what places the alert); when malseq ran outside the audited folder, `%SRCROOT%` is that folder, so
    its files still get relative URIs rather than machine-specific file:// ones. The reports' own
    paths (`pinned_by`, `where`) are relative to the audited folder."""
    import os
    from pathlib import Path

    from malseq.report.sarif import SarifPaths

    root = os.path.abspath(report.root)
    cwd = os.path.abspath(os.getcwd())
    return SarifPaths(cwd if Path(root).is_relative_to(cwd) else root, root)


def _where(paths: SarifPaths, path: str, line: int | None = None) -> dict[str, Any]:
    """A finding's or unscanned entry's place (`path` relative to the audited folder, or absolute),
    located like every other result of the run; for a dependency, the line of its entry."""
    physical: dict[str, Any] = {"artifactLocation": paths.pin_location(path)}
    if line:
        physical["region"] = {"startLine": line}
    return {"physicalLocation": physical}


def _project_files(finding: Finding) -> list[str]:
    """The finding's files that are files of the project (relative to the audited folder), those that
    still exist first: a folder is no place GitHub can show an alert."""
    if finding.files_root is None:
        return []
    root = PurePosixPath(finding.files_root)
    present = [str(root / f) for f in finding.files if not f.endswith(" (missing)")]
    return present or [str(root / f.removesuffix(" (missing)")) for f in finding.files]


def _audit_fingerprint(rule: str, subject: str, where: str) -> dict[str, str]:
    """Stable across runs (no line numbers, no timings): the rule, the dependency and where it sits."""
    import hashlib

    from malseq.report.sarif import FINGERPRINT_KEY

    digest = hashlib.sha256("\0".join((rule, subject, where)).encode("utf-8", "replace")).hexdigest()
    return {FINGERPRINT_KEY: digest}


def _relative_installed_uris(report: AuditReport, results: list[dict[str, Any]], srcroot: str) -> None:
    """An installed package's files are files of the audited project: point at them relative to it."""
    import os
    from pathlib import PurePosixPath
    from urllib.parse import quote

    root = srcroot  # as for every result of the run
    prefixes: dict[str, tuple[str, ...]] = {}
    for t in report.targets:
        info = t.result.package
        if t.origin != "installed" or info is None:
            continue
        location = os.path.abspath(info.origin.location).replace(os.sep, "/")
        prefixes[t.result.target] = (location + "/", "file://" + quote(location) + "/")

    def visit(node: Any, starts: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            uri = node.get("uri")
            if isinstance(uri, str) and "uriBaseId" not in node:
                for start in starts:
                    if uri.startswith(start):
                        real = os.path.join(start[len("file://"):] if start.startswith("file://") else start,
                                            uri[len(start):])
                        rel = os.path.relpath(real, root).replace(os.sep, "/")
                        if not rel.startswith("../"):
                            node["uri"] = str(PurePosixPath(rel))
                            node["uriBaseId"] = "%SRCROOT%"
                        break
            for value in node.values():
                visit(value, starts)
        elif isinstance(node, list):
            for value in node:
                visit(value, starts)

    for result in results:
        starts = prefixes.get(str(result.get("properties", {}).get("target", "")))
        if starts:
            visit(result, starts)


def render_audit_sarif(report: AuditReport, exit_code: int | None = None, not_scanned_fails: bool = False,
                       unread_fails: bool = False) -> str:
    """`not_scanned_fails`: the run's policy fails on entries not scanned (--strict, fail-on not-scanned),
    so their results are errors, as the exit code says; otherwise warnings. `unread_fails`: it fails on
    errors, so a lockfile that could not be parsed (`AuditReport.unreadable_files`) is an error too."""
    from malseq.report.sarif import SRCROOT, render_sarif

    paths = sarif_paths(report)
    doc = json.loads(render_sarif(report.results, paths))
    run = doc["runs"][0]
    if paths.srcroot == paths.pins and paths.srcroot != os.path.abspath(os.getcwd()):
        run["originalUriBaseIds"][SRCROOT] = {"description": {
            "text": "the audited folder (malseq audit PATH ran outside it; run it from the repository root for "
                    "GitHub code scanning)"}}
    _relative_installed_uris(report, run.get("results", []), paths.srcroot)
    run["tool"]["driver"]["rules"].extend(_audit_rules({rule["id"] for rule in run["tool"]["driver"]["rules"]}))
    for finding in report.findings:
        result: dict[str, Any] = {
            "ruleId": finding.kind.value,
            "level": "error" if finding.fails else "warning",
            "message": {"text": f"{finding.subject}: {finding.message}"},
            "locations": [_where(paths, finding.where, finding.line)],
            "partialFingerprints": _audit_fingerprint(finding.kind.value, finding.subject, finding.where),
            "properties": {"subject": finding.subject, "files": list(finding.files), "fails": finding.fails},
        }
        changed = _project_files(finding)
        if changed:  # files of the project: the alert sits on the first one, every one is a related location
            result["locations"] = [_where(paths, changed[0])]
            result["relatedLocations"] = [dict(_where(paths, path), id=i) for i, path in enumerate(changed[:100])]
        run["results"].append(result)
    unread = set(report.unreadable_entries)
    for entry in report.not_scanned:
        fails = not_scanned_fails or unread_fails and entry in unread
        run["results"].append({
            "ruleId": NOT_SCANNED_RULE,
            "level": "error" if fails else "warning",
            "message": {"text": f"{entry.subject} was not scanned ({entry.kind}): {entry.reason}"},
            "locations": [_where(paths, entry.where, entry.line)],
            "partialFingerprints": _audit_fingerprint(NOT_SCANNED_RULE, entry.subject, entry.where),
            "properties": {"subject": entry.subject, "kind": entry.kind, "fails": fails},
        })
    indexed = {t.result.target: t.index for t in report.targets if t.index is not None}
    for result in run["results"]:
        props = result.get("properties", {})
        if props.get("target") in indexed:  # the index pip installs it from, among several
            props["index"] = indexed[props["target"]]
    if report.unchecked:  # a check that did not run is no pass: a notification GitHub shows with the run
        invocation = run.setdefault("invocations", [{"executionSuccessful": True}])[0]
        invocation.setdefault("toolExecutionNotifications", []).extend(
            {"level": "warning", "message": {"text": text[:1000]},
             "descriptor": {"id": "dependency-confusion-unchecked"}} for text in report.unchecked)
    run["properties"] = {"audit": {"root": report.root, "summary": _summary(report, exit_code)}}
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
