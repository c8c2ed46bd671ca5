from __future__ import annotations

import gzip
import io
import json
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from malseq_lab.evaluate.guarddog import (
    guarddog_file_name,
    parse_guarddog_json,
    run_guarddog,
    stratified_order,
    summarise_guarddog,
)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a/__init__.py", "x = 1\n")
    return buf.getvalue()


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("package/index.js")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"x=1"))
    return buf.getvalue()


def test_file_names_follow_content() -> None:
    assert guarddog_file_name(_zip(), "pypi", "w", "1.0")[0] == "w-1.0.zip"  # a wheel named .tar.gz upstream
    assert guarddog_file_name(gzip.compress(_tar()), "npm", "@s/x", "1.0.0")[0] == "_s_x-1.0.0.tgz"
    assert guarddog_file_name(gzip.compress(_tar()), "pypi", "x", "1")[0] == "x-1.tar.gz"
    name, data = guarddog_file_name(_tar(), "npm", "x", "1")
    assert name == "x-1.tgz" and gzip.decompress(data) == _tar()


def test_parse_json() -> None:
    out = 'WARNING something\n{"risk_score": {"score": 6.5, "label": "x"}, "issues": 2}'
    assert parse_guarddog_json(out) == 6.5
    with pytest.raises(ValueError):
        parse_guarddog_json("no json")


def test_run_with_a_fake_guarddog(tmp_path: Path) -> None:
    fake = tmp_path / "guarddog"
    fake.write_text(
        '#!/bin/sh\ncase "$3" in *.zip) echo \'{"risk_score": {"score": 7}}\' ;; *) echo boom >&2; exit 1 ;; esac\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    archive = tmp_path / "w-1.0.tar.gz"  # misnamed wheel
    archive.write_bytes(_zip())
    assert run_guarddog(fake, archive, "pypi", "w", "1.0", 30) == (7.0, "")
    tgz = tmp_path / "x.tgz"
    tgz.write_bytes(gzip.compress(_tar()))
    score, error = run_guarddog(fake, tgz, "npm", "x", "1", 30)
    assert score is None and "boom" in error


def test_summary_scores_with_the_same_code() -> None:
    recs = []
    for i in range(20):
        label = i % 2
        recs.append(
            {
                "key": str(i),
                "ecosystem": "pypi",
                "label": label,
                "stratum": "malicious" if label else "popular",
                "guarddog": (8.0 if label else 2.0) if i != 3 else None,
                "guarddog_error": "" if i != 3 else "exit 1",
                "guarddog_seconds": 0.5,
                "malseq": {"gbt": 0.9 if label else 0.1},
                "malseq_seconds": 0.1,
            }
        )
    s = summarise_guarddog(recs, {"gbt": 0.5})
    assert s["failed"] == 1 and s["packages"] == 20
    assert s["seconds_per_package"] == pytest.approx({"guarddog": 0.5, "malseq": 0.1})
    t5 = next(t for t in s["by_ecosystem"]["pypi"]["thresholds"] if t["threshold"] == 5)
    assert (t5["tp"], t5["fn"], t5["fp"]) == (9, 1, 0)  # the failed malicious scan counts as a miss
    assert s["by_ecosystem"]["pypi"]["compare"]["gbt"]["f1"] == 1.0
    json.dumps(s)


def test_stratified_order_takes_every_stratum_in_turn() -> None:
    from types import SimpleNamespace as R

    rows = [R(key=f"{i:03d}", ecosystem="pypi", label=i % 2) for i in range(10)]
    rows += [R(key=f"n{i}", ecosystem="npm", label=1) for i in range(2)]
    order = stratified_order(rows)
    assert [(r.ecosystem, r.label) for r in order[:3]] == [("npm", 1), ("pypi", 0), ("pypi", 1)]
    assert len(order) == 12 and {r.key for r in order} == {r.key for r in rows}
    assert stratified_order(list(reversed(rows))) == order
