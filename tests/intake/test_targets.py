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
