"""What a human reviewer needs beyond the verdict, read from the package while it is in memory.

The JSON report keeps one trimmed line per behaviour (`snippet`); a reviewer deciding on a
flagged release wants the code around each step. `review_material` cuts a few lines of source
around the locations of the behaviour sequence (the decisive lines, in execution order) and keeps
the package's self-description (npm `description`, PyPI `summary`, home page), all bounded and
sanitized. `malseq watch` asks for it (`ScanOptions.review_material`) so that `malseq serve` can
show it after the package itself is gone; it lands in the JSON report under `review`.

It reads package data only and changes no behaviour, sequence or score.
"""

from __future__ import annotations

from dataclasses import dataclass

from malseq.intake.package import Package
from malseq.sanitize import clean
from malseq.sequence.types import BehaviourSequence

CONTEXT_LINES = 3  # lines shown before and after each decisive line
MAX_LOCATIONS = 60  # distinct file:line locations excerpted (the first ones in execution order)
MAX_LINE_CHARS = 240
MAX_TOTAL_CHARS = 96_000  # all excerpts of one release together
MAX_FIELD_CHARS = 1_000  # description, home page, ...


@dataclass(frozen=True)
class SourceExcerpt:
    """Consecutive lines of one file: `lines[0]` is line `first_line`; `marked` are the decisive lines.

    `file` is the path exactly as the behaviour steps name it (sanitize it before showing it); the
    lines are sanitized (`malseq.sanitize.clean`) and capped.
    """

    file: str
    first_line: int
    lines: tuple[str, ...]
    marked: tuple[int, ...]

    @property
    def last_line(self) -> int:
        return self.first_line + len(self.lines) - 1

    def covers(self, line: int) -> bool:
        return self.first_line <= line <= self.last_line


@dataclass(frozen=True)
class ReviewMaterial:
    description: str  # npm `description` / PyPI `summary`; as written by the package's author
    homepage: str
    repository: str
    author: str
    license: str
    excerpts: tuple[SourceExcerpt, ...]
    excerpts_truncated: bool  # locations or characters beyond the bounds were left out


def _decisive_locations(sequence: BehaviourSequence) -> list[tuple[str, int]]:
    """Every step's evidence locations, in execution order, each once."""
    seen: dict[tuple[str, int], None] = {}
    for step in sequence.steps:
        for event in step.events:
            if event.line > 0:
                seen.setdefault((event.file, event.line), None)
    return list(seen)


def _windows(lines_wanted: list[int], line_count: int) -> list[tuple[int, int, list[int]]]:
    """Merge each wanted line's context into non-overlapping (first, last, marked) windows."""
    out: list[tuple[int, int, list[int]]] = []
    for line in sorted(set(lines_wanted)):
        first, last = max(1, line - CONTEXT_LINES), min(line_count, line + CONTEXT_LINES)
        if out and first <= out[-1][1] + 1:
            prev_first, prev_last, marked = out[-1]
            out[-1] = (prev_first, max(prev_last, last), [*marked, line])
        else:
            out.append((first, last, [line]))
    return out


def review_material(package: Package, sequence: BehaviourSequence | None) -> ReviewMaterial:
    locations = _decisive_locations(sequence) if sequence is not None else []
    truncated = len(locations) > MAX_LOCATIONS
    by_file: dict[str, list[int]] = {}
    for file, line in locations[:MAX_LOCATIONS]:
        by_file.setdefault(file, []).append(line)
    excerpts: list[SourceExcerpt] = []
    budget = MAX_TOTAL_CHARS
    for file, wanted in by_file.items():  # files in the order their first step runs
        source = package.file(file)
        if source is None or source.is_binary:
            continue
        # splitlines() would also break at \x0b, \x0c, \x1c-\x1e and U+2028: line numbers are the parsers' (\n)
        text_lines = source.text().split("\n")
        if text_lines and text_lines[-1] == "":
            text_lines.pop()  # the newline that ends the last line starts no line of its own
        for first, last, marked in _windows([w for w in wanted if w <= len(text_lines)], len(text_lines)):
            lines = tuple(clean(text_lines[n - 1].rstrip("\r").expandtabs(4), MAX_LINE_CHARS)
                          for n in range(first, last + 1))
            size = sum(len(x) + 1 for x in lines)
            if size > budget:
                truncated = True
                continue
            budget -= size
            excerpts.append(SourceExcerpt(file, first, lines, tuple(marked)))  # the path as the steps name it
    npm, pypi = package.npm, package.pypi

    def field(value: str | None) -> str:
        return clean(value or "", MAX_FIELD_CHARS)

    return ReviewMaterial(
        description=field(npm.description if npm else pypi.summary if pypi else ""),
        homepage=field(npm.homepage if npm else pypi.home_page if pypi else ""),
        repository=field(npm.repository if npm else ""),
        author=field(npm.author if npm else (pypi.author or pypi.author_email) if pypi else ""),
        license=field(npm.license if npm else pypi.license if pypi else ""),
        excerpts=tuple(excerpts),
        excerpts_truncated=truncated,
    )
