"""The JSON report: a stable, documented schema (docs/output.md).

One JSON array, one object per target in the order given. Every object has
`target`; a scanned target has `package` (and later stages add their keys), a
failed one has `error`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from malseq.features.catalogue import BY_ID
from malseq.features.types import PackageAnalysis
from malseq.review import ReviewMaterial
from malseq.scan import PackageInfo, TargetResult
from malseq.sequence.types import BehaviourSequence

SCHEMA_VERSION = 1
# Unread files (`unread_files.first`) a report lists by path; the count says how many there are in all.
UNREAD_LISTED = 20


def _package(info: PackageInfo) -> dict[str, Any]:
    return {
        "ecosystem": info.ecosystem.value,
        "name": info.name,
        "version": info.version,
        "origin": {
            "kind": info.origin.kind,
            "location": info.origin.location,
            "sha256": info.origin.sha256,
            "format": info.origin.archive_format,
            "filename": info.origin.filename,
        },
        "files": info.file_count,
        "bytes": info.total_bytes,
        "languages": {lc.language: {"files": lc.files, "bytes": lc.bytes} for lc in info.languages},
        "binaries": list(info.binaries),
        "skipped": [{"path": s.path, "reason": s.reason} for s in info.skipped],
        "install_scripts": {name: cmd for name, cmd in info.install_scripts},
        "has_setup_py": info.has_setup_py,
        "pth_files": list(info.pth_files),
    }


def _behaviours(analysis: PackageAnalysis) -> list[dict[str, Any]]:
    return [
        {
            "id": e.behaviour,
            "dimension": BY_ID[e.behaviour].dimension.value,
            "file": e.file,
            "line": e.line,
            "column": e.column,
            "scope": e.scope,
            "snippet": e.snippet,
        }
        for e in analysis.all_events()
    ]


def _sequence(seq: BehaviourSequence) -> dict[str, Any]:
    from malseq.sequence.render import render_text

    return {
        "text": render_text(seq),
        "budget_exhausted": seq.budget_exhausted,
        "entry_points": [
            {"stage": e.stage.value, "label": e.label, "file": e.file, "scope": e.scope} for e in seq.entry_points
        ],
        "steps": [
            {
                "stage": s.stage.value,
                "behaviour": s.behaviour,
                "file": s.file,
                "line": s.line,
                "scope": s.scope,
                "count": s.count,
                "depth": s.depth,
                "entry": s.entry,
            }
            for s in seq.steps
        ],
        "seconds": round(seq.seconds, 4),
    }


def score_fields(result: TargetResult) -> dict[str, Any]:
    """`score`, `verdict`, `threshold`, `operating_point` and `component_scores` of a scored result
    (nothing for an unscored one)."""
    if result.score is None:
        return {}
    out: dict[str, Any] = {"score": round(result.score, 6), "verdict": result.verdict}
    if result.threshold is not None:
        out["threshold"] = result.threshold  # unrounded: a consumer re-deriving the verdict must agree
        out["operating_point"] = result.operating_point
    if result.component_scores:
        out["component_scores"] = {name: round(value, 6) for name, value in result.component_scores}
    return out


def result_to_dict(result: TargetResult) -> dict[str, Any]:
    out: dict[str, Any] = {"target": result.target}
    if result.package is not None:
        out["package"] = _package(result.package)
    if result.analysis is not None:
        out["behaviours"] = _behaviours(result.analysis)
        out["partial_files"] = [f.path for f in result.analysis.files if f.budget_exhausted]
        if result.analysis.unread:  # the package work budget ran out: what was not read, in reading order
            on_path = result.analysis.unread_import_path  # of those, the ones that run at import time
            out["unread_files"] = {"count": len(result.analysis.unread),
                                   "first": list(result.analysis.unread[:UNREAD_LISTED]),
                                   "import_path": {"count": len(on_path), "first": list(on_path[:UNREAD_LISTED])}}
    if result.sequence is not None:
        out["sequence"] = _sequence(result.sequence)
    out.update(score_fields(result))
    if result.model_warning is not None:
        out["model_warning"] = result.model_warning
    if result.suppressed is not None:
        out["suppressed"] = {"reason": result.suppressed}
    if result.unscored is not None:
        out["unscored"] = result.unscored
    if result.notices:
        out["notices"] = [{"kind": n.kind, "message": n.message, "hint": n.hint} for n in result.notices]
    if result.error is not None:
        out["error"] = {"type": result.error.kind, "message": result.error.message, "hint": result.error.hint}
    if result.pinned_by:  # scanned from --lockfile
        out["pinned_by"] = [{"lockfile": p.lockfile, "line": p.line} for p in result.pinned_by]
    if result.lock_hash_mismatches:  # scan --lockfile: the file scanned is not the one the lockfile pins
        out["lockfile_hash_mismatches"] = [{"lockfile": m.lockfile, "line": m.line, "detail": m.detail}
                                           for m in result.lock_hash_mismatches]
    if result.previous is not None:  # scan --against-previous
        from malseq.report.diff_report import previous_to_dict

        out["previous"] = previous_to_dict(result.previous)
    if result.lookalike is not None:  # scan --lookalikes
        from malseq.report.diff_report import lookalike_to_dict

        out["lookalike"] = lookalike_to_dict(result.lookalike)
    if result.review is not None:  # ScanOptions.review_material (malseq watch)
        out["review"] = review_to_dict(result.review)
    out["seconds"] = round(result.seconds, 4)
    return out


def review_to_dict(review: ReviewMaterial) -> dict[str, Any]:
    return {
        "description": review.description,
        "homepage": review.homepage,
        "repository": review.repository,
        "author": review.author,
        "license": review.license,
        "excerpts": [{"file": x.file, "first_line": x.first_line, "lines": list(x.lines), "marked": list(x.marked)}
                     for x in review.excerpts],
        "excerpts_truncated": review.excerpts_truncated,
    }


def render_json(results: Sequence[TargetResult]) -> str:
    # ensure_ascii keeps any control or bidi characters from packages escaped.
    return json.dumps([result_to_dict(r) for r in results], indent=2, ensure_ascii=True) + "\n"
