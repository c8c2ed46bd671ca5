"""Evaluation order inside one scope: arguments run before the call that receives them, and
callbacks handed to a call run after it.

Source order gets nested expressions backwards: in
`requests.post(url, data=b64encode(os.environ["K"].encode()))` the extractor reports the POST first,
then the encoding, then the environment read, while Python runs them the other way round. The
extractors give call positions but not call extents, so the extent of a call's argument list is
found here from the file's bytes: the callee's last name followed by "(" at or after the call's
position, and the matching ")" from a paren table built once per file by a regex tokenizer that
skips strings and comments. A call whose "(" is not found close by is treated as a point.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Sequence
from itertools import accumulate
from operator import add

from malseq.features.types import CallKind, CallSite

# Tokens that matter for paren matching; everything else is skipped by finditer.
# String patterns are written as unrolled loops ("normal* (special normal*)*"), which the regex
# engine runs in long steps: a multi-megabyte literal costs milliseconds, not seconds.
_DQ = rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
_SQ = rb"'[^'\\\n]*(?:\\.[^'\\\n]*)*'"
_PY_TOKENS = re.compile(
    rb'"""[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*"""|'
    + rb"'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'''|"
    + _DQ + b"|" + _SQ + rb"|#[^\n]*|\\.|[()]",
    re.DOTALL,
)
_JS_TOKENS = re.compile(
    _DQ + b"|" + _SQ + rb"|`[^`\\]*(?:\\.[^`\\]*)*`|//[^\n]*|/\*.*?\*/|\\.|[()]",
    re.DOTALL,
)
# The same tokens, each match running up to the next paren (group 1; an empty group at the end of
# the data): what `finditer` over the tokens above steps through between two parens (strings,
# comments, escapes, and any other character, one at a time) is consumed by one possessive loop that
# tries the same alternatives in the same order at each position, so the parens found are the same
# ones, with one match object per paren instead of one per token. A run of characters that start no
# token goes first, in one step (at those positions only the last alternative could match).
_PY_SKIP = (rb"[^()\"'#\\]++|" + rb'"""[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*"""|'
            + rb"'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'''|"
            + _DQ + b"|" + _SQ + rb"|#[^\n]*|\\.|[^()]")
_JS_SKIP = rb"[^()\"'`/\\]++|" + _DQ + b"|" + _SQ + rb"|`[^`\\]*(?:\\.[^`\\]*)*`|//[^\n]*|/\*.*?\*/|\\.|[^()]"
_PY_PARENS = re.compile(rb"(?:" + _PY_SKIP + rb")*+(?:([()])|\Z)", re.DOTALL)
_JS_PARENS = re.compile(rb"(?:" + _JS_SKIP + rb")*+(?:([()])|\Z)", re.DOTALL)
_JS_BRACES = re.compile(
    _DQ + b"|" + _SQ + rb"|`[^`\\]*(?:\\.[^`\\]*)*`|//[^\n]*|/\*.*?\*/|\\.|[{}]",
    re.DOTALL,
)
_PY_MAIN_GUARD = re.compile(
    rb"""(?m)^if\s*\(?\s*(?:__name__\s*==\s*['"]__main__['"]|['"]__main__['"]\s*==\s*__name__)""")
_PY_DEDENT = re.compile(rb"(?m)^[^\s#]")
_JS_MAIN_GUARD = re.compile(
    rb"(?m)^\s*if\s*\(\s*(?:require\.main\s*===?\s*module|module\s*===?\s*require\.main)\s*\)\s*\{")
_NAME = re.compile(rb"[\w$]+")
_NAME_BYTES = frozenset(bytes([c]) for c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")
_BLANKS = frozenset((b" ", b"\t", b"\n", b"\r"))
# How far after a call's reported position its "(" may be (long receiver chains in minified code).
_CALLEE_WINDOW = 600


class SourceText:
    """Byte offsets of lines and matching parens of one file, built on first use."""

    def __init__(self, data: bytes, is_python: bool) -> None:
        self.data = data
        self.is_python = is_python
        self._line_starts: array[int] | None = None
        self._parens: dict[int, int] | None = None
        self._guards: list[tuple[int, int]] | None = None

    def offset(self, line: int, column: int) -> int:
        if self._line_starts is None:
            # Line i starts after the lines before it and their i newlines.
            # An array of machine integers, not a list of int objects: 8 bytes a line instead of about 36,
            # kept for every file the walk visits (a big generated package has millions of lines).
            lines = self.data.split(b"\n")
            starts = array("q", [0])
            starts.extend(map(add, accumulate(map(len, lines[:-1])), range(1, len(lines))))
            self._line_starts = starts
        starts = self._line_starts
        if line < 1:
            return column
        if line > len(starts):
            return len(self.data) + column
        return starts[line - 1] + column

    def main_guards(self) -> list[tuple[int, int]]:
        """Line ranges of `if __name__ == "__main__":` (Python) / `if (require.main === module) {...}`
        (JavaScript) blocks at module level: code that runs only when the file is the program, not
        when it is imported."""
        if self._guards is None:
            self._guards = self._find_python_guards() if self.is_python else self._find_js_guards()
        return self._guards

    def _find_python_guards(self) -> list[tuple[int, int]]:
        ranges: list[tuple[int, int]] = []
        if b"__main__" not in self.data:  # every guard the pattern matches names it
            return ranges
        for m in _PY_MAIN_GUARD.finditer(self.data):
            start = self.data.count(b"\n", 0, m.start()) + 1
            # The block ends before the next line that starts at column 0 with code.
            end_match = _PY_DEDENT.search(self.data, m.end())
            stop = end_match.start() if end_match is not None else len(self.data)
            body = self.data[m.start():stop].rstrip()
            ranges.append((start, start + body.count(b"\n")))
        return ranges

    def _find_js_guards(self) -> list[tuple[int, int]]:
        ranges: list[tuple[int, int]] = []
        if b"require.main" not in self.data:  # every guard the pattern matches names it
            return ranges
        for m in _JS_MAIN_GUARD.finditer(self.data):
            depth = 0
            close = None
            for tok in _JS_BRACES.finditer(self.data, m.end() - 1):
                if tok.group() == b"{":
                    depth += 1
                elif tok.group() == b"}":
                    depth -= 1
                    if depth == 0:
                        close = tok.start()
                        break
            if close is not None:
                first = self.data.count(b"\n", 0, m.start()) + 1
                ranges.append((first, first + self.data.count(b"\n", m.start(), close)))
        return ranges

    def parens(self) -> dict[int, int]:
        if self._parens is None:
            table: dict[int, int] = {}
            stack: list[int] = []
            data = self.data
            pattern = _PY_PARENS if self.is_python else _JS_PARENS
            for m in pattern.finditer(data):
                at = m.start(1)
                if at < 0:
                    continue
                if data[at] == 0x28:  # "("
                    stack.append(at)
                elif stack:
                    table[stack.pop()] = at
            self._parens = table
        return self._parens

    def call_end(self, call: CallSite, start: int) -> int | None:
        """Offset of the ")" closing the call's own argument list, or None if not found."""
        name = call.callee.rsplit(".", 1)[-1].strip().encode()
        if not name or not _NAME.fullmatch(name):
            return None
        data = self.data
        limit = min(len(data), start + _CALLEE_WINDOW)
        i = data.find(name, start, limit)
        while i >= 0:
            j = i + len(name)
            if i == 0 or data[i - 1:i] not in _NAME_BYTES:
                while j < limit and data[j:j + 1] in _BLANKS:
                    j += 1
                if data[j:j + 2] == b"?.":
                    j += 2
                if data[j:j + 1] == b"(":
                    return self.parens().get(j)
            i = data.find(name, i + 1, limit)
        return None


# Item layout: (line, column, kind, sequence number, payload). Kinds, in the order they are taken
# when they share a position: an import binds (and runs a local module) first; a call whose extent
# is known opens before the events at its position attach to it; a call without a known extent comes
# after them, so a statement's own behaviour is listed before a local function expands.
Item = tuple[int, int, int, int, object]
BINDING = 0
EVENT = 1
CLASS_BODY = 2
CALL = 3
# Rank of an item kind at a shared position (a call with a known extent ranks 1, before events).
_RANK = {BINDING: 0, EVENT: 2, CLASS_BODY: 3}


def execution_order(items: Sequence[Item], source: SourceText | None) -> list[Item]:
    """Reorder one scope's items (sorted by position) into evaluation order.

    A call with a known extent is held open until the first item past its ")"; items inside run
    first, then the events at the call's own position (its library behaviour), then the call itself
    (a local function expands there), then callbacks/inline functions found among its arguments.
    """
    if source is None or len(items) < 2 or not any(it[2] == CALL for it in items):
        return list(items)
    keyed: list[tuple[int, int, int, int, int, int, Item]] = []
    for it in items:
        line, col, kind, seq, payload = it
        start = source.offset(line, col)
        end = -1
        rank = _RANK.get(kind, 4)
        if kind == CALL:
            assert isinstance(payload, CallSite)
            if payload.kind is CallKind.CALL:
                found = source.call_end(payload, start)
                if found is not None:
                    end = found
                    rank = 1
        keyed.append((start, line, col, rank, -end, seq, it))
    # (line, column) only break ties between positions past the end of the file (never in practice).
    # The sequence number is unique within a file, so the tuples never compare past it: the same
    # order as a key of the first six fields, without a slice per item.
    keyed.sort()

    out: list[Item] = []
    # Open calls: [start, end, call item, events at its position, deferred callbacks]
    stack: list[tuple[int, int, Item, list[Item], list[Item]]] = []

    def close_until(offset: int) -> None:
        while stack and stack[-1][1] < offset:
            _s, _e, call, attached, deferred = stack.pop()
            out.extend(attached)
            out.append(call)
            # Callbacks run when the receiving call calls them: after it, and (for an inner call)
            # before the outer call it is an argument of.
            out.extend(deferred)

    for start, _line, _col, _rank, neg_end, _seq, it in keyed:
        close_until(start)
        kind = it[2]
        payload = it[4]
        if kind == CALL and -neg_end >= 0:
            stack.append((start, -neg_end, it, [], []))
            continue
        if stack and start == stack[-1][0] and kind != CALL:
            stack[-1][3].append(it)  # the behaviour of the open call itself
            continue
        if stack and kind == CALL and isinstance(payload, CallSite) and payload.kind is not CallKind.CALL:
            stack[-1][4].append(it)  # handed to the open call: runs after it
            continue
        out.append(it)
    close_until(1 << 62)
    return out

