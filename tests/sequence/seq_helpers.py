"""Helpers for the sequence tests: load a test package, or build a hand-written analysis."""

from __future__ import annotations

from pathlib import Path

from malseq._deadline import Deadline
from malseq.features import analyse_package
from malseq.features.types import (
    MODULE_SCOPE,
    BehaviourEvent,
    Binding,
    CallKind,
    CallSite,
    FileAnalysis,
    FunctionDef,
    PackageAnalysis,
)
from malseq.intake import load_target
from malseq.intake.package import Language, Package
from malseq.sequence import BehaviourSequence, Stage, build_sequence

PACKAGES = Path(__file__).parent / "packages"


def scan_case(case: str) -> tuple[Package, PackageAnalysis, BehaviourSequence]:
    """Load tests/sequence/packages/<case> and run the real extractors and the builder."""
    package = load_target(str(PACKAGES / case))
    analysis = analyse_package(package, Deadline(60))
    return package, analysis, build_sequence(package, analysis, Deadline(60))


def ids(seq: BehaviourSequence, stage: Stage | None = None) -> list[str]:
    return [s.behaviour for s in seq.steps if stage is None or s.stage is stage]


def assert_in_order(sequence: list[str], expected: list[str]) -> None:
    """`expected` occurs in `sequence` as a subsequence (in this order, gaps allowed)."""
    pos = 0
    for want in expected:
        try:
            pos = sequence.index(want, pos) + 1
        except ValueError:
            raise AssertionError(f"{want!r} not found after position {pos} in {sequence}") from None


def folder_package(root: Path, files: dict[str, str]) -> Package:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return load_target(str(root))


class FileBuilder:
    """A hand-written FileAnalysis: events, functions, calls and bindings at given positions."""

    def __init__(self, path: str, language: Language = Language.PYTHON) -> None:
        self.path = path
        self.language = language
        self.events: list[BehaviourEvent] = []
        self.functions: list[FunctionDef] = []
        self.calls: list[CallSite] = []
        self.bindings: list[Binding] = []

    def event(self, behaviour: str, line: int, scope: str = MODULE_SCOPE, col: int = 0) -> FileBuilder:
        self.events.append(BehaviourEvent(behaviour, self.path, line, col, scope, f"{behaviour} here"))
        return self

    def function(self, qualname: str, line: int, end: int, parent: str = MODULE_SCOPE,
                 is_class: bool = False) -> FileBuilder:
        name = "" if qualname.rsplit(".", 1)[-1].startswith("<") else qualname.rsplit(".", 1)[-1]
        self.functions.append(FunctionDef(qualname, name, self.path, line, end, parent, is_class))
        return self

    def call(self, callee: str, line: int, scope: str = MODULE_SCOPE, col: int = 0,
             kind: CallKind = CallKind.CALL) -> FileBuilder:
        self.calls.append(CallSite(self.path, line, col, scope, callee, kind))
        return self

    def binding(self, name: str, module: str, attribute: str | None, line: int,
                scope: str = MODULE_SCOPE) -> FileBuilder:
        self.bindings.append(Binding(self.path, line, scope, name, module, attribute))
        return self

    def build(self) -> FileAnalysis:
        return FileAnalysis(self.path, self.language, tuple(self.events), tuple(self.functions),
                            tuple(self.calls), tuple(self.bindings))


def analysis_of(*files: FileBuilder, manifest: tuple[BehaviourEvent, ...] = ()) -> PackageAnalysis:
    return PackageAnalysis(tuple(f.build() for f in files), manifest)
