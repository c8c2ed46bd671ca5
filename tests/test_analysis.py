"""`malseq.analysis`: the one package -> model input path, its code-derived key, and the scan's
warning when the model was trained on input from other code."""

from __future__ import annotations

import json
import shutil
from importlib.resources import files
from pathlib import Path

import pytest

import malseq
from malseq import _cli
from malseq.analysis import analysis_key, key_of, key_sources
from malseq.model import CARD_FILE, DATA_DIR
from malseq.model.scoring import ANALYSIS_KEY_FIELD, VALIDATED_KEYS_FIELD, clear_cache
from malseq.model.text import model_text
from malseq.scan import ScanOptions, scan
from malseq.sequence import render_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PACKAGE_DIR = Path(malseq.__file__).resolve().parent


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """A copy of the `malseq` package's source, to change without touching the real one."""
    copy = tmp_path / "malseq"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "data"))
    return copy


def _append(path: Path, text: str) -> None:
    path.write_bytes(path.read_bytes() + text.encode())


def test_key_is_a_short_hex_digest_of_the_package_source() -> None:
    key = analysis_key()
    assert len(key) == 16 and int(key, 16) >= 0
    assert key == analysis_key() == key_of(files("malseq"))
    covered = [rel for rel, _ in key_sources(files("malseq"))]
    assert covered == sorted(covered)
    for must in ("analysis.py", "model/text.py", "features/catalogue.py", "features/python.py",
                 "sequence/builder.py", "sequence/render.py", "intake/archive.py", "intake/build.py"):
        assert must in covered
    assert not any(rel.startswith(("report/", "model/infer", "intake/registry")) for rel in covered)


def test_the_same_source_elsewhere_has_the_same_key(tree_copy: Path) -> None:
    assert key_of(tree_copy) == analysis_key()
    (tree_copy / "sequence" / "__pycache__").mkdir(exist_ok=True)
    (tree_copy / "sequence" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"compiled")
    assert key_of(tree_copy) == analysis_key()  # caches are not source


@pytest.mark.parametrize("changed", ["sequence/render.py", "sequence/builder.py", "features/catalogue.py",
                                     "model/text.py", "intake/build.py"])
def test_a_change_to_the_model_input_code_changes_the_key(tree_copy: Path, changed: str) -> None:
    _append(tree_copy / changed, "\n# changed\n")
    assert key_of(tree_copy) != analysis_key()


def test_a_new_sequence_module_changes_the_key(tree_copy: Path) -> None:
    (tree_copy / "sequence" / "extra.py").write_text("X = 1\n")
    assert key_of(tree_copy) != analysis_key()


def test_code_that_does_not_make_model_input_leaves_the_key(tree_copy: Path) -> None:
    _append(tree_copy / "report" / "text.py", "\n# changed\n")
    _append(tree_copy / "scan.py", "\n# changed\n")
    assert key_of(tree_copy) == analysis_key()


def test_scan_results_carry_the_model_input_the_scorer_reads() -> None:
    from malseq.model.scoring import score_input

    results = scan([str(EXAMPLES / "npm-env-exfil")], ScanOptions(score=False))
    r = results[0]
    assert r.sequence is not None and r.model_input == model_text(render_text(r.sequence))
    item = score_input(r)
    assert item is not None and item.text == r.model_input
    events_only = scan([str(EXAMPLES / "npm-env-exfil")], ScanOptions(build_sequence=False, score=False))[0]
    assert events_only.analysis is not None and events_only.model_input is None and score_input(events_only) is None


def _model_with_key(folder: Path, key: str | None, validated: tuple[str, ...] = ()) -> Path:
    """The shipped model (files linked, not copied) with a card recording `key` (and keys validated later)."""
    folder.mkdir()
    for item in DATA_DIR.iterdir():
        if item.name != CARD_FILE and item.is_file():
            (folder / item.name).symlink_to(item)
    card = json.loads((DATA_DIR / CARD_FILE).read_text(encoding="utf-8"))
    card.pop(ANALYSIS_KEY_FIELD, None)
    card.pop(VALIDATED_KEYS_FIELD, None)
    if key is not None:
        card[ANALYSIS_KEY_FIELD] = key
    if validated:
        card[VALIDATED_KEYS_FIELD] = [{"key": k, "date": "2026-11-30", "measured": "test"} for k in validated]
    (folder / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    return folder


def test_scan_warns_once_when_the_model_was_trained_on_other_analysis_code(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clear_cache()
    targets = [str(EXAMPLES / "npm-env-exfil"), str(EXAMPLES / "pypi-clean-lib")]
    stale = _model_with_key(tmp_path / "stale", "0000000000000000")
    _cli.main(["scan", "-q", "--no-isolate", "--format", "json", "--model", str(stale), *targets])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert all("0000000000000000" in entry["model_warning"] and analysis_key() in entry["model_warning"]
               for entry in doc)
    assert err.count("malseq: warning:") == 1 and "0000000000000000" in err
    # the library API says it on each scored result
    assert all(r.model_warning for r in scan(targets[:1], ScanOptions(model_dir=stale)))

    current = _model_with_key(tmp_path / "current", analysis_key())
    unknown = _model_with_key(tmp_path / "unknown", None)  # an older card: provenance unknown, no warning
    # trained on older code, then measured again on this code's output and kept: no warning either
    revalidated = _model_with_key(tmp_path / "revalidated", "0000000000000000", ("1111111111111111", analysis_key()))
    for folder in (current, unknown, revalidated):
        _cli.main(["scan", "-q", "--no-isolate", "--format", "json", "--model", str(folder), *targets])
        out, err = capsys.readouterr()
        assert "warning" not in err and all("model_warning" not in entry for entry in json.loads(out))
        assert all(entry["score"] >= 0 for entry in json.loads(out))
    clear_cache()
