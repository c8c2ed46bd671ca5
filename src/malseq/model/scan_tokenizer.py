"""A cut of the model's tokenizer to the words a behaviour-sequence text is made of, for start-up.

The sequence model's `tokenizer.json` is BERT's uncased WordPiece with 30,522 entries, and reading
it is a fifth of the model's load (docs/results/speed, start-up). A scan's text, though, uses about
a hundred words: the stage names, the catalogue's phrases and three separators
(`malseq.sequence.render`). `tokenizer_scan.json`, written beside `tokenizer.json` by the lab when
it assembles a model folder, holds the same tokenizer with only the vocabulary entries those words
are split into, plus the list of those words.

Why the cut gives the same token ids: WordPiece splits a word greedily, taking at each position the
longest entry of the vocabulary that matches. Every entry the full tokenizer picks for a listed word
is in the cut, and the cut has no entry the full vocabulary lacks, so at each position the longest
match is the same entry. Only words on the list are covered: `ScanTokenizer` splits each text into
words with the tokenizer's own normaliser and pre-tokenizer, and a text with any other word (a
behaviour missing from the catalogue when the cut was written, a text from elsewhere) is encoded by
the full tokenizer, read then. The file records the sha256 of the `tokenizer.json` it was cut from;
when that file has changed, the cut is not used. `build_scan_tokenizer` checks every listed word
against the full tokenizer before it writes anything (tests/model/test_scan_tokenizer.py checks the
shipped file).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from malseq.model import SCAN_TOKENIZER_FILE, TOKENIZER_FILE

FORMAT = 1

__all__ = ["FORMAT", "ScanTokenizer", "build_scan_tokenizer", "open_tokenizer", "sequence_words",
           "write_scan_tokenizer"]


class ScanTokenizer:
    """Encodes like the full tokenizer of its folder (same `encode_batch` answers, token for token),
    with the cut for texts made only of the listed words and the full tokenizer, read on first
    need, for any other text."""

    def __init__(self, cut: Any, words: frozenset[str], full_path: Path, tokenizer_class: Any) -> None:
        self._cut = cut
        self._words = words
        self._full_path = full_path
        self._tokenizer_class = tokenizer_class
        self._full: Any = None
        self._truncation: int | None = None
        self._normalizer = cut.normalizer
        self._pre_tokenizer = cut.pre_tokenizer

    @property
    def full_loaded(self) -> bool:
        """Whether a text has needed the full tokenizer (tests and diagnostics)."""
        return self._full is not None

    def no_padding(self) -> None:
        self._cut.no_padding()
        if self._full is not None:
            self._full.no_padding()

    def enable_truncation(self, max_length: int) -> None:
        self._truncation = max_length
        self._cut.enable_truncation(max_length=max_length)
        if self._full is not None:
            self._full.enable_truncation(max_length=max_length)

    def covers(self, text: str) -> bool:
        """Whether every word of `text` (as the tokenizer splits it) is one the cut was made for."""
        normalised = self._normalizer.normalize_str(text) if self._normalizer is not None else text
        return all(word in self._words for word, _ in self._pre_tokenizer.pre_tokenize_str(normalised))

    def encode_batch(self, texts: Sequence[str]) -> list[Any]:
        out: list[Any] = [None] * len(texts)
        covered = [i for i, text in enumerate(texts) if self.covers(text)]
        others = sorted(set(range(len(texts))).difference(covered))
        for indices, from_cut in ((covered, True), (others, False)):
            if indices:
                tokenizer = self._cut if from_cut else self._full_tokenizer()
                for i, encoding in zip(indices, tokenizer.encode_batch([texts[i] for i in indices]), strict=True):
                    out[i] = encoding
        return out

    def _full_tokenizer(self) -> Any:
        if self._full is None:
            full = self._tokenizer_class.from_file(str(self._full_path))
            full.no_padding()
            if self._truncation is not None:
                full.enable_truncation(max_length=self._truncation)
            self._full = full
        return self._full


def open_tokenizer(folder: Path, tokenizer_class: Any) -> Any:
    """The tokenizer a scan encodes with for the model in `folder`: a `ScanTokenizer` when the folder
    holds a cut of its own `tokenizer.json`, else that file read whole."""
    full_path = folder / TOKENIZER_FILE
    cut_path = folder / SCAN_TOKENIZER_FILE
    if cut_path.is_file():
        try:
            doc = json.loads(cut_path.read_text(encoding="utf-8"))
            if doc.get("format") == FORMAT and doc.get("source_sha256") == hashlib.sha256(
                    full_path.read_bytes()).hexdigest():
                cut = tokenizer_class.from_str(doc["tokenizer"])
                return ScanTokenizer(cut, frozenset(doc["words"]), full_path, tokenizer_class)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # an unreadable or stale cut: the full tokenizer below is always right
    return tokenizer_class.from_file(str(full_path))


def sequence_words() -> list[str]:
    """The text of every phrase, stage name and separator a behaviour-sequence text is made of."""
    from malseq.features.catalogue import BEHAVIOURS
    from malseq.sequence.render import STAGE_ORDER

    phrases = [b.phrase for b in BEHAVIOURS] + [b.id.replace("_", " ") for b in BEHAVIOURS]
    return [*phrases, *(stage.value for stage in STAGE_ORDER), ",", ";", ":"]


def build_scan_tokenizer(tokenizer_json: str, texts: Iterable[str]) -> dict[str, Any]:
    """The `tokenizer_scan.json` document for the tokenizer `tokenizer_json` (its text) and every
    word of `texts`. Raises ValueError when the tokenizer is not a WordPiece one, or when the cut
    encodes any of the words or texts differently from the full tokenizer."""
    from tokenizers import Tokenizer

    doc = json.loads(tokenizer_json)
    model = doc.get("model") or {}
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise ValueError("only a WordPiece tokenizer can be cut (greedy longest match keeps its answers)")
    full = Tokenizer.from_str(tokenizer_json)
    full.no_padding()
    full.no_truncation()
    texts = list(texts)
    words: set[str] = set()
    for text in texts:
        normalised = full.normalizer.normalize_str(text) if full.normalizer is not None else text
        words.update(word for word, _ in full.pre_tokenizer.pre_tokenize_str(normalised))
    keep = {model["unk_token"], *(t["content"] for t in doc.get("added_tokens", []))}
    for word in words:
        keep.update(full.encode(word, add_special_tokens=False).tokens)
    vocab = model["vocab"]
    missing = sorted(t for t in keep if t not in vocab)
    if missing:
        raise ValueError(f"tokens not in the vocabulary: {missing[:5]}")
    cut_doc = copy.deepcopy(doc)
    cut_doc["model"]["vocab"] = {token: vocab[token] for token in sorted(keep, key=vocab.__getitem__)}
    cut_text = json.dumps(cut_doc, ensure_ascii=False, separators=(",", ":"))
    cut = Tokenizer.from_str(cut_text)
    cut.no_padding()
    cut.no_truncation()
    for text in sorted(words) + texts + [" ".join(sorted(words))]:
        if cut.encode(text).ids != full.encode(text).ids:
            raise ValueError(f"the cut encodes {text[:80]!r} differently from the full tokenizer")
    return {
        "format": FORMAT,
        "source_sha256": hashlib.sha256(tokenizer_json.encode("utf-8")).hexdigest(),
        "words": sorted(words),
        "tokenizer": cut_text,
    }


def write_scan_tokenizer(folder: Path, texts: Iterable[str] | None = None) -> Path:
    """Write `tokenizer_scan.json` beside the folder's `tokenizer.json` (words: `sequence_words()`)."""
    folder = Path(folder)
    source = (folder / TOKENIZER_FILE).read_bytes().decode("utf-8")
    doc = build_scan_tokenizer(source, sequence_words() if texts is None else texts)
    path = folder / SCAN_TOKENIZER_FILE
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    return path
