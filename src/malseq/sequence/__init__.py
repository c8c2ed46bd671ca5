"""Behaviour sequences: a package's behaviours in the order its code would run (issue #4).

`build_sequence(package, analysis, deadline)` walks from the entry points a package manager uses
through a call graph of the package's own functions; `render_text` turns the result into the
model's input, `render_steps` into a step list with file:line for people.
"""

from __future__ import annotations

from malseq.sequence.builder import build_sequence
from malseq.sequence.render import ORDERS, render_steps, render_text
from malseq.sequence.types import BehaviourSequence, EntryPointRef, SequenceStep, Stage

__all__ = [
    "BehaviourSequence",
    "EntryPointRef",
    "ORDERS",
    "SequenceStep",
    "Stage",
    "build_sequence",
    "render_steps",
    "render_text",
]
