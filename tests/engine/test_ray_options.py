"""`--engine ray` without Ray installed, and its options outside the engine: usage errors (exit 2); the
local instance's settings without starting Ray."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from malseq import _cli

REPO = Path(__file__).resolve().parents[2]
CLEAN = str(REPO / "examples" / "pypi-clean-lib")


def test_without_ray_the_engine_is_a_usage_error_naming_the_extra(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is missing
    code = _cli.main(["scan", "--engine", "ray", "--out-dir", str(tmp_path / "out"), "--no-config", CLEAN])
    err = capsys.readouterr().err
    assert code == 2
    assert "not installed" in err and "from the malseq checkout: pip install -e '.[ray]'" in err
    assert "'malseq[" not in err  # never malseq by name from a package index (README: Use in CI)
    assert not (tmp_path / "out").exists()  # nothing started


@pytest.mark.parametrize(("argv", "needle"), [
    (["--out-dir", "x"], "--out-dir is an option of --engine ray"),
    (["--address", "auto"], "--address is an option of --engine ray"),
    (["--engine", "ray"], "add --out-dir DIR"),
    (["--engine", "ray", "--out-dir", "x", "--format", "sarif"], "not SARIF"),
])
def test_engine_options_out_of_place_are_usage_errors(
        argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["scan", *argv, "--no-config", CLEAN]) == 2
    assert needle in capsys.readouterr().err


def test_registry_urls_are_resolved_on_the_driver_and_credentials_stay_on_the_nodes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from local_http import isolate_registry_config

    from malseq.intake.registry.config import resolve_npm_registry, resolve_pypi_index
    from malseq.intake.targets import parse_target
    from malseq.ray_engine import _registry_options
    from malseq.scan import ScanOptions

    isolate_registry_config(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")
    (tmp_path / "home" / ".npmrc").write_text(
        "registry=http://127.0.0.1:9/npm/\n@corp:registry=http://127.0.0.1:9/corp/\n"
        "//127.0.0.1:9/corp/:_authToken=not-for-ray\n")
    targets = [parse_target(t) for t in ("pypi:tinylib==1.0", "npm:left-pad@1.3.0", "npm:@corp/tool@2.0.0", CLEAN)]
    options = ScanOptions()
    for_target = _registry_options(targets, options)
    pypi, npm, corp, local = (for_target(t) for t in targets)
    # what this machine's pip and npm configuration say, written into the options each task gets
    assert pypi.intake.pypi_index_url == resolve_pypi_index().url and "127.0.0.1:9/simple" in resolve_pypi_index().url
    assert npm.intake.npm_registry_url == resolve_npm_registry(None, "left-pad").url
    assert "127.0.0.1:9/npm" in str(npm.intake.npm_registry_url)
    # a registry with credentials is resolved by each node from its own configuration: no token travels
    assert resolve_npm_registry(None, "@corp/tool").authorization is not None
    assert corp.intake.npm_registry_url is None
    assert local == options


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="the ray extra is not installed")
def test_a_local_instance_not_on_loopback_is_stopped_and_refused(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fail closed: if a Ray version ignored the loopback switch, the instance it started (listening on
    the machine's address) is shut down and the run stops with a configuration error; the settings
    malseq made for it are put back. (test_ray_loopback.py starts a real instance.)"""
    import os
    import tempfile
    import types

    from ray._private import ray_constants

    from malseq.errors import ConfigurationError
    from malseq.ray_engine import LOOPBACK_SWITCH, RayOptions, _connected

    monkeypatch.delenv(LOOPBACK_SWITCH, raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the instance's temporary folder goes
    platform_default = ray_constants.ENABLE_RAY_CLUSTER
    seen: dict[str, object] = {}

    def init(address: str | None = None, **kwargs: object) -> object:
        # what Ray would see while it starts the instance
        seen.update(address=address, switch=os.environ.get(LOOPBACK_SWITCH), constant=ray_constants.ENABLE_RAY_CLUSTER,
                    token=bool(os.environ.get("RAY_AUTH_TOKEN")), temp=kwargs.get("_temp_dir"))
        return types.SimpleNamespace(address_info={"node_ip_address": "192.0.2.7"})

    fake = types.SimpleNamespace(is_initialized=lambda: False, init=init,
                                 shutdown=lambda: seen.setdefault("shutdown", True))
    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    with pytest.raises(ConfigurationError, match="did not bind to loopback"), \
            _connected(fake, RayOptions(tmp_path / "out")):  # type: ignore[arg-type]
        pass
    assert seen["address"] == "local" and seen["switch"] == "0" and seen["constant"] is False and seen["token"]
    assert seen.get("shutdown") is True
    assert not Path(str(seen["temp"])).exists()  # the instance's folder is removed
    assert LOOPBACK_SWITCH not in os.environ and "RAY_AUTH_TOKEN" not in os.environ
    assert ray_constants.ENABLE_RAY_CLUSTER is platform_default  # put back
