"""Language-independent classification of string literals and raw source text.

Both extractors hand every (folded) string literal to `classify_literal` and every
raw literal token to `classify_raw_literal`; the behaviours these return are the
"what does this data name" half of the vocabulary (URLs, secrets, wallets, shell).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from malseq.features.rules.context import StringContext
    from malseq.features.rules.registry import Registry

_CAPTURE = re.compile(r"(?i)(ImageGrab|screenshot|pyautogui\.screenshot|pynput|keylogger|GetAsyncKeyState|"
                      r"clipboard|pyperclip|mss\(\))")
_OBF_IDENT = re.compile(r"\b_0x[0-9a-f]{4,}\b")
_B64 = re.compile(r"^[A-Za-z0-9+/\r\n]+={0,2}$")
_B64URL = re.compile(r"^[A-Za-z0-9_\-\r\n]+={0,2}$")

BASE64_MIN_LENGTH = 40


def shannon_entropy(text: str) -> float:
    if not text:
        return 0.0
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def looks_like_base64(text: str) -> bool:
    stripped = text.strip()
    if len(stripped) < BASE64_MIN_LENGTH or " " in stripped:
        return False
    if not (_B64.match(stripped) or _B64URL.match(stripped)):
        return False
    compact = stripped.replace("\n", "").replace("\r", "")
    classes = sum((any(c.isupper() for c in compact), any(c.islower() for c in compact),
                   any(c.isdigit() for c in compact)))
    # A long identifier or hex digest is not base64 of anything interesting.
    if classes < 3 or re.fullmatch(r"[0-9a-fA-F]+", compact):
        return False
    return decode_base64(compact) is not None


def decode_base64(text: str) -> bytes | None:
    compact = re.sub(r"\s+", "", text)
    padded = compact + "=" * (-len(compact) % 4)
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decoder(padded.encode("ascii"))
        except (binascii.Error, ValueError):
            continue
    return None


def decode_base64_text(text: str) -> str | None:
    """The decoded text of a base64 literal if it decodes to mostly printable text."""
    raw = decode_base64(text)
    if raw is None or not raw:
        return None
    decoded = raw.decode("utf-8", errors="replace")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in decoded)
    return decoded if printable / len(decoded) > 0.9 else None


def classify_literal(value: str) -> list[str]:
    """Behaviour ids named by the content of one string value (after folding).

    The string rules registered in malseq.features.rules decide (what a URL, a wallet path
    or a shell command looks like lives next to the other rules of its dimension).
    """
    if not value or len(value) < 4:
        return []
    registry = _REGISTRY or _registry()
    return registry.string_behaviours(_StringContext(value, value[:20000]))


def classify_raw_literal(raw: str) -> list[str]:
    """Behaviours visible only in how a literal is written in source (escape-heavy)."""
    registry = _REGISTRY or _registry()
    return registry.string_behaviours(_StringContext(raw, raw[:20000], True))


def _registry() -> Registry:
    # Imported on first use, not at import time: the rule modules import this module's helpers.
    global _REGISTRY, _StringContext
    from malseq.features.rules import REGISTRY
    from malseq.features.rules.context import StringContext

    _REGISTRY, _StringContext = REGISTRY, StringContext
    return REGISTRY


_REGISTRY: Registry | None = None
_StringContext: type[StringContext]


def classify_capture_name(name: str) -> bool:
    return bool(_CAPTURE.search(name))


def count_obfuscated_identifiers(text: str) -> int:
    return len(_OBF_IDENT.findall(text))
