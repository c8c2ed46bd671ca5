"""SARIF 2.1.0 output that GitHub code scanning accepts and maps onto the right files.

Results, one per target that needs attention:

* `malicious-package` (level error): a package the model flags. The message gives its top three
  reasons with file:line (as the text report), every step of the sequence is a related location,
  and for a folder target a code flow replays them in execution order.
* `scan-error` (level error): a target that could not be scanned. A dependency that could not
  be read is not a clean one, so it is an alert as well as a tool notification.
* `lockfile-hash-mismatch` (level error): a release scanned from `--lockfile` whose file matches
  none of the hashes the lockfile pins for it, located at that lockfile line (the same rule id as
  `malseq audit`'s finding).
* `scan-incomplete` (level warning): a folder holding a project whose installed packages or
  lockfiles were left out (`malseq.project`); also a tool notification.
* `analysis-incomplete` (level note): a package judged other than malicious although the package
  work budget left files unread (a malicious result carries the same fields itself), so the cut
  leaves a trace in SARIF as in the text, JSON and serve reports. Listed only in runs that have one.

Where a result points (its primary location) is always a file of the repository being
scanned, or an absolute URI that cannot be mistaken for one:

* a release scanned from `--lockfile`: the lockfile line that pins it (`%SRCROOT%`-relative);
* a folder target: the file of the decisive step inside the folder;
* an archive: the archive file itself;
* a registry release named on the command line: `ecosystem/name@version` under the base id
  `REGISTRY`, because no file of the repository names it. Never an absolute URI other than
  file://: GitHub rejects the whole upload when an absolute URI's scheme is not the checkout's.

Paths inside an archive or a registry release are not paths of the repository (GitHub would
put an alert for `package.json` on the project's own package.json): they use the base id
`PACKAGE`, whose meaning `originalUriBaseIds` describes, and the message names them in text;
such results get no code flow (GitHub would show the repository's file of the same path).
`%SRCROOT%` is the working directory malseq ran in (run it from the repository root); its
absolute location is deliberately left out so the same input gives the same report on any
checkout. Paths outside it are `file://` URIs. Every path is stripped of control and format
characters and percent-encoded: file names are attacker-controlled.

`partialFingerprints` (`malseqFinding/v1`) identify an alert across runs: a hash of the rule,
the package's ecosystem, name and version, and the path of the file it points at, never a line
number (a lockfile's lines move whenever any dependency changes, a package's when its code
does). A new version of a flagged package is a new alert; the archive's sha256 is in the
result's properties, not in the fingerprint, so a re-published archive keeps its alert.

GitHub's requirements and limits: tests/report/github_sarif.py, which checks every report the
tests produce against them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from malseq import __version__
from malseq.errors import MalseqError
from malseq.features.catalogue import BEHAVIOURS, BY_ID
from malseq.features.types import Dimension
from malseq.intake.package import Ecosystem
from malseq.intake.targets import LocalTarget, RegistryTarget, parse_target, release_spec
from malseq.report.json_report import UNREAD_LISTED
from malseq.report.text import top_reasons
from malseq.sanitize import clean
from malseq.scan import TargetResult
from malseq.sequence.types import SequenceStep, Stage

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
MALICIOUS_RULE = "malicious-package"
SCAN_ERROR_RULE = "scan-error"
SCAN_INCOMPLETE_RULE = "scan-incomplete"
LOCK_HASH_RULE = "lockfile-hash-mismatch"  # also malseq.audit.FindingKind.LOCKFILE_HASH_MISMATCH
ANALYSIS_INCOMPLETE_RULE = "analysis-incomplete"  # listed only in runs that have such a result
LOOKALIKE_RULE = "lookalike-copy"  # scan --lookalikes (listed only in runs that have such a result)
SRCROOT = "%SRCROOT%"
PACKAGE_BASE = "PACKAGE"
REGISTRY_BASE = "REGISTRY"
FINGERPRINT_KEY = "malseqFinding/v1"
# GitHub stores 100 locations and 1,000 thread flow locations per result (its hard limits are
# 1,000 and 10,000); more would only be dropped.
_MAX_RELATED = 100
_DECISIVE = (Dimension.DATA_TRANSMISSION, Dimension.PAYLOAD_EXECUTION, Dimension.INSTALL_HOOK)
_MESSAGE_CHARS = 2000


def _rules() -> list[dict[str, Any]]:
    # `security-severity` (a number 0.0-10.0 as a string; 9.0+ is "critical") only counts when
    # the tags hold "security"; `precision` and `problem.severity` as GitHub documents them.
    rules: list[dict[str, Any]] = [
        {
            "id": MALICIOUS_RULE,
            "name": "MaliciousPackage",
            "shortDescription": {"text": "Package classified as malicious"},
            "fullDescription": {
                "text": "malseq's sequence model scored this package's behaviour sequence above its threshold."
            },
            "help": {
                "text": "Do not install this release. Review the steps listed in the alert (the code runs at "
                "install or import time); if it is a reviewed false alarm, add the archive's sha256 to a "
                "malseq suppressions file.",
            },
            "defaultConfiguration": {"level": "error"},
            "properties": {
                "tags": ["security", "supply-chain", "malware"],
                "precision": "high",
                "problem.severity": "error",
                "security-severity": "9.0",
            },
        },
        {
            "id": SCAN_ERROR_RULE,
            "name": "ScanError",
            "shortDescription": {"text": "Package could not be scanned"},
            "fullDescription": {
                "text": "malseq could not read or analyse this target (a corrupt or hostile archive, a release "
                "missing from the registry, a limit reached), so nothing is known about it."
            },
            "help": {"text": "Read the alert's hint; an unscanned dependency is not a clean one."},
            "defaultConfiguration": {"level": "error"},
            "properties": {
                "tags": ["security", "supply-chain"],
                "precision": "very-high",
                "problem.severity": "error",
                "security-severity": "5.0",
            },
        },
        {
            "id": SCAN_INCOMPLETE_RULE,
            "name": "ScanIncomplete",
            "shortDescription": {"text": "Project folder not scanned completely"},
            "fullDescription": {
                "text": "The folder holds a project (installed packages, a lockfile) whose packages were not "
                "scanned one by one."
            },
            "help": {"text": "Add the targets the alert names to the scan (or use --lockfile)."},
            "defaultConfiguration": {"level": "warning"},
            "properties": {
                "tags": ["security", "supply-chain"],
                "precision": "very-high",
                "problem.severity": "warning",
                "security-severity": "4.0",
            },
        },
    ]
    for b in BEHAVIOURS:
        rules.append({
            "id": b.id,
            "name": "".join(part.capitalize() for part in b.id.split("_")),
            "shortDescription": {"text": b.phrase},
            "fullDescription": {"text": b.description},
            "defaultConfiguration": {"level": "note"},
            "properties": {"dimension": b.dimension.value},
        })
    return rules


# --------------------------------------------------------------------------------------
# URIs

# RFC 3986 path characters that may stay as they are; ":" is encoded too, so that a relative
# path's first segment is never read as a scheme.
_PATH_SAFE = "/-._~!$&'()*+,;=@"


def _strip_unsafe(text: str) -> str:
    """Drop control (Cc) and format (Cf: bidi overrides, zero-width) characters."""
    return "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf"))


def encode_path(path: str) -> str:
    """A file path as the path part of a URI: unsafe characters gone, the rest percent-encoded."""
    return quote(_strip_unsafe(path.replace("\\", "/")), safe=_PATH_SAFE)


def _file_uri(path: PurePath) -> str:
    posix = path.as_posix()
    return "file://" + encode_path(posix if posix.startswith("/") else "/" + posix)


@dataclass(frozen=True)
class SarifPaths:
    """How a run's local paths become URIs.

    `srcroot`: the absolute folder `%SRCROOT%` stands for (the working directory, unless a caller
    says otherwise: `malseq audit` of a folder outside it). `pins`: the folder that relative lockfile
    paths in `pinned_by` and `lock_hash_mismatches` are relative to (`malseq audit` gives them relative
    to the audited folder; `scan --lockfile` as given, relative to the working directory)."""

    srcroot: str
    pins: str

    @staticmethod
    def working_directory() -> SarifPaths:
        cwd = os.path.abspath(os.getcwd())
        return SarifPaths(cwd, cwd)

    def pin_location(self, lockfile: str) -> dict[str, Any]:
        return local_location(os.path.join(self.pins, lockfile), self.srcroot)


def local_location(path: str, srcroot: str | None = None) -> dict[str, Any]:
    """An artifactLocation for a local path (relative ones are relative to the working directory):
    `%SRCROOT%`-relative inside `srcroot` (default: the working directory), else an absolute
    `file://` URI."""
    absolute = Path(os.path.abspath(_strip_unsafe(path)))
    base = Path(os.path.abspath(srcroot if srcroot is not None else os.getcwd()))
    if absolute.is_relative_to(base) and absolute != base:
        return {"uri": encode_path(absolute.relative_to(base).as_posix()), "uriBaseId": SRCROOT}
    return {"uri": _file_uri(absolute)}


def registry_location(ecosystem: Ecosystem, name: str, version: str | None) -> dict[str, Any]:
    """An artifactLocation naming a registry release no file of the repository names (a release given
    on the command line): `ecosystem/name@version` under the `REGISTRY` base id. A relative URI: GitHub
    rejects an upload whose absolute URIs are not file:// ones, and shows this path as what it is."""
    if ecosystem is Ecosystem.PYPI:
        name = re.sub(r"[-_.]+", "-", name).lower()  # PEP 503
    path = f"{ecosystem.value}/{name}" + (f"@{version}" if version else "")
    return {"uri": encode_path(path), "uriBaseId": REGISTRY_BASE}


