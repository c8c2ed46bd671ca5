"""Reports of `malseq diff`: text, JSON and SARIF, with the conventions of `malseq scan`'s reports.

Every string from a package goes through `clean` in the text report; the JSON and SARIF are
written with every non-ASCII character escaped (docs/output.md, "Terminal safety").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from malseq import __version__
from malseq.diff.compare import is_decisive
from malseq.diff.lookalike import LookalikeComparison
from malseq.diff.previous import PreviousComparison
from malseq.diff.types import BehaviourDelta, CutFile, DeltaVerdict, FileChange, Lookalike, PackageDiff
from malseq.features.catalogue import BY_ID
from malseq.intake.targets import release_spec
from malseq.report.sarif import location, uri_base_ids
from malseq.sanitize import clean
from malseq.scan import TargetResult

DIFF_SCHEMA = "malseq-diff/1"
RULE = ("malseq diff: the change is judged malicious when NEW is flagged by the model and the added behaviours "
        "include data transmission or payload execution (not a module import) reached at install or import time")


def _phrase(behaviour: str) -> str:
    return BY_ID[behaviour].phrase if behaviour in BY_ID else behaviour


def _label(result: TargetResult) -> str:
    info = result.package
    if info is None:
        return result.target
    return release_spec(info.ecosystem, info.name or "?", info.version or "?")


# --------------------------------------------------------------------------------------
# JSON


def _side(result: TargetResult) -> dict[str, Any]:
    from malseq.report.json_report import _package, score_fields

    out: dict[str, Any] = {"target": result.target}
    if result.package is not None:
        out["package"] = _package(result.package)
    out.update(score_fields(result))
    if result.unscored is not None:
        out["unscored"] = result.unscored
    if result.model_warning is not None:
        out["model_warning"] = result.model_warning
    if result.error is not None:
        out["error"] = {"type": result.error.kind, "message": result.error.message, "hint": result.error.hint}
    if result.sequence is not None:
        out["steps"] = len(result.sequence.steps)
    out["seconds"] = round(result.seconds, 4)
    return out


def _behaviour(d: BehaviourDelta) -> dict[str, Any]:
    e = d.event
    return {"id": e.behaviour, "dimension": d.dimension, "file": e.file, "line": e.line, "column": e.column,
            "scope": e.scope, "snippet": e.snippet, "stage": d.stage.value if d.stage else None, "step": d.step,
            "entry": d.entry, "moved": d.moved, "old_stage": d.old_stage.value if d.old_stage else None}


DELTA_NOTE = ("the added steps alone, scored by the shipped model; it was trained on whole packages, not on "
              "delta texts (docs/diff.md, 'The delta score')")
DELTA_MODEL_NOTE = ("the delta model's score: trees trained on synthetic injections and benign release pairs, over "
                    "the diff's features and the sequence model's delta score (docs/diff.md, 'The delta model')")


def delta_to_dict(delta: DeltaVerdict) -> dict[str, Any]:
    out = {"score": round(delta.score, 6) if delta.score is not None else None, "verdict": delta.verdict,
           "components": {name: round(value, 6) for name, value in delta.components}, "steps": delta.steps,
           "model_input": delta.text, "note": delta.note, "decided_by": delta.decided_by,
           "sequence_score": round(delta.sequence_score, 6) if delta.sequence_score is not None else None,
           "about": DELTA_MODEL_NOTE if delta.decided_by == "delta model" else DELTA_NOTE}
    if delta.model is not None:
        out["model"] = delta.model
    if delta.threshold is not None:
        out.update(threshold=delta.threshold, operating_point=delta.operating_point)
    return out


def delta_line(delta: DeltaVerdict | None) -> str | None:
    """One text line: the delta score next to the package's own (None when the diff was not scored)."""
    if delta is None:
        return None
    if delta.score is None:
        return f"delta (added steps alone): no score: {clean(delta.note or '', 200)}"
    from malseq.report.text import score_against

    if delta.decided_by == "delta model":
        return (f"delta (added steps, {delta.steps} step(s)): {(delta.verdict or '').upper()} "
                f"({score_against(delta.score, delta.threshold, delta.operating_point)}; delta model {delta.model}, "
                f"sequence model's delta score {delta.sequence_score or 0:.3f}, docs/diff.md)")
    why = f"; {clean(delta.note, 200)}" if delta.note else ""
    return (f"delta (added steps alone, {delta.steps} step(s)): {(delta.verdict or '').upper()} "
            f"({score_against(delta.score, delta.threshold, delta.operating_point)}; sequence model, not trained on "
            f"deltas, docs/diff.md{why})")


