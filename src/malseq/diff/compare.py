"""The comparison of two scanned sides: files, behaviours, hooks, dependencies, destinations.

Pure functions of two `SideScan`s; nothing here reads package bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from malseq.diff.types import (
    AddedStep,
    BehaviourDelta,
    CutFile,
    Dependency,
    DependencyChange,
    Destination,
    FileChange,
    FileDelta,
    FileFacts,
    HookChange,
    SideScan,
)
from malseq.features.catalogue import BY_ID
from malseq.features.types import BehaviourEvent, Dimension
from malseq.sequence.types import BehaviourSequence, Stage

NEAR_RENAME_SIMILARITY = 0.8  # share of distinct lines two files must have in common to be a move
_MAX_NEAR_RENAME_PAIRS = 250_000  # removed x added text files compared, at most
_STAGE_RANK = {Stage.INSTALL: 0, Stage.IMPORT: 1, Stage.USE: 2, Stage.UNREACHED: 3}
# What the verdict rule looks for among the added behaviours (the text report's "decisive" steps):
# transmission or execution, reached at install or import time; importing a module only says what
# the code could do.
DECISIVE_DIMENSIONS = (Dimension.DATA_TRANSMISSION, Dimension.PAYLOAD_EXECUTION)
DECISIVE_STAGES = (Stage.INSTALL, Stage.IMPORT)


def _similarity(a: FileFacts, b: FileFacts) -> float:
    if not a.line_hashes or not b.line_hashes:
        return 0.0
    shared = len(a.line_hashes & b.line_hashes)
    return shared / len(a.line_hashes | b.line_hashes)


def compare_files(old: Sequence[FileFacts], new: Sequence[FileFacts]) -> tuple[tuple[FileDelta, ...], int]:
    """File deltas (sorted by path) and the number of unchanged files (same path, same content)."""
    old_by = {f.path: f for f in old}
    new_by = {f.path: f for f in new}
    deltas: list[FileDelta] = []
    unchanged = 0
    for path in sorted(old_by.keys() & new_by.keys()):
        a, b = old_by[path], new_by[path]
        if a.sha256 == b.sha256:
            unchanged += 1
        else:
            deltas.append(FileDelta(path, FileChange.CHANGED, path, a.sha256, b.sha256, b.size, b.is_binary))
    removed = {p: old_by[p] for p in sorted(old_by.keys() - new_by.keys())}
    added = {p: new_by[p] for p in sorted(new_by.keys() - old_by.keys())}
    # exact renames: the same content under a new path
    by_sha: dict[str, list[str]] = {}
    for p, f in removed.items():
        by_sha.setdefault(f.sha256, []).append(p)
    for p, f in list(added.items()):
        candidates = by_sha.get(f.sha256)
        if candidates:
            source = candidates.pop(0)
            a = removed.pop(source)
            del added[p]
            deltas.append(FileDelta(p, FileChange.RENAMED, source, a.sha256, f.sha256, f.size, f.is_binary))
    # near renames: text files sharing most of their lines (greedy, best pairs first)
    texts_removed = [f for f in removed.values() if f.line_hashes]
    texts_added = [f for f in added.values() if f.line_hashes]
    if texts_removed and texts_added and len(texts_removed) * len(texts_added) <= _MAX_NEAR_RENAME_PAIRS:
        pairs = sorted(
            ((s, a.path, b.path) for a in texts_removed for b in texts_added
             if a.language == b.language and (s := _similarity(a, b)) >= NEAR_RENAME_SIMILARITY),
            key=lambda t: (-t[0], t[1], t[2]),
        )
        for s, source, target in pairs:
            if source in removed and target in added:
                a, b = removed.pop(source), added.pop(target)
                deltas.append(FileDelta(target, FileChange.RENAMED, source, a.sha256, b.sha256, b.size,
                                        b.is_binary, round(s, 3)))
    deltas.extend(FileDelta(p, FileChange.ADDED, None, None, f.sha256, f.size, f.is_binary) for p, f in added.items())
    deltas.extend(FileDelta(p, FileChange.REMOVED, p, f.sha256, None, f.size, f.is_binary) for p, f in removed.items())
    return tuple(sorted(deltas, key=lambda d: (d.path, d.change.value))), unchanged


_SPACE = re.compile(r"\s+")


def _key(event: BehaviourEvent, path: str) -> tuple[str, str, str]:
    """What identifies a behaviour across releases: not its line, which shifts."""
    return event.behaviour, path, _SPACE.sub(" ", event.snippet.strip())


def _events(side: SideScan) -> list[BehaviourEvent]:
    analysis = side.result.analysis
    if analysis is None:
        return []
    return sorted(analysis.all_events(), key=lambda e: (e.file, e.line, e.column, e.behaviour, e.snippet))


def _placement(sequence: BehaviourSequence | None) -> tuple[dict[BehaviourEvent, int], dict[tuple[str, str, str], int]]:
    """Event -> index of the first step holding it; (behaviour, file, scope) -> first step, for events a
    merged step counts without keeping (steps keep at most a few events)."""
    exact: dict[BehaviourEvent, int] = {}
    loose: dict[tuple[str, str, str], int] = {}
    if sequence is None:
        return exact, loose
    for i, step in enumerate(sequence.steps):
        for e in step.events:
            exact.setdefault(e, i)
            loose.setdefault((e.behaviour, e.file, e.scope), i)
    return exact, loose


def _locate(e: BehaviourEvent, exact: Mapping[BehaviourEvent, int], loose: Mapping[tuple[str, str, str], int]
            ) -> int | None:
    i = exact.get(e)
    return loose.get((e.behaviour, e.file, e.scope)) if i is None else i


def _deltas(events: Iterable[tuple[BehaviourEvent, Stage | None, bool]], side: SideScan
            ) -> tuple[BehaviourDelta, ...]:
    sequence = side.result.sequence
    exact, loose = _placement(sequence)
    out: list[BehaviourDelta] = []
    for e, old_stage, moved in events:
        i = _locate(e, exact, loose)
        step = sequence.steps[i] if sequence is not None and i is not None else None
        out.append(BehaviourDelta(e, BY_ID[e.behaviour].dimension.value if e.behaviour in BY_ID else "",
                                  step.stage if step else None, i + 1 if i is not None else None,
                                  step.entry if step else None, old_stage, moved))
    out.sort(key=lambda d: (_STAGE_RANK.get(d.stage, _NOWHERE) if d.stage else _NOWHERE, d.step or 0,
                            d.event.file, d.event.line, d.event.column, d.event.behaviour))
    return tuple(out)


_NOWHERE = 4  # the rank of an event no sequence step holds


def _ranked(side: SideScan, path_of: Mapping[str, str]
            ) -> dict[tuple[str, str, str], list[tuple[int, BehaviourEvent, Stage | None]]]:
    """Events by matching key, each with the rank of its stage (install 0, import 1, use 2, unreached 3, none 4)."""
    sequence = side.result.sequence
    exact, loose = _placement(sequence)
    out: dict[tuple[str, str, str], list[tuple[int, BehaviourEvent, Stage | None]]] = {}
    for e in _events(side):
        i = _locate(e, exact, loose)
        stage = sequence.steps[i].stage if sequence is not None and i is not None else None
        rank = _STAGE_RANK[stage] if stage is not None else _NOWHERE
        out.setdefault(_key(e, path_of.get(e.file, e.file)), []).append((rank, e, stage))
    return out


class _CutIndex:
    """Is an event's line in the other side's file, where that side's analysis was cut?

    A side whose analysis of a file stopped early (budget_exhausted) has no events for the part it did
    not read, so the other side's events there would look added (or removed). When the cut side's file
    holds the event's line (or, on a long minified line, its `;`-separated piece), the code is the same
    and only the analysis differs: the event is not counted, but tallied per file (`CutFile`)."""

    def __init__(self, events_side: SideScan, cut_side: SideScan, path_in_cut_side: Mapping[str, str]) -> None:
        cut_by_path = {f.path: f for f in cut_side.files}
        self._cut: dict[str, FileFacts] = {}
        self._places: dict[str, dict[tuple[int, int], int]] = {}
        for f in events_side.files:
            other = cut_by_path.get(path_in_cut_side.get(f.path, f.path))
            if other is not None and other.analysis_cut and other.cut_line_hashes and f.event_lines:
                self._cut[f.path] = other
                self._places[f.path] = {(line, column): h for line, column, h in f.event_lines}
        self.counts: dict[str, int] = {}

    def holds(self, e: BehaviourEvent) -> bool:
        other = self._cut.get(e.file)
        if other is None:
            return False
        h = self._places[e.file].get((e.line, e.column))
        if h is None or h not in other.cut_line_hashes:
            return False
        self.counts[e.file] = self.counts.get(e.file, 0) + 1
        return True

    def stage_unsure(self, e: BehaviourEvent) -> bool:
        """The other side analysed this event's code but its file was cut there, so the stage it gave
        (often `unreached`: the calls that reach the code were past the cut) says nothing; tallied."""
        if e.file not in self._cut:
            return False
        self.counts[e.file] = self.counts.get(e.file, 0) + 1
        return True


def compare_behaviours(old: SideScan, new: SideScan, files: Sequence[FileDelta]
                       ) -> tuple[tuple[BehaviourDelta, ...], tuple[BehaviourDelta, ...], tuple[CutFile, ...]]:
    """(added in NEW, removed from OLD, files cut on a side), matched on (behaviour, file after renames,
    snippet) as multisets.

    An occurrence in NEW is matched by one in OLD that ran at the same stage or earlier; one that OLD
    had only later (unreached code now run at install, say) counts as added, marked `moved`, so code
    shipped dormant in OLD and switched on in NEW is not missed. Removed behaviours are counted
    without stages (what OLD had more of). An unmatched occurrence whose line the other side's file
    holds, where that side's analysis was cut, is neither added nor removed (`_CutIndex`): the other
    side has the code but did not analyse it. Nor is an occurrence OLD had later in a file OLD's analysis
    cut: there OLD's stages come from a call graph the cut left incomplete (the sass 1.107.1 -> 1.108.1
    false alarm: 30 URLs and `new Function` "moved" from unreached to import, none of them new)."""
    new_to_old = {d.path: d.old_path for d in files if d.change is FileChange.RENAMED and d.old_path}
    old_to_new = {o: n for n, o in new_to_old.items()}
    old_by_key = _ranked(old, {})
    new_by_key = _ranked(new, new_to_old)
    in_old = _CutIndex(new, old, new_to_old)
    in_new = _CutIndex(old, new, old_to_new)
    added: list[tuple[BehaviourEvent, Stage | None, bool]] = []
    removed: list[tuple[BehaviourEvent, Stage | None, bool]] = []
    for key in sorted(old_by_key.keys() | new_by_key.keys()):
        olds = sorted(old_by_key.get(key, []), key=lambda t: (t[0], t[1].line, t[1].column))
        news = sorted(new_by_key.get(key, []), key=lambda t: (t[0], t[1].line, t[1].column))
        j = 0
        for rank, e, _stage in news:
            if j < len(olds) and olds[j][0] <= rank:
                j += 1  # matched: OLD ran this as early or earlier
            elif j < len(olds) and in_old.stage_unsure(e):
                j += 1  # OLD had it, at a stage its cut call graph cannot vouch for: not a switch-on
            elif j < len(olds):
                added.append((e, olds[j][2], True))  # OLD had it, but later (or never reached)
            elif not in_old.holds(e):
                added.append((e, None, False))
        if len(olds) > len(news):
            by_position = sorted(olds, key=lambda t: (t[1].line, t[1].column))
            removed.extend((e, None, False) for _, e, _ in by_position[len(news):] if not in_new.holds(e))
    return _deltas(added, new), _deltas(removed, old), _cut_files(old, new, files, in_old.counts, in_new.counts)


def _cut_files(old: SideScan, new: SideScan, files: Sequence[FileDelta], in_old: Mapping[str, int],
               in_new: Mapping[str, int]) -> tuple[CutFile, ...]:
    """The changed, renamed, added and removed files whose analysis was cut on either side (an unchanged
    file is analysed the same way on both sides, so its cut hides no change)."""
    old_by = {f.path: f for f in old.files}
    new_by = {f.path: f for f in new.files}
    out: list[CutFile] = []
    for d in files:
        old_facts = old_by.get(d.old_path) if d.old_path is not None else None
        new_facts = new_by.get(d.path) if d.change is not FileChange.REMOVED else None
        old_cut = old_facts is not None and old_facts.analysis_cut
        new_cut = new_facts is not None and new_facts.analysis_cut
        if old_cut or new_cut:
            out.append(CutFile(d.path, d.old_path, old_cut, new_cut, in_old.get(d.path, 0),
                               in_new.get(d.old_path, 0) if d.old_path is not None else 0))
    return tuple(out)


def added_steps(new: SideScan, added: Sequence[BehaviourDelta]) -> tuple[AddedStep, ...]:
    sequence = new.result.sequence
    if sequence is None:
        return ()
    indexes = sorted({d.step for d in added if d.step is not None})
    return tuple(AddedStep(i, s.stage, s.behaviour, s.entry, s.file, s.line, s.count)
                 for i in indexes for s in (sequence.steps[i - 1],))


def is_decisive(d: BehaviourDelta) -> bool:
    """Install- or import-time data transmission or payload execution (a module import is not)."""
    return (d.stage in DECISIVE_STAGES and d.event.behaviour in BY_ID
            and BY_ID[d.event.behaviour].dimension in DECISIVE_DIMENSIONS
            and not d.event.behaviour.startswith("import_"))


def decisive(added: Sequence[BehaviourDelta]) -> tuple[BehaviourDelta, ...]:
    """The added behaviours the verdict rule counts."""
    return tuple(d for d in added if is_decisive(d))


def _script_line(side: SideScan, script: str) -> int:
    if side.result.analysis is None:
        return 1
    for e in side.result.analysis.manifest_events:
        if e.script == script:
            return e.line
    return 1


def compare_hooks(old: SideScan, new: SideScan, files: Sequence[FileDelta], added: Sequence[BehaviourDelta],
                  removed: Sequence[BehaviourDelta]) -> tuple[HookChange, ...]:
    out: list[HookChange] = []
    a, b = dict(old.lifecycle_scripts), dict(new.lifecycle_scripts)
    for name in [n for n, _ in new.lifecycle_scripts] + [n for n, _ in old.lifecycle_scripts if n not in b]:
        if name not in a:
            out.append(HookChange("npm_script", name, "added", None, b[name], "package.json", _script_line(new, name)))
        elif name not in b:
            out.append(HookChange("npm_script", name, "removed", a[name], None, "package.json",
                                  _script_line(old, name)))
        elif a[name] != b[name]:
            out.append(HookChange("npm_script", name, "changed", a[name], b[name], "package.json",
                                  _script_line(new, name)))
    for d in added:
        if d.event.behaviour == "setup_command_override":
            out.append(HookChange("setup_command_override", d.event.snippet, "added", None, d.event.snippet,
                                  d.event.file, d.event.line))
    for d in removed:
        if d.event.behaviour == "setup_command_override":
            out.append(HookChange("setup_command_override", d.event.snippet, "removed", d.event.snippet, None,
                                  d.event.file, d.event.line))
    for f in files:
        if not f.path.endswith(".pth") and not (f.old_path or "").endswith(".pth"):
            continue
        if f.change is FileChange.ADDED or (f.change is FileChange.RENAMED and not (f.old_path or "").endswith(".pth")):
            out.append(HookChange("pth_file", f.path, "added", None, f.new_sha256, f.path, 1))
        elif f.change is FileChange.REMOVED:
            out.append(HookChange("pth_file", f.path, "removed", f.old_sha256, None, f.path, 1))
        elif not f.path.endswith(".pth"):  # renamed away from .pth: Python no longer runs it
            old_path = f.old_path or f.path
            out.append(HookChange("pth_file", old_path, "removed", f.old_sha256, None, old_path, 1))
        elif f.old_sha256 != f.new_sha256:
            out.append(HookChange("pth_file", f.path, "changed", f.old_sha256, f.new_sha256, f.path, 1))
    return tuple(out)


def compare_dependencies(old: Sequence[Dependency], new: Sequence[Dependency]) -> tuple[DependencyChange, ...]:
    a: Mapping[str, Dependency] = {d.name: d for d in old}
    b: Mapping[str, Dependency] = {d.name: d for d in new}
    out: list[DependencyChange] = []
    for name in sorted(a.keys() | b.keys()):
        if name not in a:
            out.append(DependencyChange(name, "added", None, b[name].spec, b[name].source))
        elif name not in b:
            out.append(DependencyChange(name, "removed", a[name].spec, None, a[name].source))
        elif a[name].spec != b[name].spec:
            out.append(DependencyChange(name, "changed", a[name].spec, b[name].spec, b[name].source))
    return tuple(out)


def new_destinations(old: Sequence[Destination], new: Sequence[Destination]) -> tuple[Destination, ...]:
    """NEW's destinations whose host OLD never names, each host once (its first place in NEW)."""
    known = {d.host for d in old}
    out: dict[str, Destination] = {}
    for d in new:
        if d.host not in known:
            out.setdefault(d.host, d)
    return tuple(out.values())


def binaries_added(files: Sequence[FileDelta]) -> tuple[str, ...]:
    return tuple(f.path for f in files if f.is_binary and (
        f.change in (FileChange.ADDED, FileChange.CHANGED)
        or (f.change is FileChange.RENAMED and f.old_sha256 != f.new_sha256)))
