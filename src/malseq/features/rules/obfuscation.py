"""Obfuscation: text assembled from character codes, strings reversed at run time."""

from __future__ import annotations

import re

from malseq.features.gate import gated
from malseq.features.rules.context import ArgKind, CallContext, FileContext, FileFinding, StringContext
from malseq.features.rules.registry import JS, PY, call_rule, file_rule, js_parts, string_rule
from malseq.features.strings import count_obfuscated_identifiers, shannon_entropy


@call_rule("char_code_assembly", JS, order=140, names=("Buffer.from", "Buffer"))
def javascript_buffer_bytes(ctx: CallContext) -> bool:
    """Buffer.from([100, 108, 45, ...]).toString(): text hidden as byte values."""
    return ctx.arg_count == 1 and ctx.facts.arg_kind(0) is ArgKind.ARRAY and ctx.facts.arg_numbers(0) >= 4


@call_rule("char_code_assembly", JS, order=220, names=("String.fromCharCode",))
def javascript_from_char_code(ctx: CallContext) -> bool:
    if ctx.arg_count >= 3 and ctx.facts.char_codes() is not None:
        return True
    return ctx.arg_count == 1 and ctx.facts.arg_kind(0) is ArgKind.SPREAD


@call_rule("char_code_assembly", JS, order=230, names=("String.fromCharCode.apply",))
def javascript_from_char_code_apply(ctx: CallContext) -> bool:
    return ctx.arg_count == 2 and ctx.facts.arg_kind(1) is ArgKind.ARRAY


@call_rule("char_code_assembly", JS, order=340, funcs=("map",))
def javascript_mapped_codes(ctx: CallContext) -> bool:
    """[104, 116, 116, 112].map(c => String.fromCharCode(c))."""
    if not ctx.member or not ctx.arg_count or js_parts(ctx.name)[1] != "map":
        return False
    return ctx.facts.receiver_kind() is ArgKind.ARRAY and "fromCharCode" in ctx.facts.arg_source(0, None) \
        and ctx.facts.receiver_numbers() >= 4


@call_rule("string_reversal", JS, order=310, funcs=("join",))
def javascript_reverse_join(ctx: CallContext) -> bool:
    """x.split('').reverse().join('') / [...x].reverse().join('') / Array.from(x).reverse().join('')."""
    if not ctx.member or js_parts(ctx.name)[1] != "join" or ctx.facts.receiver_kind() is not ArgKind.CALL:
        return False
    if ctx.facts.receiver_method() != "reverse":
        return False
    if not ctx.arg_count or ctx.facts.arg_text(0) != "":
        return False
    kind, text = ctx.facts.receiver_method_object()
    return (kind is ArgKind.CALL and (".split(" in text or text.startswith("Array.from("))) or (
        kind is ArgKind.ARRAY and text.startswith("[..."))


# --- literals -----------------------------------------------------------------------------
ENTROPY_MIN_LENGTH = 40
ENTROPY_THRESHOLD = 4.8
_ESCAPES = re.compile(r"\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\u\{[0-9a-fA-F]+\}|\\[0-7]{3}")


@string_rule("high_entropy_string", order=130, min_length=ENTROPY_MIN_LENGTH)
def random_looking_literal(ctx: StringContext) -> bool:
    return len(ctx.value) >= ENTROPY_MIN_LENGTH and " " not in ctx.sample and shannon_entropy(
        ctx.sample) >= ENTROPY_THRESHOLD


def _escapes_ascii(escape: str) -> bool:
    digits = escape[2:].strip("{}") if escape[1] in "xu" else escape[1:]
    try:
        code = int(digits, 16 if escape[1] in "xu" else 8)
    except ValueError:
        return False
    return 0x20 <= code < 0x7F


# Eight escapes of at least four characters each: shorter literals cannot qualify.
@string_rule("escaped_string", order=10, raw=True, min_length=32)
def escaped_literal(ctx: StringContext) -> bool:
    """A literal written mostly as escapes of printable ASCII.

    Only escapes of printable ASCII count: `\\x63\\x68` hides "ch", while non-Latin text written as
    `\\u0627\\u0644...` (locale tables, i18n bundles) is how many codebases store it.
    """
    escapes = [e for e in _ESCAPES.findall(ctx.sample) if _escapes_ascii(e)]
    return len(escapes) >= 8 and sum(len(e) for e in escapes) >= 0.5 * len(ctx.value)


