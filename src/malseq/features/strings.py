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

from malseq.features.gate import gated

if TYPE_CHECKING:
    from malseq.features.rules.context import StringContext
    from malseq.features.rules.registry import Registry

# Screen capture is named by its libraries (a function of one's own called `take_screenshot`, or a
# browser driver's `save_screenshot`, is not a capture of the user's screen).
_CAPTURE = gated(re.compile(r"(?i)(ImageGrab|pyautogui\.screenshot|pyscreenshot|pyscreeze|d3dshot|^mss(?:\.mss)?$|"
                            r"pynput|keylogger|GetAsyncKeyState|clipboard|pyperclip|mss\(\))"))
_OBF_IDENT = gated(re.compile(r"\b_0x[0-9a-f]{4,}\b"))
_B64 = re.compile(r"^[A-Za-z0-9+/\r\n]+={0,2}$")
_B64URL = re.compile(r"^[A-Za-z0-9_\-\r\n]+={0,2}$")

BASE64_MIN_LENGTH = 40
# An identifier of words joined by underscores (each word letters then digits, at most one capital
# run at its start, or digits): CONSTANT_NAMES, snake_case_names, CamelCase_Parts_2.
_IDENTIFIER_WORD = r"(?:[A-Za-z][a-z]*[0-9]*|[A-Z]+[0-9]*|[0-9]+)"
_IDENTIFIER_WORDS = re.compile(rf"_*{_IDENTIFIER_WORD}(?:_+{_IDENTIFIER_WORD})+_*")


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
    # snake_case or dotted-free identifiers (`test_parse_long_option_with_value_2`) fit the url-safe
    # alphabet; base64 of real data has no run of lowercase words joined by underscores.
    if "_" in compact and _IDENTIFIER_WORDS.fullmatch(compact):
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


def printable_count(text: str) -> int:
    """How many characters of `text` are printable or one of \\r, \\n, \\t (which are not printable)."""
    if text.isprintable():
        return len(text)
    return sum(map(str.isprintable, text)) + text.count("\r") + text.count("\n") + text.count("\t")


def decode_base64_text(text: str) -> str | None:
    """The decoded text of a base64 literal if it decodes to mostly printable text."""
    raw = decode_base64(text)
    if raw is None or not raw:
        return None
    decoded = raw.decode("utf-8", errors="replace")
    printable = printable_count(decoded)
    return decoded if printable / len(decoded) > 0.9 else None


def classify_literal(value: str) -> list[str]:
    """Behaviour ids named by the content of one string value (after folding).

    The string rules registered in malseq.features.rules decide (what a URL, a wallet path
    or a shell command looks like lives next to the other rules of its dimension).
    """
    if not value or len(value) < 4:
        return []
    if len(value) <= MEMO_MAX_LENGTH:
        found = _MEMO.get(value)
        if found is None:
            found = _remember(_MEMO, value, False)
        return list(found)
    registry = _REGISTRY or _registry()
    return registry.string_behaviours(_StringContext(value, value[:20000]))


def classify_raw_literal(raw: str) -> list[str]:
    """Behaviours visible only in how a literal is written in source (escape-heavy)."""
    if len(raw) <= MEMO_MAX_LENGTH:
        found = _RAW_MEMO.get(raw)
        if found is None:
            found = _remember(_RAW_MEMO, raw, True)
        return list(found)
    registry = _REGISTRY or _registry()
    return registry.string_behaviours(_StringContext(raw, raw[:20000], True))


# The same short literals ("utf-8", "name", "__main__") come back in every file: their behaviours are
# remembered, per process. The string rules are pure functions of the text, so what is remembered
# never changes an answer; the memo is emptied when full, which bounds its memory.
MEMO_MAX_LENGTH = 200
MEMO_MAX_ENTRIES = 50_000
_MEMO: dict[str, tuple[str, ...]] = {}
_RAW_MEMO: dict[str, tuple[str, ...]] = {}


def _remember(memo: dict[str, tuple[str, ...]], text: str, raw: bool) -> tuple[str, ...]:
    registry = _REGISTRY or _registry()
    found = tuple(registry.string_behaviours(_StringContext(text, text, raw)))
    if len(memo) >= MEMO_MAX_ENTRIES:
        memo.clear()
    memo[text] = found
    return found


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
    # Asked at every Python call and imported name: the answer is a pure function of the name, so it
    # is remembered per process (the same few thousand names come back in every file).
    found = _CAPTURE_MEMO.get(name)
    if found is None:
        found = bool(_CAPTURE.search(name))
        if len(_CAPTURE_MEMO) >= MEMO_MAX_ENTRIES:
            _CAPTURE_MEMO.clear()
        _CAPTURE_MEMO[name] = found
    return found


_CAPTURE_MEMO: dict[str, bool] = {}


def count_obfuscated_identifiers(text: str) -> int:
    return len(_OBF_IDENT.findall(text))
