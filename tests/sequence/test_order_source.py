"""SourceText's fast paths find exactly what the plain token scan finds.

`parens()` reads one regex match per paren (a possessive loop skips strings, comments and escapes
between them); the matching it replaces was one match per token of `_PY_TOKENS` / `_JS_TOKENS`.
Line starts come from the lengths of the lines instead of a regex per newline. Both feed the
sequence's evaluation order, so any difference would move steps.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from malseq.sequence.order import _JS_TOKENS, _PY_TOKENS, SourceText

# Pieces that open, close or break the tokens the scan has to skip, mixed with parens and text.
_PIECES = [b"(", b")", b'"', b"'", b"`", b"\\", b"/", b"*", b"#", b"\n", b"a", b" ", b'"""', b"'''",
           b"/*", b"*/", b"//", b"x(y)", b"'(')'", b'"\\")"', b"# (\n", b"/* ) */", b"`${(a)}`", b"\xc3\xa9"]


def _token_scan(data: bytes, is_python: bool) -> dict[int, int]:
    table: dict[int, int] = {}
    stack: list[int] = []
    for m in (_PY_TOKENS if is_python else _JS_TOKENS).finditer(data):
        tok = m.group()
        if tok == b"(":
            stack.append(m.start())
        elif tok == b")" and stack:
            table[stack.pop()] = m.start()
    return table


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=80), st.booleans())
def test_parens_match_the_token_scan(pieces: list[bytes], is_python: bool) -> None:
    data = b"".join(pieces)
    assert SourceText(data, is_python).parens() == _token_scan(data, is_python)


def test_parens_skip_strings_comments_and_escapes() -> None:
    js = b"f('(', \")\", `(${g(1)}`) // (\n/* ) */ h(\\( )"
    found = SourceText(js, False).parens()
    assert found == _token_scan(js, False)
    assert found[1] == js.index(b"`)") + 1  # f( closes after the template, not at a quoted paren
    py = b'f("(", \'\'\')\'\'\', x)  # )\ng(\n"""(""")'
    assert SourceText(py, True).parens() == _token_scan(py, True) == {1: py.index(b"x)") + 1,
                                                                          py.index(b"g(") + 1: len(py) - 1}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\n", b"ab", b"\r\n", b"", b"x\n\n"]), max_size=40))
def test_line_starts_are_those_of_the_newlines(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    text = SourceText(data, False)
    text.offset(1, 0)
    assert text._line_starts is not None
    assert list(text._line_starts) == [0] + [m.end() for m in re.finditer(rb"\n", data)]


def test_main_guards_need_their_literal() -> None:
    assert SourceText(b"if __name__ == '__main__':\n    run()\n", True).main_guards() == [(1, 2)]
    assert SourceText(b"if __name__ == 'main':\n    run()\n", True).main_guards() == []
    js = b"x()\nif (require.main === module) {\n  run();\n}\n"
    assert SourceText(js, False).main_guards() == [(2, 4)]
    assert SourceText(b"if (module === main) {\n}\n", False).main_guards() == []
