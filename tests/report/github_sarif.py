"""GitHub code scanning's upload rules for SARIF, as checks a test can run on any report.

The OASIS schema says what SARIF may hold; GitHub accepts a subset and sets limits. Sources:
- https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning
  (SARIF 2.1.0 only; `tool.driver.rules` with `id`; `properties.tags`, `precision` very-high/high/medium/low,
  `problem.severity` error/warning/recommendation, `security-severity` a score 0.0-10.0 that GitHub reads only
  when the tags hold "security"; results need `ruleId`, `message.text` and a location whose
  `artifactLocation.uri` is relative to the repository root (with a `uriBaseId`) or absolute;
  `region.startLine` is 1-based; `partialFingerprints` track an alert across runs; file paths must be
  consistent across runs)
- https://docs.github.com/en/code-security/code-scanning/troubleshooting-sarif-uploads/results-exceed-limit
  (hard limits: 20 runs per file, 25,000 results and 25,000 rules per run, 1,000 locations per result,
  10,000 thread flow locations per result, 20 tags per rule)
- https://docs.github.com/en/code-security/code-scanning/troubleshooting-sarif-uploads/file-too-large
  (10 MB after gzip)
- "Specifying the root for source files" on the first page: absolute URIs are made relative to the
  checkout's source root, and an upload whose absolute URIs use another scheme than the root's
  (file://) is rejected (also github/codeql-action issue 754: "SARIF URI scheme "https" did not
  match the checkout URI scheme "file"")
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from typing import Any

MAX_RUNS = 20
MAX_RESULTS = 25_000
MAX_RULES = 25_000
MAX_LOCATIONS = 1_000
MAX_THREAD_FLOW_LOCATIONS = 10_000
MAX_TAGS = 20
MAX_GZIP_BYTES = 10 * 1024 * 1024
LEVELS = {"none", "note", "warning", "error"}
PRECISIONS = {"very-high", "high", "medium", "low"}
PROBLEM_SEVERITIES = {"error", "warning", "recommendation"}

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# RFC 3986 URI characters (unreserved, reserved) and well-formed percent escapes, nothing else
_URI_CHARS = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")


def _artifact_locations(value: Any, where: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "artifactLocation" and isinstance(child, dict):
                yield f"{where}.{key}", child
            elif key != "originalUriBaseIds":
                yield from _artifact_locations(child, f"{where}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _artifact_locations(child, f"{where}[{i}]")


def _regions(value: Any, where: str = "$") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "region":
                yield f"{where}.{key}", child
            else:
                yield from _regions(child, f"{where}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _regions(child, f"{where}[{i}]")


def _check_rule(rule: dict[str, Any], where: str, problems: list[str]) -> None:
    if not isinstance(rule.get("id"), str) or not rule["id"]:
        problems.append(f"{where}: a rule needs an id")
    props = rule.get("properties", {})
    tags = props.get("tags", [])
    if len(tags) > MAX_TAGS:
        problems.append(f"{where}: {len(tags)} tags, GitHub rejects more than {MAX_TAGS}")
    if "security-severity" in props:
        raw = props["security-severity"]
        if not isinstance(raw, str):
            problems.append(f"{where}: security-severity must be a string holding a number, not {raw!r}")
        else:
            try:
                score = float(raw)
            except ValueError:
                problems.append(f"{where}: security-severity {raw!r} is not a number")
            else:
                if not 0.0 <= score <= 10.0:
                    problems.append(f"{where}: security-severity {raw} is outside 0.0-10.0")
        if "security" not in tags:
            problems.append(f"{where}: security-severity is ignored unless the tags hold 'security'")
    if "precision" in props and props["precision"] not in PRECISIONS:
        problems.append(f"{where}: precision {props['precision']!r} is not one of {sorted(PRECISIONS)}")
    if "problem.severity" in props and props["problem.severity"] not in PROBLEM_SEVERITIES:
        problems.append(f"{where}: problem.severity {props['problem.severity']!r} is not one of "
                        f"{sorted(PROBLEM_SEVERITIES)}")


def _check_uri(location: dict[str, Any], where: str, bases: dict[str, Any], problems: list[str]) -> None:
    uri = location.get("uri")
    if not isinstance(uri, str) or not uri:
        problems.append(f"{where}: no uri")
        return
    if not _URI_CHARS.match(uri):
        problems.append(f"{where}: {uri!r} holds characters a URI may not (control characters, spaces...)")
    base = location.get("uriBaseId")
    if _SCHEME.match(uri):
        if base is not None:
            problems.append(f"{where}: absolute {uri!r} with a uriBaseId")
        if not uri.lower().startswith("file:"):
            # GitHub converts absolute URIs against the checkout's file:// root and rejects the whole
            # upload on a scheme mismatch ("SARIF URI scheme ... did not match the checkout URI scheme")
            problems.append(f"{where}: absolute {uri!r} is not a file:// URI")
        return
    if base is None:
        # a bare relative path is read as a path of the repository being scanned
        problems.append(f"{where}: relative {uri!r} without a uriBaseId")
    elif base not in bases:
        problems.append(f"{where}: uriBaseId {base!r} is not defined in originalUriBaseIds")
    if uri.startswith("/") or ".." in uri.split("/"):
        problems.append(f"{where}: relative {uri!r} is rooted or climbs out of its base")


def github_upload_problems(doc: dict[str, Any], serialized: str) -> list[str]:
    """Every way `doc` breaks GitHub's documented SARIF upload rules (empty: it would be accepted)."""
    problems: list[str] = []
    if doc.get("version") != "2.1.0":
        problems.append(f"version {doc.get('version')!r}: GitHub takes SARIF 2.1.0 only")
    if len(gzip.compress(serialized.encode("utf-8"))) > MAX_GZIP_BYTES:
        problems.append("larger than 10 MB after gzip")
    runs = doc.get("runs", [])
    if len(runs) > MAX_RUNS:
        problems.append(f"{len(runs)} runs, more than {MAX_RUNS}")
    for r, run in enumerate(runs):
        rules = run.get("tool", {}).get("driver", {}).get("rules", [])
        if len(rules) > MAX_RULES:
            problems.append(f"run {r}: {len(rules)} rules, more than {MAX_RULES}")
        ids = [rule.get("id") for rule in rules]
        if len(ids) != len(set(ids)):
            problems.append(f"run {r}: duplicate rule ids")
        for i, rule in enumerate(rules):
            _check_rule(rule, f"run {r} rule {rule.get('id', i)}", problems)
        results = run.get("results", [])
        if len(results) > MAX_RESULTS:
            problems.append(f"run {r}: {len(results)} results, more than {MAX_RESULTS}")
        bases = run.get("originalUriBaseIds", {})
        for i, result in enumerate(results):
            where = f"run {r} result {i}"
            if result.get("ruleId") not in ids:
                problems.append(f"{where}: ruleId {result.get('ruleId')!r} names no rule of the run")
            if result.get("level", "warning") not in LEVELS:
                problems.append(f"{where}: level {result.get('level')!r}")
            if not result.get("message", {}).get("text"):
                problems.append(f"{where}: no message.text")
            locations = result.get("locations", [])
            if not any("artifactLocation" in loc.get("physicalLocation", {}) for loc in locations):
                problems.append(f"{where}: no physical location: GitHub cannot show the alert")
            if len(locations) + len(result.get("relatedLocations", [])) > MAX_LOCATIONS:
                problems.append(f"{where}: more than {MAX_LOCATIONS} locations")
            flow_locations = sum(len(tf.get("locations", [])) for cf in result.get("codeFlows", [])
                                 for tf in cf.get("threadFlows", []))
            if flow_locations > MAX_THREAD_FLOW_LOCATIONS:
                problems.append(f"{where}: {flow_locations} thread flow locations, more than "
                                f"{MAX_THREAD_FLOW_LOCATIONS}")
            fingerprints = result.get("partialFingerprints")
            if not isinstance(fingerprints, dict) or not fingerprints or not all(
                    isinstance(v, str) and v for v in fingerprints.values()):
                problems.append(f"{where}: no partialFingerprints (alerts would not be tracked across runs)")
        for where, location in _artifact_locations(run.get("results", []), f"run {r} results"):
            _check_uri(location, where, bases, problems)
        for where, region in _regions(run.get("results", []), f"run {r} results"):
            start = region.get("startLine") if isinstance(region, dict) else None
            if not isinstance(start, int) or isinstance(start, bool) or start < 1:
                problems.append(f"{where}: startLine {start!r}, GitHub needs an integer >= 1")
    return problems
