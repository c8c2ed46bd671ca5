"""Renderings of a behaviour sequence: the text the model reads, and a step list for people.

Model text format (BERT uncased WordPiece reads it; keep it stable, changing it needs retraining):

    install : read environment variables , encode or decode data , upload data to server ; import : ...

- one block per stage, always in the order install, import, use, unreached; a stage with no steps is
  left out;
- a block is the stage word, " : ", then the behaviours' catalogue phrases joined with " , ";
- blocks are joined with " ; ";
- consecutive repeats of a phrase within a block are collapsed to one.

Length budget (`max_words`, counted as whitespace-separated words of the final text, punctuation
included) is met by cutting, in this order, only as far as needed:
  1. collapse consecutive repeats (always done);
  2. drop later repeats of a phrase already present earlier in the same block, starting with the
     unreached block, then use, then import, then install, each from its end (keeps first occurrences);
  3. drop steps from the end of the unreached block, then of the use block, then of the import block,
     then of the install block (install-time behaviour is the strongest evidence, so it goes last; the
     public API runs when the victim calls it, which is likelier than dead code and less sure than
     what merely installing or importing runs).
Deterministic for a given sequence, order and seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from malseq.features.catalogue import BY_ID
from malseq.sanitize import clean
from malseq.sequence.types import BehaviourSequence, SequenceStep, Stage

__all__ = ["render_text", "render_steps", "STAGE_ORDER", "ORDERS"]

STAGE_ORDER: tuple[Stage, ...] = (Stage.INSTALL, Stage.IMPORT, Stage.USE, Stage.UNREACHED)
# "execution": the walk's order; "shuffled": each block shuffled (ablation: does order matter?);
# "source": each block sorted by file, line, column (the order a bag-of-positions detector would see).
ORDERS = ("execution", "shuffled", "source")
_ITEM_SEP = ","
_BLOCK_SEP = ";"


def _phrase(behaviour_id: str) -> str:
    b = BY_ID.get(behaviour_id)
    return b.phrase if b is not None else behaviour_id.replace("_", " ")


def _blocks(steps: Sequence[SequenceStep], order: str, seed: int) -> dict[Stage, list[str]]:
    by_stage: dict[Stage, list[SequenceStep]] = {stage: [] for stage in STAGE_ORDER}
    for step in steps:
        by_stage[step.stage].append(step)
    if order == "shuffled":
        rng = random.Random(seed)
        for stage in STAGE_ORDER:
            rng.shuffle(by_stage[stage])
    elif order == "source":
        for stage in STAGE_ORDER:
            by_stage[stage].sort(key=lambda s: (s.file, s.line, s.events[0].column if s.events else 0))
    elif order != "execution":
        raise ValueError(f"unknown order {order!r}; expected one of {', '.join(ORDERS)}")
    return {stage: _collapse([_phrase(s.behaviour) for s in by_stage[stage]]) for stage in STAGE_ORDER}


def _collapse(phrases: list[str]) -> list[str]:
    out: list[str] = []
    for p in phrases:
        if not out or out[-1] != p:
            out.append(p)
    return out


class _Length:
    """Word count of the rendered text, kept up to date as phrases are removed."""

    def __init__(self, blocks: dict[Stage, list[str]]) -> None:
        self.words = {s: sum(len(p.split()) for p in blocks[s]) for s in STAGE_ORDER}
        self.count = {s: len(blocks[s]) for s in STAGE_ORDER}

    def total(self) -> int:
        present = [s for s in STAGE_ORDER if self.count[s]]
        # stage word + ":" + phrases + separators between phrases, and one separator between blocks
        return sum(2 + self.words[s] + self.count[s] - 1 for s in present) + max(0, len(present) - 1)

    def remove(self, stage: Stage, phrase: str) -> None:
        self.words[stage] -= len(phrase.split())
        self.count[stage] -= 1


def _fit(blocks: dict[Stage, list[str]], max_words: int) -> dict[Stage, list[str]]:
    length = _Length(blocks)
    if length.total() <= max_words:
        return blocks
    # (2) later repeats within a block, lowest-priority block first, each from its end.
    for stage in reversed(STAGE_ORDER):
        phrases = blocks[stage]
        first_seen: dict[str, int] = {}
        for i, p in enumerate(phrases):
            first_seen.setdefault(p, i)
        keep = [True] * len(phrases)
        for i in range(len(phrases) - 1, -1, -1):
            if length.total() <= max_words:
                break
            if first_seen[phrases[i]] < i:
                keep[i] = False
                length.remove(stage, phrases[i])
        blocks[stage] = [p for p, k in zip(phrases, keep, strict=True) if k]
    # Dropping can leave equal phrases side by side again.
    blocks = {stage: _collapse(blocks[stage]) for stage in STAGE_ORDER}
    length = _Length(blocks)
    # (3) whole steps from the end: unreached, then import, then install.
    for stage in reversed(STAGE_ORDER):
        phrases = blocks[stage]
        while phrases and length.total() > max_words:
            length.remove(stage, phrases.pop())
    return blocks


def render_text(seq: BehaviourSequence, max_words: int = 200, order: str = "execution", seed: int = 0) -> str:
    """The sequence as the model reads it (format and cut order in the module docstring)."""
    blocks = _fit(_blocks(seq.steps, order, seed), max_words)
    parts = [f"{stage.value} : " + f" {_ITEM_SEP} ".join(blocks[stage]) for stage in STAGE_ORDER if blocks[stage]]
    return f" {_BLOCK_SEP} ".join(parts)


def render_steps(seq: BehaviourSequence, indent: str = "", max_steps: int | None = None) -> list[str]:
    """One line per step for people: number, stage, phrase, id, file:line, scope, entry point.
    Every package-supplied string is sanitized; call depth shows as indentation."""
    lines = [f"{indent}entry points:"]
    if not seq.entry_points:
        lines.append(f"{indent}  (none)")
    for ep in seq.entry_points:
        where = f" -> {clean(ep.file, 120)}" if ep.file else ""
        scope = f" {clean(ep.scope, 80)}" if ep.file and ep.scope != "<module>" else ""
        lines.append(f"{indent}  {ep.stage.value:<9} {clean(ep.label, 160)}{where}{scope}")
    status = " (budget exhausted: partial)" if seq.budget_exhausted else ""
    lines.append(f"{indent}steps: {len(seq.steps)}{status}")
    shown = seq.steps if max_steps is None else seq.steps[:max_steps]
    entry = None
    for n, step in enumerate(shown, start=1):
        if step.entry != entry:
            entry = step.entry
            lines.append(f"{indent}  [{step.stage.value}] {clean(step.entry, 160)}")
        pad = "  " * min(step.depth, 8)
        repeat = f" x{step.count}" if step.count > 1 else ""
        lines.append(
            f"{indent}  {n:>4}. {pad}{_phrase(step.behaviour)} [{step.behaviour}]{repeat}"
            f"  {clean(step.file, 120)}:{step.line}  in {clean(step.scope, 80)}"
        )
    if max_steps is not None and len(seq.steps) > max_steps:
        lines.append(f"{indent}  ... {len(seq.steps) - max_steps} more steps")
    return lines