# --------------------------------------------------------------------------------------
# Where a result points


@dataclass(frozen=True)
class _Anchor:
    """The file of the repository (or the absolute URI) a target's results point at."""

    artifact: dict[str, Any]
    line: int | None
    folder: str | None  # a folder target's path: steps inside it are real files of the repository
    srcroot: str | None = None  # what %SRCROOT% stands for (None: the working directory)


def _registry_target(result: TargetResult) -> RegistryTarget | None:
    try:
        target = parse_target(result.target)
    except MalseqError:
        return None
    return target if isinstance(target, RegistryTarget) else None


def _anchor(result: TargetResult, paths: SarifPaths | None = None) -> _Anchor:
    paths = paths or SarifPaths.working_directory()
    if result.pinned_by:
        pin = result.pinned_by[0]
        return _Anchor(paths.pin_location(pin.lockfile), pin.line, None, paths.srcroot)
    info = result.package
    if info is not None and info.origin.kind in ("folder", "archive"):
        folder = info.origin.location if info.origin.kind == "folder" else None
        return _Anchor(local_location(info.origin.location, paths.srcroot), None, folder, paths.srcroot)
    registry = _registry_target(result)
    if info is not None and info.origin.kind == "registry":
        return _Anchor(registry_location(info.ecosystem, info.name, info.version), None, None)
    if registry is not None:
        return _Anchor(registry_location(registry.ecosystem, registry.name, registry.version), None, None)
    try:
        local = parse_target(result.target)
    except MalseqError:
        local = None
    if isinstance(local, LocalTarget):
        folder = str(local.path) if local.path.is_dir() else None
        return _Anchor(local_location(str(local.path), paths.srcroot), None, folder, paths.srcroot)
    # nothing names a file (a target that no longer parses): the target text itself, under REGISTRY
    return _Anchor({"uri": "target/" + quote(_strip_unsafe(result.target), safe=""), "uriBaseId": REGISTRY_BASE},
                   None, None)


