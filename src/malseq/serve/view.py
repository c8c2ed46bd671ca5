"""The stored JSON report of one release, read into frozen dataclasses for the release page.

The report (docs/output.md) was written by some malseq version, possibly an older one, about a
hostile package: every field is checked for its type and missing ones get a neutral value, so a
malformed report shows what it has and never breaks the page. Strings stay as the package wrote
them; the templates escape them (autoescape) and pass them through `malseq.sanitize.clean`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from malseq.features.catalogue import BY_ID

MAX_STEPS = 400  # steps shown on one page (the model reads far fewer)
MAX_LIST = 200  # files, hooks, destinations, ... shown per list


@dataclass(frozen=True)
class StepView:
    index: int  # 1-based position in execution order
    stage: str
    behaviour: str
    phrase: str
    file: str
    line: int
    scope: str
    entry: str
    count: int
    depth: int
    excerpt: int | None  # index into ReportView.excerpts of the excerpt showing this line


@dataclass(frozen=True)
class ExcerptView:
    file: str
    first_line: int
    lines: tuple[str, ...]
    marked: tuple[int, ...]

    def covers(self, line: int) -> bool:
        return self.first_line <= line < self.first_line + len(self.lines)


@dataclass(frozen=True)
class EventView:
    behaviour: str
    file: str
    line: int
    snippet: str


@dataclass(frozen=True)
class Pair:
    key: str
    value: str


@dataclass(frozen=True)
class DiffView:
    previous: str
    notice: str
    previous_score: float | None
    previous_verdict: str
    score: float | None
    malicious_change: bool
    added_steps: tuple[StepView, ...]
    install_hooks: tuple[Pair, ...]  # "added postinstall" -> the command
    destinations_added: tuple[Pair, ...]  # host -> file:line
    files_added: tuple[str, ...]
    files_removed: tuple[str, ...]
    files_changed: tuple[str, ...]
    dependencies: tuple[Pair, ...]


@dataclass(frozen=True)
class ReportView:
    target: str
    metadata: tuple[Pair, ...]  # package facts and the package's own description, as text
    install_hooks: tuple[Pair, ...]  # npm lifecycle scripts, setup.py, .pth files
    entry_points: tuple[Pair, ...]  # stage -> label
    steps: tuple[StepView, ...]
    steps_truncated: bool
    budget_exhausted: bool
    excerpts: tuple[ExcerptView, ...]
    excerpts_truncated: bool
    has_review_material: bool  # False for reports written without excerpts (they show one-line snippets)
    events: tuple[EventView, ...]  # every behaviour found, for reports without excerpts
    component_scores: tuple[Pair, ...]
    threshold: str  # the verdict threshold the score was compared with ("" in reports without one)
    error: str
    notices: tuple[str, ...]
    model_warning: str
    skipped: tuple[Pair, ...]
    diff: DiffView | None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any, limit: int = MAX_LIST) -> list[Any]:
    return value[:limit] if isinstance(value, list) else []


def _phrase(behaviour: str) -> str:
    known = BY_ID.get(behaviour)
    return known.phrase if known else behaviour


def _step(raw: Any, index: int, excerpts: tuple[ExcerptView, ...]) -> StepView:
    d = _dict(raw)
    file, line = _str(d.get("file")), _int(d.get("line"))
    found = next((i for i, x in enumerate(excerpts) if x.file == file and x.covers(line)), None)
    behaviour = _str(d.get("behaviour"))
    return StepView(index, _str(d.get("stage")), behaviour, _phrase(behaviour), file, line,
                    _str(d.get("scope")), _str(d.get("entry")), max(1, _int(d.get("count"))),
                    _int(d.get("depth")), found)


def _excerpts(review: dict[str, Any]) -> tuple[ExcerptView, ...]:
    out = []
    for raw in _list(review.get("excerpts")):
        d = _dict(raw)
        lines = tuple(_str(x) for x in _list(d.get("lines"), 2_000))
        first = _int(d.get("first_line"))
        if lines and first > 0:
            out.append(ExcerptView(_str(d.get("file")), first, lines,
                                   tuple(_int(m) for m in _list(d.get("marked"), 2_000))))
    return tuple(out)


def _diff(raw: dict[str, Any]) -> DiffView:
    diff = _dict(raw.get("diff"))
    files = _dict(diff.get("files"))
    hooks = tuple(Pair(f"{_str(h.get('change'))} {_str(h.get('name'))}",
                       _str(h.get("new")) or _str(h.get("old")))
                  for h in map(_dict, _list(diff.get("install_hooks"))))
    destinations = tuple(Pair(_str(d.get("host")) or _str(d.get("value")),
                              f"{_str(d.get('file'))}:{_int(d.get('line'))}")
                         for d in map(_dict, _list(diff.get("destinations_added"))))
    deps = tuple(Pair(f"{_str(d.get('change'))} {_str(d.get('name'))}",
                      f"{_str(d.get('old'))} -> {_str(d.get('new'))}")
                 for d in map(_dict, _list(diff.get("dependencies"))))

    def paths(kind: str) -> tuple[str, ...]:
        return tuple(_str(_dict(f).get("path")) for f in _list(files.get(kind)))

    added = tuple(
        StepView(_int(d.get("step")) or i + 1, _str(d.get("stage")), _str(d.get("behaviour")),
                 _phrase(_str(d.get("behaviour"))), _str(d.get("file")), _int(d.get("line")), "",
                 _str(d.get("entry")), max(1, _int(d.get("count"))), 0, None)
        for i, d in enumerate(map(_dict, _list(raw.get("added_steps")))))
    return DiffView(
        previous=_str(raw.get("previous")), notice=_str(raw.get("notice")),
        previous_score=_float(raw.get("previous_score")), previous_verdict=_str(raw.get("previous_verdict")),
        score=_float(raw.get("score")), malicious_change=raw.get("malicious_change") is True,
        added_steps=added, install_hooks=hooks, destinations_added=destinations,
        files_added=paths("added"), files_removed=paths("removed"), files_changed=paths("changed"),
        dependencies=deps,
    )


def parse_report(report_json: str) -> ReportView:
    try:
        raw = json.loads(report_json)
    except (ValueError, RecursionError):
        raw = {}
    report = _dict(raw)
    package = _dict(report.get("package"))
    origin = _dict(package.get("origin"))
    review = _dict(report.get("review"))
    sequence = _dict(report.get("sequence"))
    excerpts = _excerpts(review)
    raw_steps = sequence.get("steps")
    steps = tuple(_step(s, i + 1, excerpts) for i, s in enumerate(_list(raw_steps, MAX_STEPS)))

    metadata = [Pair(k, v) for k, v in (
        ("description", _str(review.get("description"))),
        ("home page", _str(review.get("homepage"))),
        ("repository", _str(review.get("repository"))),
        ("author", _str(review.get("author"))),
        ("license", _str(review.get("license"))),
        ("files", f"{_int(package.get('files'))} ({_int(package.get('bytes')):,} bytes)" if package else ""),
        ("languages", ", ".join(f"{k} {_int(_dict(v).get('files'))}"
                                for k, v in _dict(package.get("languages")).items())),
        ("binaries", ", ".join(_str(b) for b in _list(package.get("binaries"), 50))),
        ("origin", " ".join(x for x in (_str(origin.get("kind")), _str(origin.get("location"))) if x)),
        ("archive format", _str(origin.get("format"))),
        ("sha256", _str(origin.get("sha256"))),
        ("partial files", ", ".join(_str(p) for p in _list(report.get("partial_files"), 50))),
        ("files not read (analysis budget exhausted)", _unread(_dict(report.get("unread_files")))),
    ) if v]
    hooks = [Pair(name, _str(cmd)) for name, cmd in list(_dict(package.get("install_scripts")).items())[:MAX_LIST]]
    if package.get("has_setup_py") is True:
        hooks.append(Pair("setup.py", "runs when pip builds the sdist"))
    hooks += [Pair(".pth file", _str(p)) for p in _list(package.get("pth_files"))]
    error = _dict(report.get("error"))
    return ReportView(
        target=_str(report.get("target")),
        metadata=tuple(metadata),
        install_hooks=tuple(hooks),
        entry_points=tuple(Pair(_str(e.get("stage")), _str(e.get("label")))
                           for e in map(_dict, _list(sequence.get("entry_points")))),
        steps=steps,
        steps_truncated=isinstance(raw_steps, list) and len(raw_steps) > MAX_STEPS,
        budget_exhausted=sequence.get("budget_exhausted") is True,
        excerpts=excerpts,
        excerpts_truncated=review.get("excerpts_truncated") is True,
        has_review_material=bool(review),
        events=tuple(EventView(_str(e.get("id")), _str(e.get("file")), _int(e.get("line")), _str(e.get("snippet")))
                     for e in map(_dict, _list(report.get("behaviours")))),
        component_scores=tuple(Pair(_str(k), f"{v:.4f}") for k, v in _dict(report.get("component_scores")).items()
                               if _float(v) is not None),
        threshold=f"{t:.4f}" if (t := _float(report.get("threshold"))) is not None else "",
        error=": ".join(x for x in (_str(error.get("type")), _str(error.get("message"))) if x),
        notices=tuple(_str(_dict(n).get("message")) for n in _list(report.get("notices"))),
        model_warning=_str(report.get("model_warning")),
        skipped=tuple(Pair(_str(s.get("path")), _str(s.get("reason")))
                      for s in map(_dict, _list(package.get("skipped")))),
        diff=_diff(_dict(report.get("previous"))) if report.get("previous") else None,
    )


def _unread(unread: dict[str, Any]) -> str:
    """`N: a, b, ...` of a report's `unread_files` (the package work budget ran out), or ""."""
    if not unread:
        return ""
    on_path = _dict(unread.get("import_path"))
    where = f" ({_int(on_path.get('count'))} on the import path)" if on_path else ""
    return f"{_int(unread.get('count'))}{where}: " + ", ".join(_str(p) for p in _list(unread.get("first"), 20))
