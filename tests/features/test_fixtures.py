"""Every behaviour has must-match and must-not-match fixtures (GuardDog's layout).

    tests/features/fixtures/<language>/<behaviour_id>/match_<what>.<ext>
    tests/features/fixtures/<language>/<behaviour_id>/nomatch_<what>.<ext>

<language> is `python`, `javascript` or `package`. A fixture may be a single file or a
folder (analysed as a whole package: that is how setup.py, package.json and .pth
behaviours are tested; put those under `package/`). A `match_*` fixture must yield at
least one event with that behaviour id; a `nomatch_*` fixture must yield none.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from malseq._deadline import Deadline
from malseq.features import analyse_file, analyse_package
from malseq.features.catalogue import BEHAVIOURS, IDS
from malseq.intake import load_target
from malseq.intake.build import detect_language
from malseq.intake.package import PackageFile

FIXTURES = Path(__file__).parent / "fixtures"

# Behaviours that exist in one language only; everything else needs fixtures in both.
PYTHON_ONLY = {"setup_command_override", "setup_code_execution", "pth_code_execution"}
PACKAGE_ONLY = {"npm_install_script"}
ONE_LANGUAGE = PYTHON_ONLY | PACKAGE_ONLY


def _fixtures() -> list[tuple[str, str, Path]]:
    out = []
    for lang_dir in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        for bdir in sorted(p for p in lang_dir.iterdir() if p.is_dir()):
            for fx in sorted(bdir.iterdir()):
                if fx.name.startswith(("match_", "nomatch_")):
                    out.append((lang_dir.name, bdir.name, fx))
    return out


def _behaviours_found(fixture: Path) -> set[str]:
    deadline = Deadline(30)
    if fixture.is_dir():
        package = load_target(str(fixture))
        return {e.behaviour for e in analyse_package(package, deadline).all_events()}
    data = fixture.read_bytes()
    pf = PackageFile(fixture.name, data, detect_language(fixture.name, data), False)
    analysis = analyse_file(pf, deadline)
    assert analysis is not None, f"{fixture} is not a source file malseq analyses"
    return {e.behaviour for e in analysis.events}


ALL = _fixtures()


@pytest.mark.parametrize(("language", "behaviour", "fixture"), ALL, ids=[f"{a}/{b}/{c.name}" for a, b, c in ALL])
def test_fixture(language: str, behaviour: str, fixture: Path) -> None:
    assert behaviour in IDS, f"fixture folder names unknown behaviour {behaviour!r}"
    found = _behaviours_found(fixture)
    if fixture.name.startswith("match_"):
        assert behaviour in found, f"{behaviour} not found in {fixture.name}; found {sorted(found)}"
    else:
        assert behaviour not in found, f"{behaviour} wrongly found in {fixture.name}"


def _covered(kind: str) -> dict[str, set[str]]:
    cov: dict[str, set[str]] = {}
    for language, behaviour, fx in ALL:
        if fx.name.startswith(kind + "_"):
            cov.setdefault(behaviour, set()).add(language)
    return cov


def test_every_behaviour_has_fixtures_in_each_language_where_it_applies() -> None:
    missing = []
    for kind in ("match", "nomatch"):
        cov = _covered(kind)
        for b in BEHAVIOURS:
            langs = cov.get(b.id, set())
            if b.id in PACKAGE_ONLY:
                need = {"package"}
            elif b.id in PYTHON_ONLY:
                need = {"python"} if not langs & {"package"} else set()
            else:
                need = {"python", "javascript"}
            # package/ fixtures count for the language of the code inside them
            lacking = need - langs
            if lacking:
                missing.append(f"{b.id}: no {kind}_ fixture for {sorted(lacking)}")
    assert not missing, "\n".join(missing)