def lookalike_in_diff(lookalike: Lookalike) -> dict[str, Any]:
    share = lookalike.share
    match = lookalike.match
    return {"imitates": match.popular if match else None, "reason": match.reason if match else None,
            "distance": match.distance if match else None, "copy": share.is_copy and match is not None,
            "compared_files": share.files, "identical_files": share.identical, "same_path_files": share.same_path,
            "original_files": share.original_files, "share": round(share.share, 4)}


def _lookalike_line(diff: PackageDiff) -> str | None:
    look = diff.lookalike
    if look is None:
        return None
    share = look.share
    counted = f"{share.identical} of its {share.files} compared file(s) identical to OLD's"
    if look.match is None:
        return f"names differ (OLD {_label(diff.old)}, NEW {_label(diff.new)}), not by a look-alike rule; {counted}"
    if share.is_copy:
        return (f"look-alike: NEW's name imitates OLD's ({look.match.reason}) and {counted}: "
                f"copy of {_label(diff.old)} with the changes below")
    return f"look-alike name ({look.match.reason}), but only {counted}: not a copy"


def diff_to_dict(diff: PackageDiff) -> dict[str, Any]:
    out: dict[str, Any] = {"schema": DIFF_SCHEMA, "old": _side(diff.old), "new": _side(diff.new)}
    if diff.error is not None:
        out["error"] = {"side": diff.error.side.value, "type": diff.error.error.kind,
                        "message": diff.error.error.message, "hint": diff.error.error.hint}
        out["seconds"] = round(diff.seconds, 4)
        return out
    out["verdict"] = {"malicious": diff.malicious, "new_flagged": diff.new.verdict == "malicious",
                      "decisive": [_behaviour(d) for d in diff.decisive], "rule": RULE}
    if diff.delta is not None:
        out["delta"] = delta_to_dict(diff.delta)
    if diff.lookalike is not None:
        out["lookalike"] = lookalike_in_diff(diff.lookalike)
    files = diff.files
    out["files"] = {
        "added": [{"path": f.path, "sha256": f.new_sha256, "bytes": f.size, "binary": f.is_binary}
                  for f in files if f.change is FileChange.ADDED],
        "removed": [{"path": f.path, "sha256": f.old_sha256, "bytes": f.size, "binary": f.is_binary}
                    for f in files if f.change is FileChange.REMOVED],
        "changed": [{"path": f.path, "old_sha256": f.old_sha256, "sha256": f.new_sha256, "bytes": f.size,
                     "binary": f.is_binary} for f in files if f.change is FileChange.CHANGED],
        "renamed": [{"from": f.old_path, "to": f.path, "similarity": f.similarity, "old_sha256": f.old_sha256,
                     "sha256": f.new_sha256, "binary": f.is_binary}
                    for f in files if f.change is FileChange.RENAMED],
        "unchanged": diff.unchanged_files,
    }
    out["added_behaviours"] = [_behaviour(d) for d in diff.added_behaviours]
    out["removed_behaviours"] = [_behaviour(d) for d in diff.removed_behaviours]
    out["added_steps"] = [{"step": s.index, "stage": s.stage.value, "behaviour": s.behaviour, "entry": s.entry,
                           "file": s.file, "line": s.line, "count": s.count} for s in diff.added_steps]
    out["install_hooks"] = [{"kind": h.kind, "name": h.name, "change": h.change, "old": h.old, "new": h.new,
                             "file": h.file, "line": h.line} for h in diff.install_hooks]
    out["dependencies"] = [{"name": d.name, "change": d.change, "old": d.old_spec, "new": d.new_spec,
                            "source": d.source} for d in diff.dependencies]
    out["binaries_added"] = list(diff.binaries_added)
    out["destinations_added"] = [{"kind": d.kind, "host": d.host, "value": d.value, "file": d.file, "line": d.line}
                                 for d in diff.destinations_added]
    out["cut_files"] = [{"path": c.path, "old_path": c.old_path, "old_cut": c.old_cut, "new_cut": c.new_cut,
                         "in_old_bytes": c.in_old_bytes, "in_new_bytes": c.in_new_bytes} for c in diff.cut_files]
    out["reused_analyses"] = diff.reused_analyses
    out["seconds"] = round(diff.seconds, 4)
    return out