def _physical(artifact: dict[str, Any], line: int | None) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": dict(artifact)}
    if line is not None:
        physical["region"] = {"startLine": max(1, line)}
    return physical


def step_location(anchor: _Anchor, path: str, line: int, message: str | None = None) -> dict[str, Any]:
    """A step's file:line: a file of the repository for a folder target, else inside `PACKAGE`."""
    if anchor.folder is not None:
        artifact = local_location(str(Path(anchor.folder) / path), anchor.srcroot)
    else:
        artifact = {"uri": encode_path(path), "uriBaseId": PACKAGE_BASE}
    loc: dict[str, Any] = {"physicalLocation": _physical(artifact, line)}
    if message:
        loc["message"] = {"text": message}
    return loc


def location(result: TargetResult, path: str, line: int, message: str | None = None) -> dict[str, Any]:
    """A package file's file:line for `result` (`malseq diff`'s SARIF locates its findings with it)."""
    return step_location(_anchor(result), path, line, message)


def uri_base_ids() -> dict[str, Any]:
    """The run's `originalUriBaseIds`: what `%SRCROOT%` and `PACKAGE` mean."""
    return {
        SRCROOT: {"description": {"text": "the directory malseq ran in (run it from the repository root)"}},
        PACKAGE_BASE: {"description": {"text": "the root of the package a result is about (its properties "
                                               "name it), not a path of the repository"}},
        REGISTRY_BASE: {"description": {"text": "registry releases as ECOSYSTEM/NAME@VERSION, not paths of the "
                                                "repository"}},
    }


