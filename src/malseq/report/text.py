"""The human-readable summary. Every package-supplied string goes through `clean`.

With `color`, the verdict words get ANSI colours. Only words this module writes are coloured, and
`clean` turns every control character of a package-supplied string (ESC included) into visible
text, so the only escape sequences in the report are the ones in `_STYLES`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from malseq.features.catalogue import BY_ID
from malseq.features.types import Dimension
from malseq.intake.targets import release_spec
from malseq.sanitize import clean
from malseq.scan import TargetResult
from malseq.sequence.render import STAGE_ORDER
from malseq.sequence.types import BehaviourSequence, SequenceStep, Stage

TOP_REASONS = 3
_RESET = "\x1b[0m"
_STYLES = {
    "MALICIOUS": "\x1b[1;31m",  # bold red
    "BENIGN": "\x1b[32m",  # green
    "NONE": "\x1b[1;33m",  # bold yellow: no verdict
    "ERROR": "\x1b[1;31m",
    "NOT SCANNED COMPLETELY": "\x1b[1;33m",
    "LOCKFILE HASH MISMATCH": "\x1b[1;31m",
}

# What makes a sequence malicious rather than merely busy: what leaves the machine or runs, and the
# hook that runs it at install (report/sarif.py locates its result at the first of these too).
_DECISIVE = (Dimension.DATA_TRANSMISSION, Dimension.PAYLOAD_EXECUTION, Dimension.INSTALL_HOOK)


def _paint(word: str, color: bool) -> str:
    """`word` (one of `_STYLES`, never a package-supplied string) in its colour when `color`."""
    return f"{_STYLES[word]}{word}{_RESET}" if color else word


def score_against(score: float, threshold: float | None, operating_point: str | None, parts: str = "") -> str:
    """"score S[; components]; threshold T at POINT": the threshold beside the score, because a BENIGN 0.995
    only makes sense next to a 0.9954. Both get the digits it takes for them to differ as printed, so the
    line never shows a score equal to its threshold beside a verdict that says otherwise."""
    if threshold is None:
        return f"score {score:.4f}{parts}"
    digits = 4
    while digits < 9 and f"{score:.{digits}f}" == f"{threshold:.{digits}f}" and score != threshold:
        digits += 1
    # rounding must not carry a score below the threshold up to it: cut, do not round, past 4 digits
    shown = f"{score:.{digits}f}" if digits == 4 else f"{int(score * 10**digits) / 10**digits:.{digits}f}"
    return f"score {shown}{parts}; threshold {threshold:.{digits}f} at {operating_point}"


def top_reasons(sequence: BehaviourSequence, limit: int = TOP_REASONS) -> list[SequenceStep]:
    """The most decisive steps, one per behaviour: install time before import time before use of the
    public API before dead code, transmission/execution/install hooks before reading, encoding and
    obfuscation, else execution order."""
    def rank(indexed: tuple[int, SequenceStep]) -> tuple[int, int, int]:
        i, step = indexed
        stage = STAGE_ORDER.index(step.stage)
        reached = step.stage is not Stage.UNREACHED
        # importing a network or process module only says what the code could do, not that it does it
        decisive = BY_ID[step.behaviour].dimension in _DECISIVE and not step.behaviour.startswith("import_")
        # decisive steps of a reached stage first, then the rest of the reached steps, then dead code
        return (0 if decisive and reached else 1 if reached else 2, stage, i)

    chosen: dict[str, SequenceStep] = {}
    for _, step in sorted(enumerate(sequence.steps), key=rank):
        chosen.setdefault(step.behaviour, step)
        if len(chosen) == limit:
            break
    return list(chosen.values())


def _not_read(result: TargetResult) -> int:
    """Skipped members whose content was not analysed (a link read as a copy of its target was)."""
    info = result.package
    return sum(1 for s in info.skipped if "read as a copy" not in s.reason) if info is not None else 0


def _names_itself(result: TargetResult) -> bool:
    """Whether the target is a registry spec of the very package that was read (same ecosystem and name,
    and the version it pins, if any)."""
    from malseq.errors import MalseqError
    from malseq.intake.targets import RegistryTarget, parse_target

    info = result.package
    if info is None or info.origin.kind != "registry":
        return False
    try:
        target = parse_target(result.target)
    except MalseqError:
        return False
    if not isinstance(target, RegistryTarget) or target.ecosystem is not info.ecosystem:
        return False
    if info.ecosystem.value != "pypi":  # npm names and versions are compared as written
        return target.name == info.name and target.version in (None, info.version)
    from packaging.utils import canonicalize_name, canonicalize_version

    return canonicalize_name(target.name) == canonicalize_name(info.name) and (
        target.version is None or canonicalize_version(target.version) == canonicalize_version(info.version))


def _pinned_lines(result: TargetResult, color: bool = False) -> list[str]:
    """Where a dependency scanned from a lockfile is pinned (the file and line to edit), and the lockfiles
    whose hashes its file does not match."""
    if not result.pinned_by:
        return []
    shown = [clean(p.lockfile, 200) + (f" line {p.line}" if p.line else "") for p in result.pinned_by[:3]]
    more = f" (and {len(result.pinned_by) - 3} more)" if len(result.pinned_by) > 3 else ""
    lines = [f"  pinned in: {', '.join(shown)}{more}"]
    for m in result.lock_hash_mismatches:
        where = clean(m.lockfile, 200) + (f" line {m.line}" if m.line else "")
        lines.append(f"  {_paint('LOCKFILE HASH MISMATCH', color)} ({where}): {clean(m.detail, 400)}")
    return lines


def _notice_lines(result: TargetResult, color: bool = False) -> list[str]:
    lines = []
    for notice in result.notices:
        lines.append(f"  {_paint('NOT SCANNED COMPLETELY', color)}: {clean(notice.message, 400)}")
        lines.append(f"  hint: {clean(notice.hint, 400)}")
    return lines


def shared_hints(results: Sequence[TargetResult]) -> dict[str, int]:
    """Error hints that several targets of one run share (offline with an empty cache: "run once
    without --offline..."), with how many: the report says each once, after the targets."""
    counts: dict[str, int] = {}
    for r in results:
        if r.error is not None and r.error.hint:
            counts[r.error.hint] = counts.get(r.error.hint, 0) + 1
    return {hint: n for hint, n in counts.items() if n > 1}


def shared_hint_lines(shared: dict[str, int]) -> list[str]:
    return [f"hint (for {n} targets above): {clean(hint, 300)}" for hint, n in shared.items()]


def render_result(result: TargetResult, show_features: bool = False, show_sequence: bool = False,
                  color: bool = False, omit_hints: Collection[str] = ()) -> str:
    """One target's lines. `omit_hints`: error hints the report prints once for the run (`shared_hints`)."""
    lines: list[str] = []
    head = clean(result.target, 200)
    if result.error is not None:
        lines.append(f"{head}: {_paint('ERROR', color)} {clean(result.error.kind, 80)}: "
                     f"{clean(result.error.message, 400)}")
        if result.error.hint and result.error.hint not in omit_hints:
            lines.append(f"  hint: {clean(result.error.hint, 300)}")
        lines.extend(_pinned_lines(result, color))
        lines.extend(_notice_lines(result, color))
        return "\n".join(lines)
    info = result.package
    assert info is not None
    if info.name or info.version:
        ident = release_spec(info.ecosystem, clean(info.name, 100) or "?", clean(info.version, 50) or "?")
    else:  # a folder of code without a manifest: no "pypi:?==?"
        ident = f"{'Python' if info.ecosystem.value == 'pypi' else 'JavaScript'} code with no package name or " \
            "version in its files"
    langs = ", ".join(f"{lc.files} {lc.language}" for lc in info.languages) or "no source files"
    # a registry release named by the user is the package it names: one name, not the spec and then
    # the same name again (a release whose manifest names another package keeps both)
    shown = ident if _names_itself(result) else f"{head}: {ident}"
    lines.append(f"{shown} ({info.file_count} files, {langs}; {result.seconds:.2f} s)")
    if info.origin.filename is not None:  # what exactly was judged: a registry may serve several files
        lines.append(f"  file: {clean(info.origin.filename, 200)} sha256 {info.origin.sha256 or '?'}")
    lines.extend(_pinned_lines(result, color))
    lines.extend(_notice_lines(result, color))
    for name, cmd in info.install_scripts:
        lines.append(f"  install script {clean(name, 40)}: {clean(cmd, 160)}")
    if info.binaries:
        lines.append(f"  binaries: {', '.join(clean(b, 80) for b in info.binaries[:5])}"
                     + (" ..." if len(info.binaries) > 5 else ""))
    if info.skipped:
        lines.append(f"  skipped {len(info.skipped)} member(s):")
        for s in info.skipped[:5]:
            lines.append(f"    {clean(s.path, 120)}: {clean(s.reason, 120)}")
    if result.analysis is not None:
        events = result.analysis.all_events()
        ids = sorted({e.behaviour for e in events})
        lines.append(f"  behaviours: {len(events)} event{'' if len(events) == 1 else 's'}, "
                     f"{len(ids)} kind{'' if len(ids) == 1 else 's'}")
        # A file cut by its work budget is evidence too: what it hides past the cut was not read.
        cut = [f.path for f in result.analysis.files if f.budget_exhausted]
        if cut:
            shown_cut = ", ".join(clean(path, 120) for path in cut[:5])
            more = f" and {len(cut) - 5} more" if len(cut) > 5 else ""
            lines.append(f"  analysis budget exhausted in {len(cut)} file{'' if len(cut) == 1 else 's'} "
                         f"(read in part, the rest cut): {shown_cut}{more}")
        # The package's work budget ran out: the verdict stands on the files read, these were not.
        not_read = result.analysis.unread
        if not_read:
            shown_unread = ", ".join(clean(path, 120) for path in not_read[:3])
            on_path = result.analysis.unread_import_path
            where = (f" ({len(on_path)} on the import path, e.g. {clean(on_path[0], 120)})" if on_path
                     else " (none on the import path)")
            lines.append(f"  analysis budget exhausted: {len(not_read)} file{'' if len(not_read) == 1 else 's'} "
                         f"not read, e.g. {shown_unread}{where}")
        if show_features:
            for e in sorted(events, key=lambda e: (e.file, e.line, e.column)):
                lines.append(
                    f"    {clean(e.file, 120)}:{e.line}:{e.column}  {BY_ID[e.behaviour].phrase}"
                    f"  [{e.behaviour}]  {clean(e.snippet, 100)}"
                )
    # a verdict never stands without saying that part of the package was not read
    unread = _not_read(result)
    partial = f"; {unread} member(s) NOT READ, see skipped" if unread else ""
    if result.analysis is not None and result.analysis.unread:
        partial += f"; {len(result.analysis.unread)} file(s) NOT READ (analysis budget exhausted)"
    if result.unscored is not None:
        lines.append(f"  verdict: {_paint('NONE', color)} ({clean(result.unscored, 300)}){partial}")
    if result.score is not None:
        parts = "".join(f"; {name} {value:.4f}" for name, value in result.component_scores if len(
            result.component_scores) > 1)
        word = (result.verdict or "").upper()
        shown = _paint(word, color) if word in _STYLES else clean(word, 40)
        scored = score_against(result.score, result.threshold, result.operating_point, parts)
        lines.append(f"  verdict: {shown} ({scored}){partial}")
        if result.verdict == "malicious" and result.sequence is not None and result.sequence.steps:
            lines.append("  top reasons (--sequence shows every step):")
            for n, step in enumerate(top_reasons(result.sequence), 1):
                lines.append(f"    {n}. [{step.stage.value}] {BY_ID[step.behaviour].phrase}  "
                             f"{clean(step.file, 120)}:{step.line}")
        if result.suppressed is not None:
            lines.append(f"  suppressed: {clean(result.suppressed, 300)}")
    if result.previous is not None:  # scan --against-previous
        from malseq.report.diff_report import previous_lines

        lines.extend(previous_lines(result.previous))
    if result.lookalike is not None:  # scan --lookalikes
        from malseq.report.diff_report import lookalike_lines

        lines.extend(lookalike_lines(result.lookalike))
    if show_sequence and result.sequence is not None:
        from malseq.sequence.render import render_steps
        from malseq.sequence.render import render_text as render_model_text

        lines.append(f"  sequence ({result.sequence.seconds:.2f} s):")
        lines.extend(render_steps(result.sequence, indent="    "))
        lines.append(f"    model text: {render_model_text(result.sequence) or '(empty: no behaviour found)'}")
    return "\n".join(lines)


def summary_line(results: Sequence[TargetResult]) -> str:
    """One line counting the outcome of the run, so a long report's end says how it went."""
    errors = sum(1 for r in results if r.error is not None)
    flagged = sum(1 for r in results if r.verdict == "malicious" and r.suppressed is None)
    suppressed = sum(1 for r in results if r.verdict == "malicious" and r.suppressed is not None)
    line = (f"summary: {len(results)} target(s): {len(results) - errors} scanned, {flagged} flagged, "
            f"{errors} error(s), {suppressed} suppressed")
    incomplete = sum(1 for r in results if r.notices)
    unscored = sum(1 for r in results if r.unscored is not None)
    if incomplete:
        line += f", {incomplete} not scanned completely"
    if unscored:
        line += f", {unscored} without a verdict"
    mismatched = sum(1 for r in results if r.lock_hash_mismatches)
    if mismatched:
        line += f", {mismatched} lockfile hash mismatch(es)"
    return line


def render_text(results: Sequence[TargetResult], show_features: bool = False, show_sequence: bool = False,
                color: bool = False) -> str:
    shared = shared_hints(results)
    lines = [render_result(r, show_features, show_sequence, color, shared) for r in results]
    lines.extend(shared_hint_lines(shared))
    body = "\n".join(lines)
    return f"{body}\n{summary_line(results)}\n"