def render_diff_json(diff: PackageDiff) -> str:
    return json.dumps(diff_to_dict(diff), indent=2, ensure_ascii=True) + "\n"


# --------------------------------------------------------------------------------------
# Text


def _verdict(result: TargetResult) -> str:
    if result.error is not None:
        return f"ERROR {result.error.kind}"
    if result.unscored is not None:
        return "NO VERDICT"
    if result.score is None:
        return "not scored"
    from malseq.report.text import score_against

    return f"{(result.verdict or '').upper()} ({score_against(result.score, result.threshold, result.operating_point)})"


def _step_line(d: BehaviourDelta) -> str:
    e = d.event
    where = f"[{d.stage.value}] step {d.step}" if d.stage is not None else "[not in sequence]"
    text = f"{where}: {_phrase(e.behaviour)}  {clean(e.file, 120)}:{e.line}  {clean(e.snippet, 100)}"
    if d.moved:
        text += f"  (in OLD too, but {d.old_stage.value if d.old_stage else 'not in its sequence'})"
    return text


def _cut_line(c: CutFile, with_path: bool = True) -> str:
    """A file whose analysis was cut on a side, and what the diff left out of added/removed for it."""
    sides = " and ".join(n for n, cut in (("OLD", c.old_cut), ("NEW", c.new_cut)) if cut)
    text = f"analysis of {clean(c.path, 160)} cut in {sides}" if with_path else f"cut in {sides}"
    if c.in_old_bytes:
        text += f"; {c.in_old_bytes} behaviour(s) not counted as added (their line is in OLD's file)"
    if c.in_new_bytes:
        text += f"; {c.in_new_bytes} not counted as removed (their line is in NEW's file)"
    return text