def _fingerprint(rule: str, result: TargetResult, anchor: _Anchor) -> dict[str, str]:
    info = result.package
    registry = _registry_target(result)
    if info is not None:
        identity = [info.ecosystem.value, info.name, info.version]
    elif registry is not None:
        identity = [registry.ecosystem.value, registry.name, registry.version or ""]
    else:
        identity = [result.target]
    where = [anchor.artifact.get("uriBaseId", ""), anchor.artifact["uri"]]
    digest = hashlib.sha256("\0".join([rule, *identity, *where]).encode("utf-8", "surrogatepass")).hexdigest()
    return {FINGERPRINT_KEY: digest}


def _alert(rule: str, level: str, text: str, result: TargetResult, anchor: _Anchor,
           props: dict[str, Any]) -> dict[str, Any]:
    """A SARIF result at one place (`anchor`), with the fingerprint every malseq result carries."""
    return {
        "ruleId": rule,
        "level": level,
        "message": {"text": text[:_MESSAGE_CHARS]},
        "locations": [{"physicalLocation": _physical(anchor.artifact, anchor.line)}],
        "partialFingerprints": _fingerprint(rule, result, anchor),
        "properties": props,
    }


# --------------------------------------------------------------------------------------
# Results


def _primary_step(steps: Sequence[SequenceStep]) -> SequenceStep | None:
    for stage in (Stage.INSTALL, Stage.IMPORT, Stage.USE):
        for step in steps:
            if step.stage is stage and BY_ID[step.behaviour].dimension in _DECISIVE:
                return step
    return steps[0] if steps else None


def _package_label(result: TargetResult) -> str:
    info = result.package
    if info is None:
        return clean(result.target, 200)
    return release_spec(info.ecosystem, clean(info.name, 100) or "?", clean(info.version, 50) or "?")


def _properties(result: TargetResult) -> dict[str, Any]:
    props: dict[str, Any] = {"target": result.target, "package": _package_label(result)}
    info = result.package
    if info is not None:
        props.update({"ecosystem": info.ecosystem.value, "name": info.name, "version": info.version})
        if info.origin.filename is not None:
            props["file"] = info.origin.filename
        if info.origin.sha256 is not None:
            props["sha256"] = info.origin.sha256
    if result.pinned_by:
        props["pinnedBy"] = [{"lockfile": p.lockfile, "line": p.line} for p in result.pinned_by]
    if result.analysis is not None and result.analysis.unread:
        # the package work budget ran out: the result stands on the files read, these were not
        props["unreadFiles"] = len(result.analysis.unread)
        props["unreadFilesFirst"] = list(result.analysis.unread[:UNREAD_LISTED])
        props["unreadImportPath"] = len(result.analysis.unread_import_path)
        props["unreadImportPathFirst"] = list(result.analysis.unread_import_path[:UNREAD_LISTED])
    return props


