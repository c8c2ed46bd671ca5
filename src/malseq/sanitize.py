"""Make attacker-controlled strings safe to print on a terminal.

A bottom-layer module (it imports nothing of malseq): intake, features, sequence and the reports
all use it for the snippets and names they show.
"""

from __future__ import annotations

import re

# C0 and C1 controls (escape sequences start here), DEL, and the bidirectional
# overrides/isolates used in "Trojan Source" tricks.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str, max_length: int | None = None, keep_newlines: bool = False) -> str:
    """Replace control characters with visible escapes and cap the length."""
    if not keep_newlines:
        text = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", " ")
    text = _UNSAFE.sub(_escape, text)
    if max_length is not None and len(text) > max_length:
        text = text[: max(0, max_length - 1)] + "…"
    return text
