"""Counted per-file work budgets, one policy for the Python and the JavaScript extractor.

A file's analysis is bounded by counted work, never by seconds, so the same file gives the same
events on an idle laptop and on a saturated CI machine (and an attacker cannot pad a package
to make a loaded scanner read less of it):

- the parse is bounded by input size: at most `MAX_PARSE_UNITS` of input (about one per token)
  are fed to tree-sitter; a larger file is parsed as its head and its tail (`TAIL_SHARE` of the
  units), because a payload appended to a big bundle or generated module sits at its end;
- the query over the parsed tree is bounded by what the parse read, so it is not counted again:
  its patterns match single nodes (linear in the tree), and a tree deeper than the engine's limit
  has its over-deep subtree cut out of the parse first (`first_too_deep`, a counted cursor walk);
- everything after it spends units of one `WorkBudget`: per syntax node handled, by kind
  (`NODE_UNITS` ... `CALL_UNITS`), one per `BYTES_PER_UNIT` bytes of text folded, decoded or
  classified, one per regex step of a text pass; a nested analysis (code handed to exec/eval)
  spends from the same budget (capped at `NESTED_WORK_UNITS` in JavaScript);
- when the units run out the analysis stops at that point (the same point for the same input),
  keeps what it found and is marked `budget_exhausted`. Passes that must see the end of a file
  reserve `TAIL_SHARE` of the units for it (`head_then_tail`).

A package is bounded the same way: every root budget of its files reports what it spends to the
package's `PackageWorkBudget`, which also counts each file's parse units; once `PACKAGE_WORK_UNITS`
are spent no further file is read, and the files left are listed (`PackageAnalysis.unread`).

The package-level CPU-seconds `Deadline` is only a safety net behind both: a budget checks it every
`DEADLINE_CHECK_UNITS` units, and `Deadline.check` raises `TimeBudgetExceeded`, which turns the
whole target into an error result. It never shortens what is read.

Calibration (bench/budget_probe.py, on the shared 2-core development machine under a load
average of 5-10, so CPU seconds are inflated): a unit costs about 2-3 us of CPU there. The worst
cases, a 6 MB one-line minified bundle and a 6 MB generated Python module, take 5.2 s and 4.2 s
of CPU per file in all (parse, query, passes); the former time budgets stopped them after 3.2-3.8 s
and 1.6-2.1 s with nothing useful found (no call sites; no events). Ordinary files stay far
below both limits: a 280 KB jQuery spends 48k work units and 89k parse units; the largest files in
the malicious samples (2.6-6.4 MB setup.py files holding payload literals) 41k-100k work units.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from tree_sitter import Node, Point, Range

from malseq._deadline import Deadline

__all__ = [
    "BINDING_UNITS",
    "BYTES_PER_UNIT",
    "CALL_UNITS",
    "DEADLINE_CHECK_UNITS",
    "DEPTH_SCAN_SPAN_BYTES",
    "DEPTH_SCAN_STEPS_PER_UNIT",
    "FILE_WORK_UNITS",
    "FOLD_UNITS",
    "LITERAL_UNITS",
    "MAX_DEPTH_CUTS",
    "MAX_PARSE_UNITS",
    "NESTED_WORK_UNITS",
    "NODE_UNITS",
    "PACKAGE_WORK_UNITS",
    "SCOPE_UNITS",
    "TAIL_SHARE",
    "BudgetExhausted",
    "PackageWorkBudget",
    "WorkBudget",
    "cut_out",
    "first_too_deep",
    "head_then_tail",
    "file_read_units",
    "parse_cost",
    "parse_window",
    "source_reader",
]

# Units of work one file may spend after its parse.
FILE_WORK_UNITS = 500_000
# What handling one syntax node costs, by how much Python work it sets off (measured per handler,
# a unit being about 2-3 us of CPU on a loaded machine):
NODE_UNITS = 1  # a slice or name looked at, a regex match in a text pass
SCOPE_UNITS = 4  # a function, class, lambda, import: a scope or binding recorded
LITERAL_UNITS = 4  # a string literal decoded and classified
BINDING_UNITS = 8  # an assignment or declarator: its value folded and resolved
CALL_UNITS = 16  # a call: its callee resolved, its arguments folded, its behaviours looked up
FOLD_UNITS = 16  # an expression (concatenation, join, decode) folded whole and classified
# Units a nested analysis with a budget of its own may spend (eval'd strings, `node -e` scripts).
NESTED_WORK_UNITS = 100_000
# Bytes of text folded, decoded or classified per unit.
BYTES_PER_UNIT = 64
# What one tree-sitter parse may read, in parse units: one per delimiter byte (space, newline,
# bracket, comma, `=`, `.`, `;`: about one per token) plus one per `PARSE_BYTES_PER_UNIT` bytes.
# Parse time follows tokens more than bytes (a 6 MB base64 literal parses in a fraction of the
# time of 6 MB of code), so the limit is counted in both. A file over the limit is parsed as its
# head and its tail. About 1.4 MB of ordinary Python or 1.7 MB of minified JavaScript.
MAX_PARSE_UNITS = 600_000
PARSE_BYTES_PER_UNIT = 16
_DELIMITERS = (b" ", b"\n", b"(", b")", b"{", b"}", b",", b"=", b".", b";")
_PARSE_BLOCK = 16 * 1024
# Share of the parse bytes, and of a head-then-tail pass's units, kept for the end of a file.
TAIL_SHARE = 0.3
# How often (in units) a budget asks the package deadline whether it has passed.
DEADLINE_CHECK_UNITS = 4096
# Syntax-tree depth. tree-sitter keeps a node's depth in 16 bits: over a tree deeper than 65,535
# levels (a 200 KB `[[[...]]]`) a query runs for minutes and misses nodes, and below that
# `Node.parent` and `descendant_for_byte_range` cost one step per level. So before the query a
# walk looks for a node deeper than the engine's limit (JavaScript 20,000: generated concatenation
# chains reach several thousand; Python 2,000: CPython refuses far less). It only goes into subtrees
# of at least `DEPTH_SCAN_SPAN_BYTES` bytes (a smaller one adds at most a few levels per byte), so
# ordinary files cost a few thousand cursor steps; `DEPTH_SCAN_STEPS_PER_UNIT` steps are one unit.
# A node found too deep is cut out of the parse (its bytes are not read) and the file parsed again,
# at most `MAX_DEPTH_CUTS` times; the file is marked budget_exhausted.
DEPTH_SCAN_SPAN_BYTES = 1024
DEPTH_SCAN_STEPS_PER_UNIT = 16
MAX_DEPTH_CUTS = 4

# Units the features stage may spend on one package (issue 14 part 2): the parse units of every file
# read (`file_read_units`) plus every work unit its analyses spend. Files are read whole, most
# important first (`malseq.features.order`), until the units run out; the rest are not read and
# listed as evidence. Checked between files, so the overshoot is at most one file's own bounds.
# Calibration (bench/budget_probe.py --packages --uncapped; docs/results/speed/README.md, "A package
# work budget"): the largest benign releases measured take pandas 3.1.1 sdist 17.2M units, django
# 6.1.3 sdist 14.3M, numpy 2.5.5 sdist 12.2M, typescript 5.9.3 1.8M; vllm-tpu 0.32.0's sdist would
# take about 42M. A unit costs 2.3-3.4 us of CPU on the shared machine under a load average of 20-30,
# so the cut costs about a minute of CPU there: 1.4x the largest benign release, no less.
PACKAGE_WORK_UNITS = 24_000_000
# What opening a file costs besides its parse and walk (parser and query set-up, the result's
# records), so a package of many small files is counted too.
FILE_BASE_UNITS = 100

T = TypeVar("T")


class BudgetExhausted(Exception):
    """A work budget ran out; results so far are kept and the file is marked budget_exhausted."""


class PackageWorkBudget:
    """Counted units of one package's features stage (`PACKAGE_WORK_UNITS`).

    The per-file budgets of the package's files report every unit they spend here (a `WorkBudget`
    made with `meter=`), and the package charges each file's parse units; `exhausted` is asked
    between files only, so a file is read whole (within its own budget) or not at all, and the cut
    falls after the same file for the same package on any machine and under any load."""

    def __init__(self, units: int | None = None) -> None:
        self.units = PACKAGE_WORK_UNITS if units is None else max(0, units)
        self.used = 0

    @property
    def exhausted(self) -> bool:
        return self.used >= self.units

    def charge(self, units: int) -> None:
        self.used += units


class WorkBudget:
    """Units of work left for one file (or one pass of it).

    `spend(n)` raises `BudgetExhausted` once more than `units` have been spent, and lets the
    deadline raise `TimeBudgetExceeded` every `DEADLINE_CHECK_UNITS` units. A share made with
    `share()` spends from its parent too, so a pass can be capped without overspending the file.
    A budget without a parent reports what it spends to `meter` (the package's budget), if any.
    """

    def __init__(self, units: int, deadline: Deadline | None = None, what: str = "analysing a file",
                 parent: WorkBudget | None = None, meter: PackageWorkBudget | None = None) -> None:
        self.units = max(0, units)
        self.used = 0
        self.exhausted = False
        self.deadline = deadline
        self.what = what
        self._parent = parent
        # The package budget a new root budget for the same file reports to (`WorkBudget(..., meter=b.meter)`).
        self.meter: PackageWorkBudget | None = parent.meter if parent is not None else meter
        # Only a root budget reports to it: a share's units reach it through the parent's spend.
        self._meter = meter if parent is None else None
        self._next_check = DEADLINE_CHECK_UNITS

    @property
    def left(self) -> int:
        own = self.units - self.used
        return own if self._parent is None else min(own, self._parent.left)

    def spend(self, units: int = 1) -> None:
        """Count `units` of work; raises `BudgetExhausted` when they are not there."""
        if self._parent is not None:
            try:
                self._parent.spend(units)
            except BudgetExhausted:
                self.exhausted = True
                raise
        self.used += units
        if self._meter is not None:
            self._meter.used += units
        if self.used > self.units:
            self.exhausted = True
            raise BudgetExhausted
        if self.deadline is not None and self.used >= self._next_check:
            self._next_check = self.used + DEADLINE_CHECK_UNITS
            self.deadline.check(self.what)

    def spend_bytes(self, size: int) -> None:
        """Count the work of folding, decoding or classifying `size` bytes of text."""
        self.spend(1 + size // BYTES_PER_UNIT)

    def share(self, fraction: float) -> WorkBudget:
        """A budget of `fraction` of the units left here, spending from this one as well."""
        return WorkBudget(int(self.left * fraction), None, self.what, parent=self)

    def check_deadline(self) -> None:
        """Raise `TimeBudgetExceeded` if the package deadline has passed (a coarse point)."""
        if self.deadline is not None:
            self.deadline.check(self.what)


def head_then_tail(items: Sequence[T], budget: WorkBudget, handle: Callable[[T, WorkBudget], None],
                   cost: Callable[[T], int], on_skip: Callable[[int], None] | None = None) -> bool:
    """Handle `items` in order, keeping `TAIL_SHARE` of the budget for the end of the list.

    `handle(item, budget)` spends from the budget it is given, at least `cost(item)` units. The
    tail is the longest run of last items whose `cost` adds up to half the reserve (the other half
    pays for what handling spends beyond `cost`: text folded, nested analyses). The head runs on
    what is left of `budget` minus the reserve; if that runs out, the items between the cut and
    the tail are skipped (`on_skip(index of the first tail item)` is called first, e.g. to reset a
    scope stack) and the tail runs on the reserve. When the head fits in the budget minus the
    reserve, every item is handled in order, exactly as without a budget. Returns False when
    something was left out.
    """
    reserve = int(budget.left * TAIL_SHARE)
    tail_start, tail_cost = len(items), 0
    half = reserve // 2
    while tail_start > 0:
        item_cost = cost(items[tail_start - 1])
        if tail_cost + item_cost > half:
            break
        tail_start -= 1
        tail_cost += item_cost
    head = WorkBudget(budget.left - reserve, None, budget.what, parent=budget)
    complete = True
    try:
        for index in range(tail_start):
            handle(items[index], head)
    except BudgetExhausted:
        complete = False
        if on_skip is not None:
            on_skip(tail_start)
    try:
        for index in range(tail_start, len(items)):
            handle(items[index], budget)
    except BudgetExhausted:
        return False
    return complete


def parse_cost(data: bytes, start: int = 0, end: int | None = None) -> int:
    """Parse units of `data[start:end]` (see `MAX_PARSE_UNITS`)."""
    end = len(data) if end is None else end
    return (end - start) // PARSE_BYTES_PER_UNIT + sum(data.count(d, start, end) for d in _DELIMITERS)


def file_read_units(data: bytes, parsed: bool) -> int:
    """Units a package budget charges for opening a file of `data`, besides the work units its
    analysis spends: `FILE_BASE_UNITS`, plus what its parse reads (at most `MAX_PARSE_UNITS`) for a
    parsed language, else one per byte of its line-by-line pass (a shell, batch or PowerShell file:
    every script pattern is tried on every line, about a work unit's CPU per byte)."""
    if parsed:
        return FILE_BASE_UNITS + min(parse_cost(data), MAX_PARSE_UNITS)
    return FILE_BASE_UNITS + len(data)


def parse_window(data: bytes) -> tuple[int, int] | None:
    """None when all of `data` may be parsed; else `(head_end, tail_start)`: parse `data[:head_end]`
    and `data[tail_start:]`, together about `MAX_PARSE_UNITS` (the tail `TAIL_SHARE` of them).
    Cut on block boundaries; the engines move the cuts to a statement boundary nearby."""
    if parse_cost(data) <= MAX_PARSE_UNITS:
        return None
    tail_units = int(MAX_PARSE_UNITS * TAIL_SHARE)
    head_units = MAX_PARSE_UNITS - tail_units
    head_end, spent = 0, 0
    while head_end < len(data):
        block = parse_cost(data, head_end, min(len(data), head_end + _PARSE_BLOCK))
        if spent + block > head_units:
            break
        spent += block
        head_end = min(len(data), head_end + _PARSE_BLOCK)
    tail_start, spent = len(data), 0
    while tail_start > head_end:
        block = parse_cost(data, max(head_end, tail_start - _PARSE_BLOCK), tail_start)
        if spent + block > tail_units:
            break
        spent += block
        tail_start = max(head_end, tail_start - _PARSE_BLOCK)
    return head_end, tail_start


# The size of a chunk handed to tree-sitter by `source_reader`.
READ_CHUNK_BYTES = 64 * 1024
_READ_BUFFERS = threading.local()


def source_reader(data: bytes) -> Callable[[int, object], memoryview | bytes]:
    """A read callback for `Parser.parse` over `data` that leaves nothing behind.

    The engines parse through a callback because only then does tree-sitter call the progress callback
    that lets the package deadline stop a parse (with `bytes` it is ignored). tree-sitter 0.26.1's binding
    keeps a reference to every object a read callback returns, so returning slices of `data` kept a copy
    of every chunk for the life of the process: 86 MB on the largest benign package, and a long-lived
    worker grew with each package it read (docs/results/speed/memory.md). Here every chunk is copied
    into one buffer per thread and handed over as a view of it. A kept view costs a couple of hundred
    bytes and holds only that buffer. This is safe because tree-sitter reads a chunk only until its next
    read call. The tree is the same as a parse of the bytes (tests/features/test_source_reader.py).
    Do not read `Node.text` of a tree parsed this way: the binding re-reads the text through the
    callback and expects `bytes`. Slice `data` with the node's byte offsets instead.
    """
    buffer: bytearray | None = getattr(_READ_BUFFERS, "buffer", None)
    if buffer is None:
        buffer = _READ_BUFFERS.buffer = bytearray(READ_CHUNK_BYTES)
    view = memoryview(buffer)
    size = len(data)

    def read(offset: int, _point: object) -> memoryview | bytes:
        if offset >= size:
            return b""
        end = min(size, offset + READ_CHUNK_BYTES)
        length = end - offset
        # same-length slice assignment: the buffer is never resized (kept views pin its size)
        view[:length] = data[offset:end]
        return view[:length]

    return read


def first_too_deep(root: Node, limit: int, budget: WorkBudget) -> Node | None:
    """None when no node was found at depth `limit` below `root`; else the ancestor at depth
    `limit // 2` of the first one found (in source order): the subtree to cut out, so that what
    is left stays well under the limit.

    Looks only into subtrees spanning at least `DEPTH_SCAN_SPAN_BYTES` bytes, so a tree whose
    depth is found to stay under `limit` may still be up to a few levels per byte of that span
    deeper (far below tree-sitter's 65,535). Spends one unit of `budget` per
    `DEPTH_SCAN_STEPS_PER_UNIT` cursor steps; raises `BudgetExhausted` like any pass."""
    cursor = root.walk()
    depth, steps = 0, 0
    half = limit // 2
    anchor = root
    while True:
        steps += 1
        if steps % DEPTH_SCAN_STEPS_PER_UNIT == 0:
            budget.spend(1)
        node = cursor.node
        if node is None:  # pragma: no cover - a cursor always stands on a node
            return None
        if depth == half:
            anchor = node
        elif depth >= limit:
            return anchor
        if node.end_byte - node.start_byte >= DEPTH_SCAN_SPAN_BYTES and cursor.goto_first_child():
            depth += 1
            continue
        while not cursor.goto_next_sibling():
            if depth == 0 or not cursor.goto_parent():
                return None
            depth -= 1


def cut_out(ranges: Sequence[Range], start: int, end: int, point: Callable[[int], Point]) -> list[Range]:
    """`ranges` (sorted byte ranges to parse) without the bytes `start:end`; `point(byte)` gives a
    byte's row and column."""
    kept: list[Range] = []
    for r in ranges:
        if r.end_byte <= start or r.start_byte >= end:
            kept.append(r)
            continue
        if r.start_byte < start:
            kept.append(Range(r.start_point, point(start), r.start_byte, start))
        if r.end_byte > end:
            kept.append(Range(point(end), r.end_point, end, r.end_byte))
    return kept