def render_diff_text(diff: PackageDiff, max_items: int = 40) -> str:
    lines = [f"diff {clean(diff.old.target, 200)} -> {clean(diff.new.target, 200)}"]
    lines.append(f"  old: {clean(_label(diff.old), 160)}: {_verdict(diff.old)}")
    lines.append(f"  new: {clean(_label(diff.new), 160)}: {_verdict(diff.new)}")
    if diff.error is not None:
        err = diff.error.error
        failed = diff.old if diff.error.side.value == "old" else diff.new
        lines.append(f"  ERROR: the {diff.error.side.value.upper()} side ({clean(failed.target, 200)}) "
                     f"could not be scanned: {err.kind}: {clean(err.message, 400)}")
        if err.hint:
            lines.append(f"  hint: {clean(err.hint, 300)}")
        lines.append("summary: no diff (one side could not be scanned)")
        return "\n".join(lines) + "\n"
    delta = delta_line(diff.delta)
    if delta is not None:
        lines.append(f"  {delta}")
    lookalike = _lookalike_line(diff)
    if lookalike is not None:
        lines.append(f"  {clean(lookalike, 600)}")
    if diff.malicious:
        lines.append("  verdict: MALICIOUS CHANGE: NEW is flagged and the change adds install/import-time "
                     "transmission or execution")
    elif diff.new.verdict == "malicious":
        lines.append("  verdict: NEW is flagged on its own, but the change adds no install/import-time "
                     "transmission or execution")
    else:
        lines.append("  verdict: no malicious change found")
    counts = {c: sum(1 for f in diff.files if f.change is c) for c in FileChange}
    lines.append(f"  files: {counts[FileChange.ADDED]} added, {counts[FileChange.REMOVED]} removed, "
                 f"{counts[FileChange.CHANGED]} changed, {counts[FileChange.RENAMED]} renamed, "
                 f"{diff.unchanged_files} unchanged")
    marks = {FileChange.ADDED: "+", FileChange.REMOVED: "-", FileChange.CHANGED: "~", FileChange.RENAMED: "R"}
    for f in diff.files[:max_items]:
        text = f"    {marks[f.change]} {clean(f.path, 160)}"
        if f.change is FileChange.RENAMED:
            text = f"    R {clean(f.old_path or '', 160)} -> {clean(f.path, 160)}"
            if f.similarity < 1.0:
                text += f" ({f.similarity:.0%} of lines shared)"
        if f.is_binary:
            text += " [binary]"
        lines.append(text)
    if len(diff.files) > max_items:
        lines.append(f"    ... ({len(diff.files) - max_items} more; --format json lists all)")
    if diff.cut_files:
        lines.append("  analysis cut by the work budget (behaviours in the part not analysed are unseen on that side; "
                     "docs/diff.md):")
        for c in diff.cut_files[:max_items]:
            lines.append(f"    {clean(c.path, 160)}: {_cut_line(c, with_path=False)}")
        if len(diff.cut_files) > max_items:
            lines.append(f"    ... ({len(diff.cut_files) - max_items} more; --format json lists all)")
    if diff.install_hooks:
        lines.append("  install hooks:")
        for h in diff.install_hooks:
            what = {"npm_script": "npm script", "setup_command_override": "setup.py command override",
                    "pth_file": ".pth file"}.get(h.kind, h.kind)
            detail = f"{clean(h.old or '', 120)} -> {clean(h.new or '', 120)}" if h.change == "changed" else \
                clean(h.new or h.old or "", 160)
            name = "" if h.kind == "setup_command_override" else f"{clean(h.name, 80)}: "
            lines.append(f"    {h.change.upper()} {what} {name}{detail}  {clean(h.file, 120)}:{h.line}")
    if diff.dependencies:
        lines.append("  dependencies:")
        for d in diff.dependencies:
            spec = f"{clean(d.old_spec or '', 60)} -> {clean(d.new_spec or '', 60)}" if d.change == "changed" else \
                clean(d.new_spec if d.new_spec is not None else d.old_spec or "", 80)
            lines.append(f"    {d.change.upper()} {clean(d.name, 100)} {spec}  ({clean(d.source, 80)})")
    if diff.binaries_added:
        lines.append(f"  new binaries: {', '.join(clean(b, 120) for b in diff.binaries_added[:10])}"
                     + (" ..." if len(diff.binaries_added) > 10 else ""))
    if diff.destinations_added:
        lines.append("  new network destinations:")
        for dest in diff.destinations_added[:max_items]:
            lines.append(f"    {clean(dest.host, 120)} ({dest.kind})  {clean(dest.file, 120)}:{dest.line}")
    if diff.added_behaviours:
        lines.append(f"  added behaviours ({len(diff.added_behaviours)}), in NEW's execution order (install first; "
                     "! marks what the verdict rule counts):")
        for added in diff.added_behaviours[:max_items]:
            lines.append(f"    {'!' if is_decisive(added) else '+'} {_step_line(added)}")
        if len(diff.added_behaviours) > max_items:
            lines.append(f"    ... ({len(diff.added_behaviours) - max_items} more; --format json lists all)")
    if diff.removed_behaviours:
        lines.append(f"  removed behaviours ({len(diff.removed_behaviours)}), in OLD's execution order:")
        for removed in diff.removed_behaviours[:max_items]:
            lines.append(f"    - {_step_line(removed)}")
        if len(diff.removed_behaviours) > max_items:
            lines.append(f"    ... ({len(diff.removed_behaviours) - max_items} more; --format json lists all)")
    if diff.empty:
        lines.append("  no difference in files or behaviours")
    lines.append(f"summary: {len(diff.added_behaviours)} added and {len(diff.removed_behaviours)} removed "
                 f"behaviour(s), {len(diff.install_hooks)} install hook change(s), {len(diff.files)} file change(s); "
                 f"change {'MALICIOUS' if diff.malicious else 'not judged malicious'} ({diff.seconds:.2f} s)")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# SARIF

CHANGE_RULE = "malicious-change"
ADDED_RULE = "added-behaviour"
HOOK_RULE = "new-install-hook"
DEPENDENCY_RULE = "new-dependency"
BINARY_RULE = "new-binary"
DESTINATION_RULE = "new-network-destination"
DELTA_RULE = "malicious-delta"
LOOKALIKE_RULE = "lookalike-copy"
_MAX_RESULTS = 500


