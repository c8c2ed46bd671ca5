from __future__ import annotations

from pathlib import Path

import pytest

from malseq.errors import TargetSyntaxError
from malseq.intake.package import Ecosystem
from malseq.intake.targets import LocalTarget, RegistryTarget, parse_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pypi:requests", RegistryTarget(Ecosystem.PYPI, "requests", None)),
        ("pypi:requests==2.32.3", RegistryTarget(Ecosystem.PYPI, "requests", "2.32.3")),
        ("npm:express", RegistryTarget(Ecosystem.NPM, "express", None)),
        ("npm:express@4.19.2", RegistryTarget(Ecosystem.NPM, "express", "4.19.2")),
        ("npm:@scope/name@1.0.0", RegistryTarget(Ecosystem.NPM, "@scope/name", "1.0.0")),
        ("npm:@scope/name", RegistryTarget(Ecosystem.NPM, "@scope/name", None)),
        ("pkg:pypi/requests@2.32.3", RegistryTarget(Ecosystem.PYPI, "requests", "2.32.3")),
        ("pkg:npm/%40scope/name@1.0.0", RegistryTarget(Ecosystem.NPM, "@scope/name", "1.0.0")),
        ("pkg:npm/left-pad", RegistryTarget(Ecosystem.NPM, "left-pad", None)),
    ],
)
def test_registry_targets(text: str, expected: RegistryTarget) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["pypi:", "npm:@", "pypi:bad name", "pkg:gem/rails@1", "pypi:x==", "nope/missing"])
def test_malformed_targets_are_rejected(text: str) -> None:
    with pytest.raises(TargetSyntaxError):
        parse_target(text)


def test_existing_path_is_local(tmp_path: Path) -> None:
    assert parse_target(str(tmp_path)) == LocalTarget(tmp_path)


@pytest.mark.parametrize("text", ["", " ", "\t"])
def test_an_empty_target_is_not_the_working_directory(text: str) -> None:
    # Path("") is the working directory: an unset shell variable must not turn into a scan of it
    with pytest.raises(TargetSyntaxError, match="an empty target") as caught:
        parse_target(text)
    assert caught.value.hint is not None and caught.value.hint.endswith("for the working directory, give .")


def test_the_cli_refuses_an_empty_target_or_audit_path(capsys: pytest.CaptureFixture[str]) -> None:
    from malseq._cli import main

    assert main(["scan", "--no-isolate", "--no-config", ""]) == 2
    assert "malseq: error: an empty target" in capsys.readouterr().err
    assert main(["diff", "--no-isolate", "--no-config", "", "."]) == 2
    assert "malseq: error: an empty target" in capsys.readouterr().err
    assert main(["audit", "--no-isolate", "--no-config", "--offline", ""]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "malseq: error: an empty PATH" in err and "auditing" not in err


@pytest.mark.parametrize(("text", "says", "pin"), [
    ("npm:left-pad@^1", "'^1' is a version range, not a version", "npm:left-pad@VERSION"),
    ("npm:left-pad@>=1 <2", "is a version range", "npm:left-pad@VERSION"),
    ("pypi:requests==2.*", "'2.*' is a version range", "pypi:requests==VERSION"),
    ("pypi:requests>=2", "'>=2' is a version specifier, not a pinned version", "pypi:requests==VERSION"),
    ("pypi:requests~=2.31", "'~=2.31' is a version specifier", "pypi:requests==VERSION"),
])
def test_a_range_or_specifier_is_named_as_such_with_the_pinned_form(text: str, says: str, pin: str) -> None:
    """A user who types a range gets told targets are exact releases, not "not a valid package name"."""
    with pytest.raises(TargetSyntaxError) as caught:
        parse_target(text)
    assert says in caught.value.message and "not a valid" not in caught.value.message
    assert caught.value.hint is not None and pin in caught.value.hint
