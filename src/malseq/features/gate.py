"""Regexes with a substring gate: skip the regex when text lacks every literal a match must contain.

Every string literal of every file goes through a dozen case-insensitive alternations (wallet
names, exfiltration hosts, sensitive paths...). Python's regex engine tries each alternative at
each position of the text, which made these searches the largest single cost of extraction. Most
literals contain none of the words a pattern needs, and `str.__contains__` finds that out in a
fraction of the time. `gated(pattern)` derives, from the compiled pattern's syntax tree, a set of
literal factors such that every match contains at least one of them, and runs the regex only when
the text contains one. The answer is always the regex's own: the gate can only say "cannot match".

Case: for a pattern with case-insensitive parts the factors are lowercased and compared with the
lowercased text, which is exact for ASCII text only (Unicode case folding maps e.g. the Kelvin
sign to "k"); text that is not ASCII always runs the regex.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from re import _constants as _sre_constants  # type: ignore[attr-defined]
from re import _parser as _sre_parser  # type: ignore[attr-defined]
from typing import Any, Generic, TypeVar

__all__ = ["GatedPattern", "factors_of", "gated"]

AnyStr = TypeVar("AnyStr", str, bytes)

# A factor set whose shortest factor is shorter than this is not worth checking.
_MIN_FACTOR = 2

_LITERAL = _sre_constants.LITERAL
_SUBPATTERN = _sre_constants.SUBPATTERN
_BRANCH = _sre_constants.BRANCH
_MAX_REPEAT = _sre_constants.MAX_REPEAT
_MIN_REPEAT = _sre_constants.MIN_REPEAT
_POSSESSIVE_REPEAT = getattr(_sre_constants, "POSSESSIVE_REPEAT", None)
_ATOMIC_GROUP = getattr(_sre_constants, "ATOMIC_GROUP", None)
_AT = _sre_constants.AT


def _better(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """The more selective of two factor sets (longest shortest factor, then fewer factors)."""
    if a is None:
        return b
    if b is None:
        return a
    ka = (min(map(len, a)), -len(a))
    kb = (min(map(len, b)), -len(b))
    return a if ka >= kb else b


def _sequence(items: Any, fold: bool) -> frozenset[str] | None:
    """Factors of a concatenation: its longest literal run, or the best factor set of one of its
    items that every match of the concatenation goes through."""
    best: frozenset[str] | None = None
    run: list[str] = []

    def close_run() -> None:
        nonlocal best
        if run:
            text = "".join(run)
            best = _better(best, frozenset({text.lower() if fold else text}))
            run.clear()

    for op, arg in items:
        if op is _LITERAL and arg < 128:
            run.append(chr(arg))
            continue
        if op is _AT:
            continue  # \b, ^, $ match no character: the literals on both sides are adjacent in the text too
        close_run()
        best = _better(best, _item(op, arg, fold))
    close_run()
    if best is not None and min(map(len, best)) < _MIN_FACTOR:
        return None
    return best


def _item(op: Any, arg: Any, fold: bool) -> frozenset[str] | None:
    if op is _SUBPATTERN:
        _group, add_flags, _del_flags, sub = arg
        return _sequence(sub, fold or bool(add_flags & re.IGNORECASE))
    if op is _ATOMIC_GROUP and _ATOMIC_GROUP is not None:
        return _sequence(arg, fold)
    if op is _BRANCH:
        out: set[str] = set()
        for branch in arg[1]:
            found = _sequence(branch, fold)
            if found is None:
                return None  # one alternative needs no literal: the branch has no gate
            out |= found
        return frozenset(out)
    if op in (_MAX_REPEAT, _MIN_REPEAT) or (_POSSESSIVE_REPEAT is not None and op is _POSSESSIVE_REPEAT):
        low, _high, sub = arg
        return _sequence(sub, fold) if low >= 1 else None
    return None


def factors_of(pattern: re.Pattern[str] | re.Pattern[bytes]) -> tuple[frozenset[str] | None, bool]:
    """(factors, folded): literal strings one of which every match contains (lowercased when
    `folded`), or None when the pattern needs no literal of at least two characters."""
    source = pattern.pattern.decode("latin-1") if isinstance(pattern.pattern, bytes) else pattern.pattern
    flags = pattern.flags & ~re.UNICODE if isinstance(pattern.pattern, bytes) else pattern.flags
    parsed = _sre_parser.parse(source, flags)
    fold = bool(parsed.state.flags & re.IGNORECASE) or _has_scoped_ignorecase(parsed)
    return _sequence(list(parsed), fold), fold


def _has_scoped_ignorecase(items: Any) -> bool:
    for op, arg in items:
        if op is _SUBPATTERN:
            if arg[1] & re.IGNORECASE or _has_scoped_ignorecase(arg[3]):
                return True
        elif op is _BRANCH:
            if any(_has_scoped_ignorecase(b) for b in arg[1]):
                return True
        elif op in (_MAX_REPEAT, _MIN_REPEAT) or (_POSSESSIVE_REPEAT is not None and op is _POSSESSIVE_REPEAT):
            if _has_scoped_ignorecase(arg[2]):
                return True
        elif _ATOMIC_GROUP is not None and op is _ATOMIC_GROUP and _has_scoped_ignorecase(arg):
            return True
    return False


# The string rules gate one literal after another with different patterns: lower it once. One
# tuple, replaced whole, so threads never see one text with another's lowered form.
_last: tuple[Any, Any] = (None, None)


def _lowered(text: AnyStr) -> AnyStr | None:
    """`text.lower()`, or None when `text` is not ASCII (then only the regex can say)."""
    global _last
    last = _last
    if last[0] is text:
        return last[1]  # type: ignore[no-any-return]
    low = text.lower() if text.isascii() else None
    _last = (text, low)
    return low


class GatedPattern(Generic[AnyStr]):
    """A compiled regex whose `search`, `finditer` and `findall` skip text that cannot match."""

    def __init__(self, pattern: re.Pattern[AnyStr]) -> None:
        self.pattern: re.Pattern[AnyStr] = pattern
        factors, self.folded = factors_of(pattern)
        is_bytes = isinstance(pattern.pattern, bytes)
        self.factors: tuple[Any, ...] | None = None
        if factors is not None:
            ordered = sorted(factors)
            self.factors = tuple(f.encode("latin-1") for f in ordered) if is_bytes else tuple(ordered)

    def may_match(self, text: AnyStr, pos: int = 0) -> bool:
        """False only when no match can exist in `text[pos:]`."""
        factors = self.factors
        if factors is None:
            return True
        if pos:
            text = text[pos:]
        if self.folded:
            text = _lowered(text)  # type: ignore[assignment]
            if text is None:
                return True
        for factor in factors:  # noqa: SIM110 - a loop, not any() over a generator: this runs per literal
            if factor in text:
                return True
        return False

    def search(self, text: AnyStr, pos: int = 0) -> re.Match[AnyStr] | None:
        return self.pattern.search(text, pos) if self.may_match(text, pos) else None

    def finditer(self, text: AnyStr, pos: int = 0) -> Iterator[re.Match[AnyStr]]:
        return self.pattern.finditer(text, pos) if self.may_match(text, pos) else iter(())

    def findall(self, text: AnyStr, pos: int = 0) -> list[Any]:
        return self.pattern.findall(text, pos) if self.may_match(text, pos) else []


def gated(pattern: re.Pattern[AnyStr]) -> GatedPattern[AnyStr]:
    return GatedPattern(pattern)
