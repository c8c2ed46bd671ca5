"""Metadata features, the JSON logistic model and the stacking ensemble (pure Python / numpy)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from malseq.intake.package import Ecosystem, NpmManifest, Package, PackageFile, PackageOrigin, PypiManifest
from malseq.model.ensemble import Ensemble, fit_stack
from malseq.model.metadata import (
    FEATURES,
    MetadataModel,
    closest_popular,
    damerau_levenshtein,
    features_of,
    fit_logistic,
    normalise_name,
    popular_names,
    version_features,
)

ORIGIN = PackageOrigin("folder", "x", None, None)


def _npm(name: str, version: str, scripts: tuple[tuple[str, str], ...] = (), **kw: str) -> Package:
    fields = {"description": "", "license": "", "author": "", "homepage": "", "repository": "", **kw}
    manifest = NpmManifest(name, version, scripts, None, (), (), (), **fields)
    files = (PackageFile("package.json", b"{}", None, False), PackageFile("index.js", b"x", None, False))
    return Package(Ecosystem.NPM, name, version, files, (), manifest, None, ORIGIN)


def _pypi(name: str, version: str, **kw: object) -> Package:
    fields: dict[str, object] = {"summary": "", "author": "", "author_email": "", "home_page": "", "license": "",
                                 "has_setup_py": True, "has_setup_cfg": False, "has_pyproject": False,
                                 "build_backend": None, "entry_points": (), "pth_files": (),
                                 "top_level_packages": (), "is_wheel": False, **kw}
    manifest = PypiManifest(name, version, **fields)  # type: ignore[arg-type]
    files = (PackageFile("setup.py", b"x", None, False), PackageFile("README.md", b"hi", None, False),
             PackageFile("bin/x.exe", b"MZ", None, True))
    return Package(Ecosystem.PYPI, name, version, files, (), None, manifest, ORIGIN)


def test_damerau_levenshtein() -> None:
    assert damerau_levenshtein("requests", "requests") == 0
    assert damerau_levenshtein("requests", "reqeusts") == 1  # transposition
    assert damerau_levenshtein("requests", "request") == 1
    assert damerau_levenshtein("requests", "rquests2") == 2
    assert damerau_levenshtein("abc", "xyz") == 3
    assert damerau_levenshtein("", "ab") == 2


def test_typosquat_closeness_to_popular_names() -> None:
    assert "requests" in popular_names("pypi") or "numpy" in popular_names("pypi")
    name = next(iter(sorted(n for n in popular_names("pypi") if len(n) >= 6)))
    squat = name[0] + name[2] + name[1] + name[3:]  # swap two letters
    if squat != name and squat not in popular_names("pypi"):
        hit = closest_popular(squat, "pypi")
        assert hit is not None and hit[1] <= 2
    assert closest_popular(name, "pypi") is None  # the popular package itself
    assert closest_popular("zzqqxxyyvvww-unrelated", "pypi") is None
    assert normalise_name("Foo_Bar.baz", "pypi") == "foo-bar-baz"


def test_version_patterns() -> None:
    assert version_features("0.0.0")["version_zero_zero"] == 1.0
    assert version_features("0.0.7")["version_zero_zero"] == 1.0
    assert version_features("0.1.0")["version_zero_zero"] == 0.0
    assert version_features("99.10.9")["version_high_major"] == 1.0
    assert version_features("2.31.0")["version_high_major"] == 0.0
    assert version_features("1.0.0rc1")["version_prerelease"] == 1.0
    assert version_features("1.0.0")["version_prerelease"] == 0.0
    assert version_features("latest")["version_unparsed"] == 1.0


def test_features_of_npm_and_pypi() -> None:
    f = _npm("some-pkg", "99.0.0", scripts=(("preinstall", "node x.js"),), author="A <a@gmail.com>")
    assert list(features_of(f)) == list(FEATURES)
    v = features_of(f)
    assert v["ecosystem_npm"] == 1.0 and v["install_scripts"] == 1.0 and v["version_high_major"] == 1.0
    assert v["email_freemail"] == 1.0 and v["email_missing"] == 0.0
    assert v["no_description"] == 1.0 and v["no_readme"] == 1.0 and v["few_files"] == 1.0
    p = features_of(_pypi("mylib", "1.2.3", summary="A lib", home_page="https://x", license="MIT",
                          author="Me", author_email="me@example.org"))
    assert p["ecosystem_npm"] == 0.0 and p["setup_py_sdist"] == 1.0 and p["binaries"] == 1.0
    assert p["no_description"] == 0.0 and p["no_homepage"] == 0.0 and p["no_license"] == 0.0
    assert p["email_freemail"] == 0.0 and p["email_missing"] == 0.0 and p["no_readme"] == 0.0


def test_logistic_model_round_trip(tmp_path: Path) -> None:
    rows, labels = [], []
    for i in range(60):
        bad = i % 3 == 0
        rows.append({"install_scripts": float(bad), "no_description": float(bad or i % 5 == 0), "log_files": 1 + i % 4})
        labels.append(int(bad))
    model = fit_logistic(rows, labels)
    assert model.score(rows[0]) > 0.5 > model.score(rows[1])
    model.save(tmp_path / "m.json")
    again = MetadataModel.load(tmp_path / "m.json")
    assert again.score(rows[0]) == pytest.approx(model.score(rows[0]))


def test_stacking_prefers_the_informative_score(tmp_path: Path) -> None:
    seq = [0.9 if i % 2 else 0.1 for i in range(100)]
    meta = [0.5] * 100
    labels = [i % 2 for i in range(100)]
    ens = fit_stack([seq, meta], labels)
    assert ens.weights[0] > abs(ens.weights[1])
    assert ens.score(0.9, 0.5) > 0.5 > ens.score(0.1, 0.5)
    ens.save(tmp_path / "e.json")
    assert Ensemble.load(tmp_path / "e.json").score(0.9, 0.5) == pytest.approx(ens.score(0.9, 0.5))
    assert not math.isnan(ens.score(0.0, 1.0))


def test_ensemble_keeps_components_and_per_ecosystem_thresholds(tmp_path: Path) -> None:
    ens = Ensemble((1.0, 0.5), -0.2, 0.9, components=("sequence", "profile"), thresholds={"npm": 0.7})
    ens.save(tmp_path / "e.json")
    again = Ensemble.load(tmp_path / "e.json")
    assert again.components == ("sequence", "profile")
    assert again.threshold_for("npm") == 0.7 and again.threshold_for("pypi") == 0.9
    with pytest.raises(ValueError, match="combines 2 scores"):
        again.score(0.5)