def _pinned_text(result: TargetResult) -> str:
    return "".join(f"; pinned in {clean(p.lockfile, 200)}" + (f" line {p.line}" if p.line else "")
                   for p in result.pinned_by[:3])


def _malicious(result: TargetResult, paths: SarifPaths) -> dict[str, Any] | None:
    if result.verdict != "malicious" or result.sequence is None:
        return None
    anchor = _anchor(result, paths)
    steps = [s for s in result.sequence.steps if s.stage is not Stage.UNREACHED] or list(result.sequence.steps)
    primary = _primary_step(steps)
    chain = " -> ".join(dict.fromkeys(BY_ID[s.behaviour].phrase for s in steps[:12]))
    label = _package_label(result)
    message = f"{label} is classified as malicious (score {result.score:.3f})"
    if chain:
        message += f": {chain}"
    reasons = top_reasons(result.sequence)
    if reasons:  # the same three steps the text report shows, with their file:line in the package
        message += ". Top reasons: " + "; ".join(
            f"{n}. [{step.stage.value}] {BY_ID[step.behaviour].phrase} at {clean(step.file, 200)}:{step.line}"
            for n, step in enumerate(reasons, 1))
    message += _pinned_text(result)
    if result.analysis is not None and result.analysis.unread:
        message += "; " + _unread_text(result)
    props = _properties(result)
    props["score"] = result.score
    if result.threshold is not None:
        props["threshold"] = result.threshold
        props["operatingPoint"] = result.operating_point
    out: dict[str, Any] = {
        "ruleId": MALICIOUS_RULE,
        "level": "error",
        "message": {"text": message[:_MESSAGE_CHARS]},
        "partialFingerprints": _fingerprint(MALICIOUS_RULE, result, anchor),
        "properties": props,
    }
    if result.suppressed is not None:
        out["suppressions"] = [{"kind": "external", "status": "accepted", "justification": result.suppressed}]
    if anchor.folder is not None and primary is not None:
        # the package is the repository's own files: point at the decisive line itself
        out["locations"] = [step_location(anchor, primary.file, primary.line)]
    else:
        out["locations"] = [{"physicalLocation": _physical(anchor.artifact, anchor.line)}]
    if steps:
        related = []
        for i, step in enumerate(steps[:_MAX_RELATED]):
            loc = step_location(anchor, step.file, step.line, f"{step.stage.value}: {BY_ID[step.behaviour].phrase}")
            loc["id"] = i
            related.append(loc)
        out["relatedLocations"] = related
    if steps and anchor.folder is not None:
        # A code flow only over files of the repository: GitHub shows each step with the code at that
        # path of the repository, which for a package's own paths would be some other file.
        out["codeFlows"] = [{
            "message": {"text": "behaviour sequence in execution order"},
            "threadFlows": [{
                "locations": [
                    {
                        "location": step_location(anchor, s.file, s.line, BY_ID[s.behaviour].phrase),
                        "nestingLevel": s.depth,
                        "executionOrder": i,
                    }
                    for i, s in enumerate(steps[:_MAX_RELATED])
                ]
            }],
        }]
    return out


def _scan_error(result: TargetResult, paths: SarifPaths) -> dict[str, Any] | None:
    if result.error is None:
        return None
    anchor = _anchor(result, paths)
    text = f"{clean(result.target, 200)} could not be scanned: {result.error.kind}: {clean(result.error.message, 800)}"
    if result.error.hint:
        text += f" (hint: {clean(result.error.hint, 400)})"
    text += _pinned_text(result)
    props = _properties(result)
    props.update({"error": result.error.kind, "hint": result.error.hint})
    return _alert(SCAN_ERROR_RULE, "error", text, result, anchor, props)