def _rules() -> list[dict[str, Any]]:
    def rule(rid: str, name: str, short: str, full: str, level: str) -> dict[str, Any]:
        return {"id": rid, "name": name, "shortDescription": {"text": short}, "fullDescription": {"text": full},
                "defaultConfiguration": {"level": level}, "properties": {"tags": ["security", "supply-chain"]}}

    return [
        rule(CHANGE_RULE, "MaliciousChange", "Release adds malicious behaviour", RULE, "error"),
        rule(ADDED_RULE, "AddedBehaviour", "Behaviour new in this release",
             "A behaviour the new release has and the previous one has not.", "note"),
        rule(HOOK_RULE, "NewInstallHook", "Install hook added or changed",
             "An npm lifecycle script, a setup.py command override or a .pth file added or changed.", "warning"),
        rule(DEPENDENCY_RULE, "NewDependency", "Dependency added or changed",
             "A dependency the new release declares that the previous one did not, or with another range.", "note"),
        rule(BINARY_RULE, "NewBinary", "Binary file added",
             "An executable, archive or binary file new in this release.", "warning"),
        rule(DELTA_RULE, "MaliciousDelta", "The added steps alone are scored malicious",
             "The steps this release adds, in execution order, scored by the shipped model on their own. " + DELTA_NOTE,
             "warning"),
        rule(LOOKALIKE_RULE, "LookalikeCopy", "Copy of a popular package under a look-alike name",
             "The package is named like a popular one and most of its files are identical to that package's: "
             "the results of this run are what the copy changes.", "warning"),
        rule(DESTINATION_RULE, "NewNetworkDestination", "Network destination new in this release",
             "A URL host, host name or IP address the previous release never names.", "warning"),
    ]


def _result(rule: str, level: str, text: str, location: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    # what the finding is and which file it is in, never its line (code above it moves it), so an
    # alert is one alert across runs (GitHub code scanning's partialFingerprints)
    artifact = location.get("physicalLocation", {}).get("artifactLocation", {})
    key = "\0".join([rule, artifact.get("uriBaseId", ""), artifact.get("uri", ""), text])
    fingerprint = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return {"ruleId": rule, "level": level, "message": {"text": text}, "locations": [location],
            "partialFingerprints": {"malseqFinding/v1": fingerprint}, "properties": props}


def _sarif_results(diff: PackageDiff) -> list[dict[str, Any]]:
    new = diff.new
    label = f"{_label(diff.old)} -> {_label(new)}"
    out: list[dict[str, Any]] = []
    if diff.malicious and diff.decisive:
        first = diff.decisive[0].event
        steps = diff.added_steps[:100]
        chain = " -> ".join(dict.fromkeys(_phrase(s.behaviour) for s in steps[:12]))
        res = _result(CHANGE_RULE, "error",
                      f"{label}: the release adds malicious behaviour (new score {new.score or 0:.3f}): {chain}",
                      location(new, first.file, first.line), {"old": diff.old.target, "new": new.target,
                                                          "newScore": new.score, "oldScore": diff.old.score})
        res["relatedLocations"] = [dict(location(new, s.file, s.line, f"step {s.index} [{s.stage.value}]: "
                                             f"{_phrase(s.behaviour)}"), id=i) for i, s in enumerate(steps)]
        res["codeFlows"] = [{"message": {"text": "added steps in execution order"}, "threadFlows": [{"locations": [
            {"location": location(new, s.file, s.line, _phrase(s.behaviour)), "executionOrder": i}
            for i, s in enumerate(steps)]}]}]
        if new.package is not None and new.package.origin.sha256:
            res["partialFingerprints"] = {"archiveSha256/v1": new.package.origin.sha256}
        out.append(res)
    look = diff.lookalike
    if look is not None and look.match is not None and look.share.is_copy:
        first_added = diff.added_steps[0] if diff.added_steps else None
        out.append(_result(LOOKALIKE_RULE, "warning",
                           f"{_label(new)} is a copy of {_label(diff.old)} under a look-alike name "
                           f"({look.match.reason}; {look.share.identical} of {look.share.files} files identical) "
                           f"with {len(diff.added_behaviours)} added behaviour(s)",
                           location(new, first_added.file if first_added else "package.json"
                                    if new.package is not None and new.package.ecosystem.value == "npm" else "setup.py",
                                    first_added.line if first_added else 1),
                           lookalike_in_diff(look)))
    delta = diff.delta
    if delta is not None and delta.verdict == "malicious" and delta.score is not None and diff.added_steps:
        first_step = diff.added_steps[0]
        out.append(_result(DELTA_RULE, "warning",
                           f"{label}: the {delta.steps} added step(s) alone score {delta.score:.3f} (malicious); "
                           f"the release itself scores {new.score or 0:.3f}",
                           location(new, first_step.file, first_step.line),
                           {"deltaScore": delta.score, "newScore": new.score, "oldScore": diff.old.score,
                            "threshold": delta.threshold, "operatingPoint": delta.operating_point,
                            "decidedBy": delta.decided_by, "sequenceDeltaScore": delta.sequence_score,
                            "modelInput": delta.text}))
    for h in diff.install_hooks:
        if h.change != "removed":
            out.append(_result(HOOK_RULE, "warning", f"{label}: {h.kind} {h.change}: {h.name}: {h.new or ''}",
                               location(new, h.file, h.line), {"kind": h.kind, "change": h.change}))
    for b in diff.binaries_added:
        out.append(_result(BINARY_RULE, "warning", f"{label}: binary file added: {b}", location(new, b, 1), {}))
    for dest in diff.destinations_added:
        out.append(_result(DESTINATION_RULE, "warning", f"{label}: new network destination {dest.host} ({dest.kind})",
                           location(new, dest.file, dest.line), {"host": dest.host, "kind": dest.kind}))
    for dep in diff.dependencies:
        if dep.change != "removed":
            where = "package.json" if dep.source.startswith("package.json") else dep.source
            out.append(_result(DEPENDENCY_RULE, "note",
                               f"{label}: dependency {dep.change}: {dep.name} {dep.new_spec or ''}".rstrip(),
                               location(new, where, 1), {"name": dep.name, "change": dep.change}))
    for d in diff.added_behaviours:
        e = d.event
        stage = d.stage.value if d.stage else "not in sequence"
        out.append(_result(ADDED_RULE, "note", f"{label}: added [{stage}] {_phrase(e.behaviour)}: {e.snippet}",
                           location(new, e.file, e.line), {"behaviour": e.behaviour, "stage": stage, "step": d.step}))
    return out[:_MAX_RESULTS]


def render_diff_sarif(diff: PackageDiff) -> str:
    notifications: Sequence[dict[str, Any]] = []
    if diff.error is not None:
        side = getattr(diff, diff.error.side.value)
        err = diff.error.error
        notifications = [{"level": "error",
                          "message": {"text": f"{diff.error.side.value} side {side.target}: {err.kind}: {err.message}"},
                          "properties": {"target": side.target, "side": diff.error.side.value, "hint": err.hint}}]
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "malseq", "version": __version__, "semanticVersion": __version__,
                                "rules": _rules()}},
            "originalUriBaseIds": uri_base_ids(),
            "invocations": [{"executionSuccessful": not notifications,
                             "toolExecutionNotifications": list(notifications)}],
            "results": _sarif_results(diff) if diff.error is None else [],
        }],
    }
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


