"""Obfuscation: text assembled from character codes, strings reversed at run time."""

from __future__ import annotations

from malseq.features.rules.context import ArgKind, CallContext
from malseq.features.rules.registry import JS, call_rule, js_parts


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
