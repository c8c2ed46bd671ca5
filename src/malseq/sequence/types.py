"""Types of the sequence stage: behaviours in the order the package's code would run them."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from malseq.features.types import BehaviourEvent


class Stage(enum.Enum):
    """When a step runs: while the package is installed, when it is imported, when the victim uses
    its public API (functions, classes and methods it exposes, console scripts, npm `bin`), or never
    as far as the call graph sees (tests, examples, private helpers nothing calls)."""

    INSTALL = "install"
    IMPORT = "import"
    USE = "use"
    UNREACHED = "unreached"


@dataclass(frozen=True)
class EntryPointRef:
    """One place the package manager or interpreter starts running the package's code.

    `label` says what it is, e.g. "postinstall: node index.js", "setup.py", "setup.py PostInstall.run",
    ".pth evil.pth", "import mypkg/__init__.py", "console_script foo = pkg.cli:main", "main index.js",
    "fallback all files"; an entry point whose file does not exist says "(missing file X)".
    `file` is the source file whose code it starts (None when missing or inline); `scope` the function
    qualname it starts in (MODULE_SCOPE for a module body).
    """

    stage: Stage
    label: str
    file: str | None
    scope: str


@dataclass(frozen=True)
class SequenceStep:
    """One behaviour at one point of the execution order.

    `events` are the event(s) this step stands for (file:line evidence); consecutive repeats of the
    same behaviour under the same entry point are merged into one step, so `count` may exceed
    `len(events)` (events are capped). `depth` is the call depth below the entry point.
    """

    behaviour: str
    stage: Stage
    entry: str
    events: tuple[BehaviourEvent, ...]
    depth: int
    count: int = 1

    @property
    def file(self) -> str:
        return self.events[0].file if self.events else ""

    @property
    def line(self) -> int:
        return self.events[0].line if self.events else 0

    @property
    def scope(self) -> str:
        return self.events[0].scope if self.events else ""


@dataclass(frozen=True)
class BehaviourSequence:
    steps: tuple[SequenceStep, ...]
    entry_points: tuple[EntryPointRef, ...]
    budget_exhausted: bool  # the walk stopped early (deadline, step or work cap); later steps may be missing
    seconds: float

    @property
    def ids(self) -> list[str]:
        """Behaviour ids in order, one per step (what `malseq.corpus` sequencers return)."""
        return [s.behaviour for s in self.steps]

    @property
    def text(self) -> str:
        """The model's input with default settings (see `malseq.sequence.render.render_text`)."""
        from malseq.sequence.render import render_text

        return render_text(self)

    def stage_steps(self, stage: Stage) -> tuple[SequenceStep, ...]:
        return tuple(s for s in self.steps if s.stage is stage)
