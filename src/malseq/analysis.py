"""Package -> model input, in one place: `analyse()` for the scanner and the lab's corpus cache alike.

`analyse(package, deadline)` extracts the behaviour events (`malseq.features`), orders them
(`malseq.sequence`) and renders the text the sequence model reads (`malseq.model.text`). The
scan and the lab's training data both come from it, so what a model was trained on and what a
scan feeds it cannot drift apart.

`analysis_key()` is a short digest of the source of the code that decides that input. The lab
keys its analysis cache with it (a change to an extractor, the sequence stage or the text
rendering invalidates cached rows without anyone bumping a constant) and records it in the model
card; `malseq scan` warns when the running code's key differs from the model's.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from malseq._deadline import Deadline
from malseq.features.types import PackageAnalysis
from malseq.intake.package import Package
from malseq.sequence.types import BehaviourSequence

__all__ = ["Analysed", "KEY_SOURCES", "analyse", "analysis_key", "key_of", "key_sources"]


@dataclass(frozen=True)
class Analysed:
    """One package as the detector reads it."""

    analysis: PackageAnalysis  # the behaviour events, per file and from the manifest
    sequence: BehaviourSequence  # the events in execution order
    text: str  # the model input: `model_text(render_text(sequence))`, exactly what the scorer tokenises

    @property
    def ids(self) -> list[str]:
        return self.sequence.ids


def analyse(package: Package, deadline: Deadline) -> Analysed:
    """Events, sequence and model text of a package. Counted work budgets alone decide what is read;
    past the deadline (a safety net, never a way to shorten the work) it raises `TimeBudgetExceeded`."""
    from malseq.features import analyse_package
    from malseq.model.text import model_text
    from malseq.sequence import build_sequence, render_text

    analysis = analyse_package(package, deadline)
    sequence = build_sequence(package, analysis, deadline)
    return Analysed(analysis, sequence, model_text(render_text(sequence)))


# What decides the model input, relative to the `malseq` package: folders (every .py below them)
# and single files. Intake's archive reading and package building decide which bytes the extractors
# see; the registry and target parsing only decide where the bytes come from, so they are left out.
KEY_SOURCES: tuple[str, ...] = (
    "features/",
    "sequence/",
    "model/text.py",
    "analysis.py",
    "intake/__init__.py",
    "intake/archive.py",
    "intake/build.py",
    "intake/limits.py",
    "intake/package.py",
    "sanitize.py",  # snippets and labels the sequence stage renders
)


def _walk(node: Traversable, rel: str) -> Iterator[tuple[str, Traversable]]:
    for child in node.iterdir():
        path = f"{rel}{child.name}"
        if child.is_dir():
            if child.name != "__pycache__":
                yield from _walk(child, path + "/")
        elif child.name.endswith(".py"):
            yield path, child


def key_sources(root: Traversable, sources: tuple[str, ...] = KEY_SOURCES) -> list[tuple[str, Traversable]]:
    """The files the key covers, as (path relative to `root`, file), sorted by path."""
    out: dict[str, Traversable] = {}
    for source in sources:
        node = root.joinpath(*source.rstrip("/").split("/"))
        if source.endswith("/"):
            out.update(_walk(node, source))
        elif node.is_file():
            out[source] = node
    return sorted(out.items())


def key_of(root: Traversable, sources: tuple[str, ...] = KEY_SOURCES) -> str:
    """The digest of the files `sources` names under `root` (paths and bytes; 16 hex digits)."""
    digest = hashlib.sha256()
    for rel, node in key_sources(root, sources):
        data = node.read_bytes()
        # length-prefixed, so no two different file sets can produce the same byte stream
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


@functools.cache
def analysis_key() -> str:
    """The key of the running code (read from the installed `malseq` package's own files, once per process)."""
    return key_of(files("malseq"))