def lock_hash_rule() -> dict[str, Any]:
    return {
        "id": LOCK_HASH_RULE,
        "name": "LockfileHashMismatch",
        "shortDescription": {"text": "The downloaded archive matches none of the hashes its lockfile pins"},
        "fullDescription": {
            "text": "The registry serves a file for this release that is not the one the project locked: it was "
            "re-published, swapped on a mirror or index, or the lockfile was edited to point at other bytes."
        },
        "help": {"text": "Find out why the release's file changed before installing it; re-lock only once the new "
                 "file is reviewed."},
        "defaultConfiguration": {"level": "error"},
        "properties": {
            "tags": ["security", "supply-chain", "integrity"],
            "precision": "very-high",
            "problem.severity": "error",
            "security-severity": "8.0",
        },
    }


def _lock_hash_mismatches(result: TargetResult, paths: SarifPaths) -> list[dict[str, Any]]:
    """One result per lockfile whose pinned hashes the scanned file does not match, at its line."""
    out = []
    props: dict[str, Any] = _properties(result)
    for m in result.lock_hash_mismatches:
        anchor = _Anchor(paths.pin_location(m.lockfile), m.line, None, paths.srcroot)
        properties: dict[str, Any] = {**props, "lockfile": m.lockfile, "lockfileLine": m.line}
        out.append(_alert(LOCK_HASH_RULE, "error", f"{_package_label(result)}: {clean(m.detail, 800)}", result,
                          anchor, properties))
    return out


def _scan_incomplete(result: TargetResult, paths: SarifPaths) -> dict[str, Any] | None:
    if not result.notices:
        return None
    anchor = _anchor(result, paths)
    text = f"{clean(result.target, 200)} was not scanned completely: " + "; ".join(
        f"{clean(n.message, 400)} ({clean(n.hint, 300)})" for n in result.notices)
    props = _properties(result)
    props["notices"] = [n.kind for n in result.notices]
    return _alert(SCAN_INCOMPLETE_RULE, "warning", text, result, anchor, props)


def _unread_text(result: TargetResult) -> str:
    assert result.analysis is not None
    unread, on_path = result.analysis.unread, result.analysis.unread_import_path
    return (f"analysis budget exhausted: {len(unread)} file(s) not read, e.g. {clean(unread[0], 200)} "
            f"({len(on_path)} on the import path; every install-time file was read)")


def _analysis_incomplete_rule() -> dict[str, Any]:
    return {
        "id": ANALYSIS_INCOMPLETE_RULE,
        "name": "AnalysisIncomplete",
        "shortDescription": {"text": "Package judged on part of its files"},
        "fullDescription": {"text": "The package work budget ran out before every source file was read: the "
                                    "verdict stands on the files read (every install-time file is), the "
                                    "alert lists the others."},
        "help": {"text": "Review the unread files the alert lists, those on the import path first."},
        "defaultConfiguration": {"level": "note"},
        "properties": {"tags": ["supply-chain"], "precision": "very-high", "problem.severity": "recommendation"},
    }


def _analysis_incomplete(result: TargetResult, paths: SarifPaths) -> dict[str, Any] | None:
    """A note for a package not judged malicious whose files were not all read (a malicious result says it)."""
    if result.analysis is None or not result.analysis.unread or (
            result.verdict == "malicious" and result.sequence is not None):
        return None
    text = f"{_package_label(result)} was judged on part of its files: " + _unread_text(result) + _pinned_text(result)
    return _alert(ANALYSIS_INCOMPLETE_RULE, "note", text, result, _anchor(result, paths), _properties(result))


def _lookalike_rule() -> dict[str, Any]:
    return {
        "id": LOOKALIKE_RULE,
        "name": "LookalikeCopy",
        "shortDescription": {"text": "Copy of a popular package under a look-alike name"},
        "fullDescription": {"text": "The package is named like a popular one and most of its files are identical "
                                    "to a release of it (malseq scan --lookalikes); the alert lists what the copy "
                                    "adds, in execution order."},
        "help": {"text": "Install the original package, not the copy; review the added steps."},
        "defaultConfiguration": {"level": "warning"},
        "properties": {"tags": ["security", "supply-chain", "typosquatting"], "precision": "high",
                       "problem.severity": "warning", "security-severity": "7.0"},
    }