# --------------------------------------------------------------------------------------
# `scan --against-previous`: the part a scan result gains


def previous_to_dict(comparison: PreviousComparison) -> dict[str, Any]:
    out: dict[str, Any] = {"current": comparison.current, "previous": comparison.previous}
    if comparison.notice is not None:
        out["notice"] = comparison.notice
        return out
    out["previous_score"] = round(comparison.previous_score, 6) if comparison.previous_score is not None else None
    out["previous_verdict"] = comparison.previous_verdict
    out["score"] = round(comparison.score, 6) if comparison.score is not None else None
    out["malicious_change"] = comparison.malicious_change
    if comparison.diff is not None and comparison.diff.delta is not None:
        out["delta"] = delta_to_dict(comparison.diff.delta)
    out["added_steps"] = [{"step": s.index, "stage": s.stage.value, "behaviour": s.behaviour, "entry": s.entry,
                           "file": s.file, "line": s.line, "count": s.count} for s in comparison.added_steps]
    if comparison.diff is not None:
        full = diff_to_dict(comparison.diff)
        out["diff"] = {k: full[k] for k in ("files", "install_hooks", "dependencies", "binaries_added",
                                            "destinations_added", "added_behaviours", "removed_behaviours")}
    return out


def previous_lines(comparison: PreviousComparison, max_steps: int = 10) -> list[str]:
    if comparison.notice is not None:
        return [f"  against previous: {clean(comparison.notice, 300)}"]
    prev = f"{comparison.previous_score:.4f}" if comparison.previous_score is not None else "none"
    now = f"{comparison.score:.4f}" if comparison.score is not None else "none"
    lines = [f"  against previous {clean(comparison.previous or '?', 160)}: score {prev} -> {now}; "
             f"{len(comparison.added_steps)} added step(s)"
             + ("; MALICIOUS CHANGE" if comparison.malicious_change else "")]
    diff = comparison.diff
    delta = delta_line(diff.delta) if diff is not None else None
    if delta is not None:
        lines.append(f"    {delta}")
    if diff is not None:
        for h in diff.install_hooks:
            lines.append(f"    install hook {h.change}: {clean(h.name, 80)} {clean(h.new or h.old or '', 120)}")
        for dest in diff.destinations_added[:5]:
            lines.append(f"    new network destination: {clean(dest.host, 120)}  {clean(dest.file, 120)}:{dest.line}")
        for c in diff.cut_files[:5]:
            lines.append(f"    {_cut_line(c)}")
    for s in comparison.added_steps[:max_steps]:
        lines.append(f"    + step {s.index} [{s.stage.value}] {_phrase(s.behaviour)}  {clean(s.file, 120)}:{s.line}")
    if len(comparison.added_steps) > max_steps:
        lines.append(f"    ... ({len(comparison.added_steps) - max_steps} more; malseq diff shows all)")
    return lines


