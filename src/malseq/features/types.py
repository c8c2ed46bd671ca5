"""Types the feature stage hands to the sequence stage.

Besides behaviour events, each file's analysis carries what the sequence stage needs to
build a call graph: the functions defined, the call sites (including callbacks handed
to other calls), and the names bound by imports/requires. Everything is positioned
by (line, column), 1-based lines and 0-based columns, so stages can merge in source order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from malseq.intake.package import Language

MODULE_SCOPE = "<module>"

# The per-file records below have slots: the largest benign package makes over half a million of them
# (docs/results/speed/memory.md), and a slotted instance has no per-instance dict.


class Dimension(enum.Enum):
    INFORMATION_READING = "information reading"
    DATA_TRANSMISSION = "data transmission"
    ENCODING = "encoding"
    PAYLOAD_EXECUTION = "payload execution"
    INSTALL_HOOK = "install hook"
    OBFUSCATION = "obfuscation"


@dataclass(frozen=True)
class Behaviour:
    id: str
    dimension: Dimension
    phrase: str  # the words the model reads
    description: str
    cerebro: str | None = None  # the Cerebro Table 2 feature this refines, if any


@dataclass(frozen=True, slots=True)
class BehaviourEvent:
    behaviour: str  # a Behaviour.id from the catalogue
    file: str
    line: int
    column: int
    scope: str  # qualified name of the enclosing function, or MODULE_SCOPE
    snippet: str  # trimmed, sanitized source excerpt
    # The package.json script the event comes from (manifest events of npm scripts), else None:
    # the sequence stage finds a script's events by this name.
    script: str | None = None


@dataclass(frozen=True, slots=True)
class FunctionDef:
    qualname: str  # "helper", "Cls.method", "outer.inner", "<arrow@12:4>"
    name: str  # last component, "" for anonymous functions
    file: str
    line: int
    end_line: int
    parent: str  # enclosing scope qualname or MODULE_SCOPE
    is_class: bool = False


class CallKind(enum.Enum):
    CALL = "call"  # callee(...)
    CALLBACK = "callback"  # function handed to another call: setTimeout(f), .then(x => ...), Thread(target=f)
    INLINE = "inline"  # anonymous function defined inline as an argument, run at that point


@dataclass(frozen=True, slots=True)
class CallSite:
    file: str
    line: int
    column: int
    scope: str  # caller's qualname or MODULE_SCOPE
    callee: str  # dotted text after string folding: "helper", "self.run", "utils.send", "<arrow@12:4>"
    kind: CallKind


@dataclass(frozen=True, slots=True)
class Binding:
    """A local name bound to a module: `import a.b as c`, `from .x import y`, `const z = require('./z')`."""

    file: str
    line: int
    scope: str
    name: str  # the local name
    module: str  # as written after folding: "os", ".utils", "./lib/send", "child_process"
    attribute: str | None  # "y" for `from .x import y` / `const {y} = require('x')`, else None


@dataclass(frozen=True)
class FileAnalysis:
    path: str
    language: Language
    events: tuple[BehaviourEvent, ...]
    functions: tuple[FunctionDef, ...]
    calls: tuple[CallSite, ...]
    bindings: tuple[Binding, ...]
    parse_errors: bool = False
    budget_exhausted: bool = False  # analysis stopped early; results are partial
    seconds: float = 0.0


@dataclass(frozen=True)
class PackageAnalysis:
    files: tuple[FileAnalysis, ...]
    # Events that belong to the package rather than to a source file: npm lifecycle
    # scripts (file "package.json"), .pth lines, metadata-level findings.
    manifest_events: tuple[BehaviourEvent, ...]
    seconds: float = 0.0
    # Source files not read because the package work budget ran out (features.budget.PACKAGE_WORK_UNITS),
    # in reading order: the verdict stands on the files read, and these are the evidence of the cut.
    unread: tuple[str, ...] = ()
    # Those of `unread` on the import-time path (top-level packages, entry points, npm main/exports/bin
    # and what they import): code that runs when the package is used. Install-time files are never cut.
    unread_import_path: tuple[str, ...] = ()

    def all_events(self) -> tuple[BehaviourEvent, ...]:
        out = list(self.manifest_events)
        for f in self.files:
            out.extend(f.events)
        return tuple(out)

    def file(self, path: str) -> FileAnalysis | None:
        for f in self.files:
            if f.path == path:
                return f
        return None
