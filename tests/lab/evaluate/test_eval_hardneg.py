"""False alarms on hard negatives: targets from lists + download log, archive traits, per-stratum figures."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))

from corpus_helpers import npm_tgz, plain_zip, tar_gz  # noqa: E402

from malseq_lab.evaluate.hardneg import (  # noqa: E402
    archive_traits,
    load_targets,
    measure,
    per_stratum_sample,
    render_markdown,
    summarise,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _archive(folder: Path, data: bytes, suffix: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()}{suffix}"
    path.write_bytes(data)
    return str(path)


def _tree(root: Path, prefix: str) -> dict[str, bytes]:
    return {f"{prefix}/{p.relative_to(root)}": p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_archive_traits_read_member_names_only(tmp_path: Path) -> None:
    sdist = _archive(
        tmp_path,
        tar_gz({"x-1.0/setup.py": b"", "x-1.0/src/fast.c": b"", "x-1.0/src/a.pyx": b"", "x-1.0/doc/setup.py": b""}),
        ".tar.gz",
    )
    assert archive_traits(sdist) == ("setup.py", "c-sources", "cython")
    npm = _archive(tmp_path, npm_tgz("y", "1.0.0", files={"dist/y.min.js": b"", "binding.gyp": b"{}"}), ".tgz")
    assert archive_traits(npm) == ("binding.gyp", "minified-js")
    wheel = _archive(tmp_path, plain_zip({"z/_speed.so": b""}), ".zip")
    assert archive_traits(wheel) == ("binaries",)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    assert archive_traits(str(broken)) == ("unlistable",)


def test_sample_per_stratum_is_seeded_and_bounded() -> None:
    rows = [{"ecosystem": "pypi", "name": f"p{i}", "version": "1", "stratum": "a" if i % 3 else "b"} for i in range(30)]
    one = per_stratum_sample(rows, 4, seed=1)
    assert sorted(r["stratum"] for r in one) == ["a"] * 4 + ["b"] * 4
    assert per_stratum_sample(list(reversed(rows)), 4, seed=1) == list(reversed(one))
    assert per_stratum_sample(rows, 4, seed=2) != one


def test_dropper_flagged_with_reasons_clean_lib_not_and_failures_counted(tmp_path: Path) -> None:
    work = tmp_path / "work"
    dropper = _archive(work / "archives", tar_gz(_tree(EXAMPLES / "pypi-install-dropper", "dropper-1.0")), ".tar.gz")
    clean = _archive(work / "archives", tar_gz(_tree(EXAMPLES / "pypi-clean-lib", "tinymath-1.0")), ".tar.gz")
    (work / "downloads.tsv").write_text(
        "key\tstatus\tpath\tsha256\tdetail\n"
        f"pypi:dropper@1.0\tok\t{dropper}\tx\t\n"
        f"pypi:tinymath@1.0\tok\t{clean}\tx\t\n"
        "pypi:gone@2.0\tfailed\t\t\tNotFoundError: pypi:gone has no version 2.0\n"
    )
    listed = tmp_path / "list.tsv"
    listed.write_text(
        "ecosystem\tname\tversion\tstratum\treason\n"
        "pypi\tdropper\t1.0\told-sdist-popular\twhy\n"
        "pypi\ttinymath\t1.0\told-sdist-popular\twhy\n"
        "pypi\tgone\t2.0\ttype-stubs\twhy\n"
        "pypi\tnever\t1.0\ttype-stubs\twhy\n"
    )
    targets = load_targets([listed], work)
    assert [(t.name, bool(t.path), t.note) for t in targets] == [
        ("dropper", True, ""),
        ("tinymath", True, ""),
        ("gone", False, "NotFoundError"),
        ("never", False, "not downloaded"),
    ]
    records = measure(targets, log=lambda m: None)
    by_name = {r["name"]: r for r in records}
    assert by_name["dropper"]["verdict_low-fpr"] == "malicious" and by_name["dropper"]["has_setup_py"]
    assert by_name["dropper"]["top_reasons"] and by_name["dropper"]["top_reasons"][0].startswith("install ")
    assert by_name["tinymath"]["verdict_low-fpr"] == "benign" and by_name["tinymath"]["top_reasons"] == []
    summary = summarise(records)
    old = summary["by_stratum"]["pypi/old-sdist-popular"]
    assert (old["scored"], old["low-fpr"]["flagged"], old["low-fpr"]["fpr"]) == (2, 1, 0.5)
    stubs = summary["by_stratum"]["pypi/type-stubs"]
    assert (stubs["listed"], stubs["not_downloaded"], stubs["scored"]) == (2, 2, 0)
    assert summary["by_trait"]["pypi/setup.py"]["scored"] == 1
    table = render_markdown(summary, records)
    assert "| pypi/old-sdist-popular | 2 | 2 | 0 | 0 | 1 (50.0%) |" in table
    assert "| pypi:dropper@1.0 | old-sdist-popular |" in table and "tinymath@" not in table