# --------------------------------------------------------------------------------------
# `scan --lookalikes`: the part a scan result gains


def lookalike_to_dict(comparison: LookalikeComparison) -> dict[str, Any]:
    match = comparison.match
    out: dict[str, Any] = {"name": comparison.name, "imitates": match.popular if match else None,
                           "reason": match.reason if match else None, "original": comparison.original,
                           "copy": comparison.is_copy}
    if comparison.share is not None:
        out.update({"compared_files": comparison.share.files, "identical_files": comparison.share.identical,
                    "share": round(comparison.share.share, 4)})
    if comparison.notice is not None:
        out["notice"] = comparison.notice
    diff = comparison.diff
    if diff is not None:
        full = diff_to_dict(diff)
        out["diff"] = {k: full[k] for k in ("old", "new", "error", "verdict", "delta", "files", "install_hooks",
                                            "dependencies", "binaries_added", "destinations_added",
                                            "added_behaviours", "added_steps", "removed_behaviours") if k in full}
    return out


def lookalike_lines(comparison: LookalikeComparison, max_steps: int = 10) -> list[str]:
    match = comparison.match
    named = f"named like {clean(match.popular, 120)} ({clean(match.reason, 80)})" if match else "look-alike"
    if comparison.diff is None or comparison.diff.error is not None:
        why = comparison.notice or (f"{comparison.diff.error.error.kind}: {comparison.diff.error.error.message}"
                                    if comparison.diff is not None and comparison.diff.error is not None else "")
        return [f"  look-alike: {named}: {clean(why, 400)}"]
    diff = comparison.diff
    share = comparison.share
    counted = f"{share.identical} of {share.files} files identical" if share is not None else ""
    lines = [f"  look-alike: {named}: copy of {clean(comparison.original or '?', 160)} ({counted}) with "
             f"{len(diff.added_steps)} added step(s)" + ("; MALICIOUS CHANGE" if diff.malicious else "")]
    prev = f"{diff.old.score:.4f}" if diff.old.score is not None else "none"
    lines.append(f"    original scores {prev}; the copy {diff.new.score:.4f}" if diff.new.score is not None
                 else f"    original scores {prev}")
    delta = delta_line(diff.delta)
    if delta is not None:
        lines.append(f"    {delta}")
    for h in diff.install_hooks:
        lines.append(f"    install hook {h.change}: {clean(h.name, 80)} {clean(h.new or h.old or '', 120)}")
    for f in diff.files[:max_steps]:
        lines.append(f"    {f.change.value}: {clean(f.path, 160)}")
    for s in diff.added_steps[:max_steps]:
        lines.append(f"    + step {s.index} [{s.stage.value}] {_phrase(s.behaviour)}  {clean(s.file, 120)}:{s.line}")
    if len(diff.added_steps) > max_steps:
        lines.append(f"    ... ({len(diff.added_steps) - max_steps} more; malseq diff "
                     f"{clean(comparison.original or '', 120)} TARGET shows all)")
    return lines
