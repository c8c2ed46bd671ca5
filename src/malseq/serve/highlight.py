"""Syntax highlighting of source excerpts with Pygments.

Pygments' HTML formatter escapes every character of the code (`&`, `<`, `>`, quotes), which is
what makes its output safe to put on the page unescaped; `tests/serve` checks it with hostile
code. Colours come from CSS classes (the stylesheet), never inline styles, which the
Content-Security-Policy forbids.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import (
    BashLexer,
    BatchLexer,
    IniLexer,
    JavascriptLexer,
    JsonLexer,
    PowerShellLexer,
    PythonLexer,
    TextLexer,
    TOMLLexer,
)

from malseq.sanitize import clean
from malseq.serve.view import ExcerptView

CSS_CLASS = "code"
STYLE = "default"

# by file suffix; a fixed table rather than Pygments' guessing, which could pick any of its lexers
_LEXERS: dict[str, type[Lexer]] = {
    ".py": PythonLexer, ".pyw": PythonLexer, ".pyi": PythonLexer, ".pth": PythonLexer,
    ".js": JavascriptLexer, ".cjs": JavascriptLexer, ".mjs": JavascriptLexer, ".jsx": JavascriptLexer,
    ".ts": JavascriptLexer,
    ".json": JsonLexer, ".sh": BashLexer, ".bash": BashLexer, ".ps1": PowerShellLexer,
    ".bat": BatchLexer, ".cmd": BatchLexer, ".toml": TOMLLexer, ".cfg": IniLexer, ".ini": IniLexer,
}


def lexer_for(path: str) -> Lexer:
    return _LEXERS.get(PurePosixPath(path).suffix.lower(), TextLexer)(stripnl=False, ensurenl=True)


def highlight_excerpt(excerpt: ExcerptView) -> Markup:
    """The excerpt as an HTML table of numbered lines, the decisive ones highlighted."""
    code = "\n".join(clean(line) for line in excerpt.lines) + "\n"  # old reports: lines not cleaned yet
    marked = [m - excerpt.first_line + 1 for m in excerpt.marked if excerpt.covers(m)]
    formatter = HtmlFormatter(style=STYLE, cssclass=CSS_CLASS, linenos="table", linenostart=excerpt.first_line,
                              hl_lines=marked, wrapcode=True)
    return Markup(highlight(code, lexer_for(excerpt.file), formatter))  # noqa: S704  Pygments escaped it


def stylesheet() -> str:
    return str(HtmlFormatter(style=STYLE, cssclass=CSS_CLASS).get_style_defs(f".{CSS_CLASS}"))