def _lookalike(result: TargetResult, paths: SarifPaths) -> dict[str, Any] | None:
    look = result.lookalike
    if look is None or not look.is_copy or look.diff is None or look.diff.error is not None:
        return None
    diff = look.diff
    anchor = _anchor(result, paths)
    share = look.share
    counted = f"{share.identical} of {share.files} files identical" if share is not None else ""
    reason = look.match.reason if look.match is not None else "look-alike name"
    delta = diff.delta
    scored = f"; added steps alone score {delta.score:.3f}" if delta is not None and delta.score is not None else ""
    message = (f"{_package_label(result)} is a copy of {look.original} under a look-alike name ({reason}; "
               f"{counted}) with {len(diff.added_steps)} added step(s){scored}")
    chain = " -> ".join(dict.fromkeys(BY_ID[s.behaviour].phrase for s in diff.added_steps[:12] if s.behaviour in BY_ID))
    if chain:
        message += f": {chain}"
    props = _properties(result)
    props.update({"imitates": look.match.popular if look.match else None, "original": look.original,
                  "maliciousChange": diff.malicious, "deltaScore": delta.score if delta is not None else None})
    first = diff.added_steps[0] if diff.added_steps else None
    out: dict[str, Any] = {
        "ruleId": LOOKALIKE_RULE,
        "level": "error" if diff.malicious else "warning",
        "message": {"text": message[:_MESSAGE_CHARS]},
        "partialFingerprints": _fingerprint(LOOKALIKE_RULE, result, anchor),
        "properties": props,
        "locations": [step_location(anchor, first.file, first.line) if anchor.folder is not None and first
                      else {"physicalLocation": _physical(anchor.artifact, anchor.line)}],
    }
    if diff.added_steps:
        out["relatedLocations"] = [
            dict(step_location(anchor, s.file, s.line, f"added step {s.index} [{s.stage.value}]"), id=i)
            for i, s in enumerate(diff.added_steps[:_MAX_RELATED])]
    return out


def render_sarif(results: Sequence[TargetResult], paths: SarifPaths | None = None) -> str:
    """The SARIF log of `results`; `paths`: where `%SRCROOT%` is and what relative lockfile paths are
    relative to (default: the working directory for both)."""
    paths = paths or SarifPaths.working_directory()
    sarif_results = [
        r for res in results for r in (_scan_error(res, paths), _malicious(res, paths), _lookalike(res, paths),
                                        _scan_incomplete(res, paths), _analysis_incomplete(res, paths))
        if r is not None
    ] + [r for res in results for r in _lock_hash_mismatches(res, paths)]
    rules = _rules()
    if any(res.lock_hash_mismatches for res in results):
        rules.append(lock_hash_rule())
    if any(r["ruleId"] == LOOKALIKE_RULE for r in sarif_results):
        rules.append(_lookalike_rule())
    if any(r["ruleId"] == ANALYSIS_INCOMPLETE_RULE for r in sarif_results):
        rules.append(_analysis_incomplete_rule())
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{clean(res.target, 200)}: {res.error.kind}: {clean(res.error.message, 800)}"},
            "properties": {"target": res.target, "hint": res.error.hint},
        }
        for res in results
        if res.error is not None
    ] + [
        {
            "level": "error",
            "message": {"text": f"{clean(res.target, 200)}: not scanned completely: {clean(notice.message, 800)}"},
            "properties": {"target": res.target, "hint": notice.hint},
        }
        for res in results
        for notice in res.notices
    ]
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "malseq",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": uri_base_ids(),
                "invocations": [
                    {
                        "executionSuccessful": not notifications,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": sarif_results,
            }
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
