"""The human-readable summary. Every package-supplied string goes through `clean`."""

from __future__ import annotations

from collections.abc import Sequence

from malseq.features.catalogue import BY_ID
from malseq.report.sanitize import clean
from malseq.scan import TargetResult


def render_result(result: TargetResult, show_features: bool = False, show_sequence: bool = False) -> str:
    lines: list[str] = []
    head = clean(result.target, 200)
    if result.error is not None:
        lines.append(f"{head}: ERROR {result.error.kind}: {clean(result.error.message, 400)}")
        if result.error.hint:
            lines.append(f"  hint: {clean(result.error.hint, 300)}")
        return "\n".join(lines)
    info = result.package
    assert info is not None
    ident = f"{info.ecosystem.value}:{clean(info.name, 100) or '?'}@{clean(info.version, 50) or '?'}"
    langs = ", ".join(f"{lc.files} {lc.language}" for lc in info.languages) or "no source files"
    lines.append(f"{head}: {ident} ({info.file_count} files, {langs}; {result.seconds:.2f} s)")
    for name, cmd in info.install_scripts:
        lines.append(f"  install script {name}: {clean(cmd, 160)}")
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
        lines.append(f"  behaviours: {len(events)} events, {len(ids)} kinds")
        if show_features:
            for e in sorted(events, key=lambda e: (e.file, e.line, e.column)):
                lines.append(
                    f"    {clean(e.file, 120)}:{e.line}:{e.column}  {BY_ID[e.behaviour].phrase}"
                    f"  [{e.behaviour}]  {clean(e.snippet, 100)}"
                )
    if result.unscored is not None:
        lines.append(f"  verdict: NONE ({clean(result.unscored, 300)})")
    if result.score is not None:
        parts = "".join(f"; {name} {value:.4f}" for name, value in result.component_scores if len(
            result.component_scores) > 1)
        lines.append(f"  verdict: {(result.verdict or '').upper()} (score {result.score:.4f}{parts})")
        if result.suppressed is not None:
            lines.append(f"  suppressed: {clean(result.suppressed, 300)}")
    if show_sequence and result.sequence is not None:
        from malseq.sequence.render import render_steps
        from malseq.sequence.render import render_text as render_model_text

        lines.append(f"  sequence ({result.sequence.seconds:.2f} s):")
        lines.extend(render_steps(result.sequence, indent="    "))
        lines.append(f"    model text: {render_model_text(result.sequence)}")
    return "\n".join(lines)


def render_text(results: Sequence[TargetResult], show_features: bool = False, show_sequence: bool = False) -> str:
    return "\n".join(render_result(r, show_features, show_sequence) for r in results) + "\n"
