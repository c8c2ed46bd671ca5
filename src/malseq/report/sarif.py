"""SARIF 2.1.0 output for code-scanning dashboards.

One result per flagged package (rule `malicious-package`, level error). Its location is
the first install-time (else import-time) step that transmits data or executes a payload,
its related locations are every step of the behaviour sequence with file:line, and a
code flow replays the sequence in execution order, so a reviewer can step through
"read environment -> encode -> upload" in their viewer. Targets that could not be scanned
become tool execution notifications, and `executionSuccessful` is false.

Locations inside an archive or a registry release use the path inside the package; for a
folder target the folder path is prefixed so the URI points at a real file of the
repository being scanned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from malseq import __version__
from malseq.features.catalogue import BEHAVIOURS, BY_ID
from malseq.features.types import Dimension
from malseq.scan import TargetResult
from malseq.sequence.types import SequenceStep, Stage

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
MALICIOUS_RULE = "malicious-package"
_MAX_RELATED = 100
_DECISIVE = (Dimension.DATA_TRANSMISSION, Dimension.PAYLOAD_EXECUTION, Dimension.INSTALL_HOOK)


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "id": MALICIOUS_RULE,
            "name": "MaliciousPackage",
            "shortDescription": {"text": "Package classified as malicious"},
            "fullDescription": {
                "text": "malseq's sequence model scored this package's behaviour sequence above its threshold."
            },
            "defaultConfiguration": {"level": "error"},
            "properties": {"tags": ["security", "supply-chain", "malware"]},
        }
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


def _uri(result: TargetResult, path: str) -> str:
    info = result.package
    if info is not None and info.origin.kind == "folder":
        return str(PurePosixPath(info.origin.location.replace("\\", "/")) / path)
    return path


def location(result: TargetResult, path: str, line: int, message: str | None = None) -> dict[str, Any]:
    loc: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": {"uri": _uri(result, path)},
            "region": {"startLine": max(1, line)},
        }
    }
    if message:
        loc["message"] = {"text": message}
    return loc


def _primary_step(steps: Sequence[SequenceStep]) -> SequenceStep | None:
    for stage in (Stage.INSTALL, Stage.IMPORT):
        for step in steps:
            if step.stage is stage and BY_ID[step.behaviour].dimension in _DECISIVE:
                return step
    return steps[0] if steps else None


def _package_label(result: TargetResult) -> str:
    info = result.package
    if info is None:
        return result.target
    return f"{info.ecosystem.value}:{info.name or '?'}@{info.version or '?'}"


def _result(result: TargetResult) -> dict[str, Any] | None:
    if result.verdict != "malicious" or result.sequence is None:
        return None
    steps = [s for s in result.sequence.steps if s.stage is not Stage.UNREACHED] or list(result.sequence.steps)
    primary = _primary_step(steps)
    chain = " -> ".join(dict.fromkeys(BY_ID[s.behaviour].phrase for s in steps[:12]))
    label = _package_label(result)
    message = f"{label} is classified as malicious (score {result.score:.3f})"
    if chain:
        message += f": {chain}"
    out: dict[str, Any] = {
        "ruleId": MALICIOUS_RULE,
        "level": "error",
        "message": {"text": message},
        "properties": {"target": result.target, "package": label, "score": result.score},
    }
    if result.suppressed is not None:
        out["suppressions"] = [{"kind": "external", "status": "accepted", "justification": result.suppressed}]
    if result.package is not None and result.package.origin.sha256:
        # Ties the alert to the exact archive, so a new upload is a new alert.
        out["partialFingerprints"] = {"archiveSha256/v1": result.package.origin.sha256}
    if primary is not None:
        out["locations"] = [location(result, primary.file, primary.line)]
        related = []
        for i, step in enumerate(steps[:_MAX_RELATED]):
            loc = location(result, step.file, step.line, f"{step.stage.value}: {BY_ID[step.behaviour].phrase}")
            loc["id"] = i
            related.append(loc)
        out["relatedLocations"] = related
        out["codeFlows"] = [{
            "message": {"text": "behaviour sequence in execution order"},
            "threadFlows": [{
                "locations": [
                    {
                        "location": location(result, s.file, s.line, BY_ID[s.behaviour].phrase),
                        "nestingLevel": s.depth,
                        "executionOrder": i,
                    }
                    for i, s in enumerate(steps[:_MAX_RELATED])
                ]
            }],
        }]
    else:
        out["locations"] = [{"message": {"text": f"{label}: no behaviour with a source location"}}]
    return out


def render_sarif(results: Sequence[TargetResult]) -> str:
    sarif_results = [r for r in (_result(res) for res in results) if r is not None]
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{res.target}: {res.error.kind}: {res.error.message}"},
            "properties": {"target": res.target, "hint": res.error.hint},
        }
        for res in results
        if res.error is not None
    ] + [
        {
            "level": "error",
            "message": {"text": f"{res.target}: not scanned completely: {notice.message}"},
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
                        "rules": _rules(),
                    }
                },
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
