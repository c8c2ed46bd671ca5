"""The tokenizer cut a scan reads at start-up (`malseq.model.scan_tokenizer`) encodes exactly as the
model's full tokenizer.json does, and falls back to the full file for any text it does not cover."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from malseq.model import DATA_DIR, SCAN_TOKENIZER_FILE, TOKENIZER_FILE
from malseq.model.scan_tokenizer import (
    ScanTokenizer,
    build_scan_tokenizer,
    open_tokenizer,
    sequence_words,
    write_scan_tokenizer,
)
from malseq.model.text import model_text

ROOT = Path(__file__).resolve().parents[2]


def _full() -> Tokenizer:
    full = Tokenizer.from_file(str(DATA_DIR / TOKENIZER_FILE))
    full.no_padding()
    full.enable_truncation(max_length=512)
    return full


def _ids(tokenizer: object, texts: list[str]) -> list[list[int]]:
    return [encoding.ids for encoding in tokenizer.encode_batch(texts)]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def scan_texts() -> list[str]:
    """The model texts of the shipped examples and the sequence fixtures, as a scan makes them."""
    from malseq.model.scoring import score_input
    from malseq.scan import ScanOptions, scan

    packages = ROOT / "tests" / "sequence" / "packages"
    targets = sorted(str(p) for root in (ROOT / "examples", packages) for p in root.iterdir() if p.is_dir())
    items = (score_input(r) for r in scan(targets, ScanOptions(score=False)))
    texts = sorted({model_text(item.text) for item in items if item is not None})
    assert len(texts) > 10
    return texts


def test_the_shipped_cut_is_of_the_shipped_tokenizer_and_covers_every_sequence_word() -> None:
    tokenizer = open_tokenizer(DATA_DIR, Tokenizer)
    assert isinstance(tokenizer, ScanTokenizer), "tokenizer_scan.json is stale: rerun write_scan_tokenizer"
    missing = [w for w in sequence_words() if not tokenizer.covers(model_text(w))]
    assert not missing, f"behaviours added since the cut was written (rerun write_scan_tokenizer): {missing}"


def test_the_cut_encodes_scan_texts_as_the_full_tokenizer_without_reading_it(scan_texts: list[str]) -> None:
    tokenizer = open_tokenizer(DATA_DIR, Tokenizer)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=512)
    phrases = [model_text(w) for w in sequence_words()]
    long_text = " ; ".join(phrases * 20)  # longer than 512 tokens: truncated alike
    texts = [*scan_texts, *phrases, long_text]
    assert _ids(tokenizer, texts) == _ids(_full(), texts)
    assert len(_ids(tokenizer, [long_text])[0]) == 512
    assert not tokenizer.full_loaded


def test_a_text_with_another_word_is_encoded_by_the_full_tokenizer() -> None:
    tokenizer = open_tokenizer(DATA_DIR, Tokenizer)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=512)
    texts = ["install : read file", "install : banana bread, read file", "import : exec code"]
    assert not tokenizer.covers(texts[1])
    assert _ids(tokenizer, texts) == _ids(_full(), texts)
    assert tokenizer.full_loaded
    assert _full().token_to_id("banana") is not None  # a word the full vocabulary has and the cut does not


def test_a_cut_of_another_tokenizer_json_is_not_used(tmp_path: Path) -> None:
    shutil.copy(DATA_DIR / TOKENIZER_FILE, tmp_path / TOKENIZER_FILE)
    write_scan_tokenizer(tmp_path, ["install : read file"])
    assert isinstance(open_tokenizer(tmp_path, Tokenizer), ScanTokenizer)
    # tokenizer.json changed after the cut was written (a new model copied over it): the cut is stale
    doc = json.loads((tmp_path / TOKENIZER_FILE).read_text(encoding="utf-8"))
    doc["model"]["vocab"]["zzzznew"] = len(doc["model"]["vocab"])
    (tmp_path / TOKENIZER_FILE).write_text(json.dumps(doc), encoding="utf-8")
    assert isinstance(open_tokenizer(tmp_path, Tokenizer), Tokenizer)
    # an unreadable cut is ignored too
    (tmp_path / SCAN_TOKENIZER_FILE).write_text("{not json", encoding="utf-8")
    assert isinstance(open_tokenizer(tmp_path, Tokenizer), Tokenizer)


def test_only_the_listed_words_are_kept(tmp_path: Path) -> None:
    shutil.copy(DATA_DIR / TOKENIZER_FILE, tmp_path / TOKENIZER_FILE)
    write_scan_tokenizer(tmp_path, ["install : read file"])
    doc = json.loads((tmp_path / SCAN_TOKENIZER_FILE).read_text(encoding="utf-8"))
    assert doc["words"] == [":", "file", "install", "read"]
    vocab = json.loads(doc["tokenizer"])["model"]["vocab"]
    assert {"install", "read", "file", ":", "[UNK]", "[CLS]", "[SEP]"} <= set(vocab) and len(vocab) < 20
    tokenizer = open_tokenizer(tmp_path, Tokenizer)
    assert not tokenizer.covers("install : write file")


def test_a_tokenizer_other_than_wordpiece_is_refused() -> None:
    doc = json.loads((DATA_DIR / TOKENIZER_FILE).read_text(encoding="utf-8"))
    doc["model"]["type"] = "BPE"
    with pytest.raises(ValueError, match="WordPiece"):
        build_scan_tokenizer(json.dumps(doc), ["install"])
