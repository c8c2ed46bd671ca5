"""The substring gate in front of the rules' regexes never changes an answer, and the exact fast paths
of the file rules find what the regexes they replace found."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from malseq.features import strings
from malseq.features.gate import GatedPattern, factors_of, gated
from malseq.features.rules import data_transmission, information_reading, obfuscation, payload_execution
from malseq.features.strings import printable_count

GATED = [
    information_reading._PUBLIC_IP_SERVICE, information_reading._SENSITIVE_FILE, information_reading._BROWSER,
    information_reading._WALLET, information_reading._APP_TOKENS, data_transmission._URL, data_transmission._WEBHOOK,
    data_transmission._EXFIL_SERVICE, payload_execution._PERSISTENCE, strings._CAPTURE, strings._OBF_IDENT,
]


def test_factors_are_what_every_match_must_contain() -> None:
    assert factors_of(re.compile(r"(?i)\bfoo\.bar\b|baz+")) == (frozenset({"foo.bar", "ba"}), True)
    assert factors_of(re.compile(r"x(?:abc|de)y")) == (frozenset({"abc", "de"}), False)
    # one alternative needs no literal: no gate
    assert factors_of(re.compile(r"abc|\w+"))[0] is None
    # optional parts are no factor; a required repeat is
    assert factors_of(re.compile(r"(?:secret)?token"))[0] == frozenset({"token"})
    assert factors_of(re.compile(r"(?:ab){2,}"))[0] == frozenset({"ab"})
    # a case-sensitive part of a case-insensitive pattern is compared lowercased like the rest
    assert factors_of(re.compile(r"(?i)Login|(?-i:Cookies)")) == (frozenset({"login", "cookies"}), True)
    assert gated(re.compile(rb"\b_0x[0-9a-f]{4,}\b")).factors == (b"_0x",)


def test_every_rule_pattern_has_a_gate() -> None:
    for pattern in GATED:
        assert isinstance(pattern, GatedPattern)
        assert pattern.factors, pattern.pattern.pattern


def test_non_ascii_text_always_runs_the_regex() -> None:
    # Unicode case folding: the Kelvin sign matches "k" and the long s matches "s" under (?i).
    kelvin = gated(re.compile(r"(?i)keystore"))
    assert kelvin.search("\u212aeystore") is not None
    assert kelvin.pattern.search("\u212aeystore") is not None
    assert information_reading._WALLET.search("my \u017feed phrase") is not None


_PIECES = st.sampled_from(sorted({f for p in GATED for f in (p.factors or ())
                                  if isinstance(f, str)} | {"Cookies", "http://1.2.3.4/x", "_0xabcd12"}))
_TEXT = st.lists(st.one_of(_PIECES, st.text(alphabet="aBc/\\._-: \n0xK\u212a\u017fOIl1", max_size=6)),
                 max_size=8).map("".join)


def _case(text: str, flips: list[bool]) -> str:
    return "".join(c.swapcase() if i < len(flips) and flips[i] else c for i, c in enumerate(text))


@settings(max_examples=400, deadline=None)
@given(_TEXT, st.lists(st.booleans(), max_size=60))
def test_gated_search_answers_like_the_regex(text: str, flips: list[bool]) -> None:
    for candidate in (text, _case(text, flips)):
        for pattern in GATED:
            if isinstance(pattern.pattern.pattern, bytes):
                continue
            expected = pattern.pattern.search(candidate)
            found = pattern.search(candidate)
            assert (found is None) == (expected is None), (pattern.pattern.pattern, candidate)
            if found is not None and expected is not None:
                assert found.span() == expected.span()
            assert pattern.findall(candidate) == pattern.pattern.findall(candidate)


_OLD_APP_TOKENS = re.compile(
    r"(?i)(discord(?:canary|ptb)?[/\\]+Local Storage|Local Storage[/\\]+leveldb|Telegram Desktop[/\\]+tdata|"
    r"[/\\]tdata\b|\.ROBLOSECURITY|launcher_accounts\.json|Steam[/\\]+config[/\\]+loginusers|\bssfn\b|"
    r"[\w-]{24}\.[\w-]{6}\.[\w-]{27}|mfa\.[\w-]{84})"
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a" * 24, "B-" * 3, ".", "_" * 27, "mfa.", "x" * 84, "ssfn", " ", "\u00e9",
                                 "/tdata", "Local Storage/leveldb"]), max_size=8).map("".join))
def test_app_tokens_found_as_the_one_regex_found_them(text: str) -> None:
    from malseq.features.rules.context import StringContext

    assert information_reading.app_token_literal(StringContext(text, text)) == (
        _OLD_APP_TOKENS.search(text) is not None)


_OLD_PY_OBFUSCATED_NAME = re.compile(r"\b(?:[O0]*O[O0]*0[O0]*|[Il1]*I[Il1]*l[Il1]*)\b")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="O0Il1 _x\u00e9(\n", max_size=80))
def test_obfuscated_names_found_as_the_old_regex_found_them(text: str) -> None:
    old = [(m.start(), m.group(0)) for m in _OLD_PY_OBFUSCATED_NAME.finditer(text) if len(m.group(0)) >= 8]
    new = [(m.start(), m.group(0)) for m in obfuscation._PY_OBFUSCATED_RUN.finditer(text)
           if obfuscation._whole_word(text, m.start(), m.end())
           and obfuscation._PY_OBFUSCATED_WORD.fullmatch(m.group(0))]
    assert new == old


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1300), st.sampled_from("x'\"\r ")), max_size=6))
def test_long_lines_found_where_the_old_regex_found_them(lines: list[tuple[int, str]]) -> None:
    text = "\n".join(ch * n for n, ch in lines)
    old = [(m.start(), m.group(0)) for m in re.finditer("[^\n]{1000,}", text)]
    offset, new = 0, []
    for line in text.split("\n"):
        if len(line) >= obfuscation.LONG_LINE:
            new.append((offset, line))
        offset += len(line) + 1
    assert new == old


@given(st.text(alphabet=st.characters(max_codepoint=0x3000), max_size=40))
def test_printable_count(text: str) -> None:
    assert printable_count(text) == sum(ch.isprintable() or ch in "\r\n\t" for ch in text)


def test_remembered_classification_is_the_registry_answer() -> None:
    from malseq.features.rules import REGISTRY
    from malseq.features.rules.context import StringContext

    for value in ("https://discord.com/api/webhooks/1/x", "~/.ssh/id_rsa", "utf-8", "curl http://x | sh"):
        expected = REGISTRY.string_behaviours(StringContext(value, value))
        assert strings.classify_literal(value) == expected
        assert strings.classify_literal(value) == expected  # remembered
        assert strings.classify_raw_literal(repr(value)) == REGISTRY.string_behaviours(
            StringContext(repr(value), repr(value), True))