# --- whole files --------------------------------------------------------------------------
LONG_LINE = 1000
# A name that is all O and 0 (an O before a 0) or all I, l and 1 (an I before an l). Found as
# `_PY_OBFUSCATED_RUN` (a character-set prefix the regex engine skips to quickly) checked as a whole
# word: the same matches as `\b(?:[O0]*O[O0]*0[O0]*|[Il1]*I[Il1]*l[Il1]*)\b` of 8 characters or more.
_PY_OBFUSCATED_WORD = re.compile(r"[O0]*O[O0]*0[O0]*|[Il1]*I[Il1]*l[Il1]*")
_PY_OBFUSCATED_RUN = re.compile(r"[O0Il1]{8,}")
_JS_OBFUSCATED_IDENTIFIER = gated(re.compile(rb"\b_0x[0-9a-fA-F]{4,}\b"))
_JS_ESCAPED_IDENTIFIER = gated(re.compile(rb"(?:\\u[0-9a-fA-F]{4}){2,}"))
JS_OBFUSCATED_IDENTIFIERS_MIN = 5


@file_rule("obfuscated_identifiers", PY, order=10)
def python_machine_names(ctx: FileContext) -> FileFinding | None:
    """Obfuscators' machine names: _0x1a2b (JS-style) or runs of O0 / Il."""
    first = re.search(r"\b_0x[0-9a-f]{4,}\b", ctx.text) if count_obfuscated_identifiers(ctx.text) >= 3 else None
    if first is None:
        names = [m for m in _PY_OBFUSCATED_RUN.finditer(ctx.text) if _whole_word(ctx.text, m.start(), m.end())
                 and _PY_OBFUSCATED_WORD.fullmatch(m.group(0))]
        if len(names) >= 5:
            first = names[0]
    return FileFinding(first.start(), first.group(0)) if first is not None else None


def _whole_word(text: str, start: int, end: int) -> bool:
    """`text[start:end]` has a regex word boundary (`\\b`) at both ends."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or before == "_" or after.isalnum() or after == "_")


@file_rule("minified_code", PY, order=20)
def python_long_line(ctx: FileContext) -> FileFinding | None:
    offset = 0
    for line in ctx.text.split("\n"):  # the lines of LONG_LINE characters or more, where they start
        if len(line) >= LONG_LINE:
            # One huge string literal (a base64 payload) is a long string, not minified code.
            code_only = re.sub(r"([\"'])(?:(?!\1).){200,}?\1", "''", line[:200000])
            if len(code_only) >= LONG_LINE:
                return FileFinding(offset, line[:120])
        offset += len(line) + 1
    return None


@file_rule("obfuscated_identifiers", JS, order=10)
def javascript_machine_names(ctx: FileContext) -> FileFinding | None:
    """At least five _0x1a2b names in code (a comment or string listing them is not obfuscation)."""
    count = 0
    first: re.Match[bytes] | None = None
    for match in _JS_OBFUSCATED_IDENTIFIER.finditer(ctx.data):
        if ctx.facts.identifier_span(match.start(), match.end()) is None:
            continue
        if first is None:
            first = match
        count += 1
        if count >= JS_OBFUSCATED_IDENTIFIERS_MIN:
            break
    if first is None or count < JS_OBFUSCATED_IDENTIFIERS_MIN:
        return None
    return FileFinding(first.start(), first.group().decode("ascii"))


@file_rule("escaped_string", JS, order=20)
def javascript_escaped_identifier(ctx: FileContext) -> FileFinding | None:
    """`\\u0065\\u0076\\u0061\\u006C(x)`: an identifier spelled with escapes."""
    for match in _JS_ESCAPED_IDENTIFIER.finditer(ctx.data):
        span = ctx.facts.identifier_span(match.start(), match.end())
        if span is not None:
            return FileFinding(span[0], ctx.data[span[0]:span[1]].decode("utf-8", "replace"))
    return None


@file_rule("minified_code", JS, order=30)
def javascript_long_line(ctx: FileContext) -> FileFinding | None:
    offset = 0
    for line_bytes in ctx.data.split(b"\n"):
        if len(line_bytes) > LONG_LINE:
            return FileFinding(offset, line_bytes[:120].decode("utf-8", "replace"))
        offset += len(line_bytes) + 1
    return None
