"""Synthetic injections (malseq_lab.corpus.inject, bench/diff_injections.py) on the repo's own inert
examples: the payload is cut out by shape, copied into a benign host where a hijacker adds it, and
`malseq diff HOST INJECTED` judges the delta; a version-bump control does not fire. Offline: the
hosts and samples are built here, never the live malware of the shared datasets."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from malseq.diff import diff_targets
from malseq.intake import load_target
from malseq.intake.package import Ecosystem
from malseq.scan import ScanOptions
from malseq_lab.corpus.hardneg import reserved_digest
from malseq_lab.corpus.inject import (
    InjectionError,
    PayloadKind,
    benign_change,
    extract_payload,
    inject,
    load_host,
    pack_tar_gz,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

HOST_INDEX = "module.exports = function pad(s, n) { return String(s).padStart(n); };\n"
HOST_COLLECT = "// a file of the host that shares the payload's name\nmodule.exports = [];\n"
HOST_SETUP = '''"""Build script."""
from setuptools import setup

setup(
    name="tinymath",
    version="1.2.0",
    packages=["tinymath"],
)
'''
PKG_INFO = "Metadata-Version: 2.1\nName: tinymath\nVersion: 1.2.0\nSummary: Small numeric helpers\n"


def npm_host(path: Path) -> Path:
    manifest = {"name": "padder", "version": "1.2.3", "main": "index.js", "scripts": {"test": "node test.js"}}
    members = [("package/package.json", (json.dumps(manifest, indent=2) + "\n").encode()),
               ("package/index.js", HOST_INDEX.encode()), ("package/collect.js", HOST_COLLECT.encode())]
    path.write_bytes(pack_tar_gz(members))
    return path


def pypi_host(path: Path, setup: str = HOST_SETUP) -> Path:
    init = (EXAMPLES / "pypi-clean-lib" / "tinymath" / "__init__.py").read_bytes()
    members = [("tinymath-1.2.0/PKG-INFO", PKG_INFO.encode()), ("tinymath-1.2.0/setup.py", setup.encode()),
               ("tinymath-1.2.0/tinymath/__init__.py", init)]
    path.write_bytes(pack_tar_gz(members))
    return path


def files_of(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        out: dict[str, bytes] = {}
        for member in tar.getmembers():
            fh = tar.extractfile(member)
            assert fh is not None
            out[member.name] = fh.read()
        return out


def setup_call_keywords(source: bytes) -> list[str | None]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setup":
            return [kw.arg for kw in node.keywords]
    raise AssertionError("no setup() call")


def test_npm_hook_payload_is_the_hook_and_the_file_it_runs() -> None:
    payload = extract_payload(load_target(str(EXAMPLES / "npm-env-exfil")))
    assert payload.kind is PayloadKind.NPM_HOOK
    assert payload.hooks == (("postinstall", "node collect.js"),)
    assert [f.path for f in payload.files] == ["collect.js"]  # index.js is not run by the hook


def test_npm_injection_moves_clashing_files_and_keeps_the_host_byte_for_byte(tmp_path: Path) -> None:
    old = npm_host(tmp_path / "padder-1.2.3.tgz")
    host = load_host(old.read_bytes(), name="padder")
    assert host.prefix == "package/"
    payload = extract_payload(load_target(str(EXAMPLES / "npm-env-exfil")))
    injected = inject(host, payload)
    assert injected == inject(host, payload)  # same inputs, same bytes
    files = files_of(injected.data)
    manifest = json.loads(files["package/package.json"])
    assert manifest["version"] == injected.version == "1.2.4"
    # the host has a collect.js of its own: the payload goes to a new folder and the hook follows it
    assert manifest["scripts"] == {"test": "node test.js", "postinstall": "node scripts/collect.js"}
    assert files["package/scripts/collect.js"] == (EXAMPLES / "npm-env-exfil" / "collect.js").read_bytes()
    assert files["package/collect.js"] == HOST_COLLECT.encode()
    assert files["package/index.js"] == HOST_INDEX.encode()
    assert injected.added == ("scripts/collect.js",) and injected.changed == ("package.json",)


def test_delta_verdict_fires_on_the_injection_and_not_on_the_control(tmp_path: Path) -> None:
    old = npm_host(tmp_path / "padder-1.2.3.tgz")
    host = load_host(old.read_bytes(), name="padder")
    new = tmp_path / "padder-1.2.4.SYNTHETIC-injected.tgz"
    new.write_bytes(inject(host, extract_payload(load_target(str(EXAMPLES / "npm-env-exfil")))).data)
    control = tmp_path / "padder-1.2.4.SYNTHETIC-control.tgz"
    control.write_bytes(benign_change(host).data)

    diff = diff_targets(str(old), str(new), ScanOptions())
    assert diff.error is None and diff.delta is not None
    assert diff.delta.verdict == "malicious"
    assert [(h.kind, h.name, h.change) for h in diff.install_hooks] == [("npm_script", "postinstall", "added")]
    assert {s.file for s in diff.added_steps} >= {"package.json", "scripts/collect.js"}

    calm = diff_targets(str(old), str(control), ScanOptions())
    assert calm.error is None and calm.delta is not None
    assert calm.delta.verdict != "malicious" and not calm.malicious
    assert [(f.path, f.change.value) for f in calm.files] == [("package.json", "changed")]
    assert calm.added_behaviours == ()


def test_pypi_setup_payload_is_imported_by_the_hosts_setup_py_with_its_cmdclass(tmp_path: Path) -> None:
    payload = extract_payload(load_target(str(EXAMPLES / "pypi-install-dropper")))
    assert payload.kind is PayloadKind.PYPI_SETUP
    assert payload.cmdclass == '{"install": PostInstall}' and payload.names == ("PostInstall",)
    # setup.py without its setup() call, and the local module that code imports
    assert [f.path for f in payload.files] == ["setup.py", "src/helperlib/__init__.py", "src/helperlib/fetch.py"]
    module = next(f.data for f in payload.files if f.path == "setup.py")
    assert b"class PostInstall" in module and b"setup(" not in module

    host = load_host(pypi_host(tmp_path / "tinymath-1.2.0.tar.gz").read_bytes(), name="tinymath")
    injected = inject(host, payload)
    files = files_of(injected.data)
    setup = files["tinymath-1.2.0/setup.py"]
    assert setup.startswith(b'"""Build script."""\nfrom _build_hooks import PostInstall\n')  # after the docstring
    assert setup_call_keywords(setup) == ["cmdclass", "name", "version", "packages"]
    assert files["tinymath-1.2.0/_build_hooks.py"] == module
    assert b"Version: 1.2.0.post1\n" in files["tinymath-1.2.0/PKG-INFO"]
    assert set(injected.added) == {"_build_hooks.py", "src/helperlib/__init__.py", "src/helperlib/fetch.py"}

    pasted = files_of(inject(host, payload, inline=True).data)
    assert "tinymath-1.2.0/_build_hooks.py" not in pasted
    assert b"class PostInstall(install):" in pasted["tinymath-1.2.0/setup.py"]
    assert setup_call_keywords(pasted["tinymath-1.2.0/setup.py"])[0] == "cmdclass"


def test_pypi_injection_diffs_as_an_added_install_time_payload(tmp_path: Path) -> None:
    old = pypi_host(tmp_path / "tinymath-1.2.0.tar.gz")
    host = load_host(old.read_bytes(), name="tinymath")
    payload = extract_payload(load_target(str(EXAMPLES / "pypi-install-dropper")))
    new = tmp_path / "tinymath-1.2.0.post1.SYNTHETIC-injected.tar.gz"
    new.write_bytes(inject(host, payload, inline=True).data)
    diff = diff_targets(str(old), str(new), ScanOptions())
    assert diff.error is None and diff.delta is not None and diff.delta.score is not None
    assert diff.delta.verdict == "malicious"
    assert any(h.kind == "setup_command_override" and h.change == "added" for h in diff.install_hooks)
    assert diff.new.verdict == "malicious" and diff.old.verdict == "benign"


def test_pypi_package_payload_goes_next_to_the_hosts_package_and_is_imported(tmp_path: Path) -> None:
    # by shape only: a setup.py whose own code is boilerplate (reading the README) gives the package
    # with the most code instead (here the inert clean example's code, as a stand-in for a payload)
    sample = tmp_path / "sample"
    (sample / "helpers").mkdir(parents=True)
    (sample / "setup.py").write_text('from setuptools import setup\nlong = open("README.md").read()\n'
                                     'setup(name="helpers", version="1", long_description=long)\n')
    code = (EXAMPLES / "pypi-clean-lib/tinymath/__init__.py").read_bytes()
    (sample / "helpers" / "__init__.py").write_text("from helpers.numbers import mean\n")
    (sample / "helpers" / "numbers.py").write_bytes(code)
    (sample / "tests").mkdir()
    (sample / "tests" / "test_numbers.py").write_text("def test():\n    pass\n")
    payload = extract_payload(load_target(str(sample)))
    assert payload.kind is PayloadKind.PYPI_INIT and payload.entry == "helpers"
    assert [f.path for f in payload.files] == ["helpers/__init__.py", "helpers/numbers.py"]
    host = load_host(pypi_host(tmp_path / "tinymath-1.2.0.tar.gz").read_bytes(), name="tinymath")
    injected = inject(host, payload)
    files = files_of(injected.data)
    init = files["tinymath-1.2.0/tinymath/__init__.py"]
    assert init.startswith(b'"""Small numeric helpers."""\n\nimport helpers\nimport math\n')  # after the docstring
    assert files["tinymath-1.2.0/helpers/numbers.py"] == code
    assert injected.added == ("helpers/__init__.py", "helpers/numbers.py")
    # a setup.py that runs more than boilerplate is the payload, even with an __init__.py that has code
    (sample / "setup.py").write_text('import os\nfrom setuptools import setup\nos.system("true")\n'
                                     'setup(name="helpers", version="1")\n')
    assert extract_payload(load_target(str(sample))).kind is PayloadKind.PYPI_SETUP


def test_hosts_and_samples_that_cannot_take_part_are_clear_errors(tmp_path: Path) -> None:
    dropper = extract_payload(load_target(str(EXAMPLES / "pypi-install-dropper")))
    with_cmdclass = HOST_SETUP.replace('packages=["tinymath"],', 'packages=["tinymath"], cmdclass={},')
    host = load_host(pypi_host(tmp_path / "a.tar.gz", with_cmdclass).read_bytes(), name="tinymath")
    with pytest.raises(InjectionError, match="already has a cmdclass"):
        inject(host, dropper)
    npm = load_host(npm_host(tmp_path / "b.tgz").read_bytes(), name="padder")
    with pytest.raises(InjectionError, match="cannot go into"):
        inject(npm, dropper)
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "package.json").write_text(json.dumps({"name": "x", "version": "1.0.0", "main": "missing.js"}))
    with pytest.raises(InjectionError, match="no main file"):
        extract_payload(load_target(str(lone)))
    wheel = io.BytesIO()
    import zipfile
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("tinymath/__init__.py", "")
        zf.writestr("tinymath-1.2.0.dist-info/METADATA", PKG_INFO)
    with pytest.raises(InjectionError, match="only a plain tar"):
        load_host(wheel.getvalue(), name="tinymath")


# --------------------------------------------------------------------------------------
# the benchmark, end to end on a datasets folder laid out like the shared one (inert examples)




def test_the_benchmark_measures_injections_and_controls_without_payload_content(
        tmp_path: Path, load_bench: Callable[[str], ModuleType]) -> None:
    datasets = tmp_path / "datasets"
    samples: dict[str, str] = {}
    for folder, example, name in (("malicious-npm", "npm-env-exfil", "colorz-utils"),
                                  ("malicious-pypi", "pypi-install-dropper", "reqeusts-toolbelt")):
        root = EXAMPLES / example
        members = [(f"pkg/{p.relative_to(root).as_posix()}", p.read_bytes()) for p in sorted(root.rglob("*"))
                   if p.is_file()]
        archive = datasets / folder / name / "1.0.0" / f"{name}-1.0.0.tgz"
        archive.parent.mkdir(parents=True)
        archive.write_bytes(pack_tar_gz(members))
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        samples[folder] = digest
        (datasets / folder / "manifest.tsv").write_text(
            f"path\tname\tversion\tsha256\n{name}/1.0.0/{name}-1.0.0.tgz\t{name}\t1.0.0\t{digest}\n")
    (datasets / "reserved-names.sha256").write_text(reserved_digest("npm", "reserved-host") + "\n")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"samples": [{"key": d, "group": d, "split": "test"} for d in samples.values()]}))

    hosts = tmp_path / "hosts"
    hosts.mkdir()
    rows = ["ecosystem\tname\tversion\tlabel\tsource\tstratum\tpath\tsha256"]
    for eco, name, path in (("npm", "padder", npm_host(hosts / "padder.tgz")),
                            ("npm", "reserved-host", npm_host(hosts / "reserved.tgz")),
                            ("pypi", "tinymath", pypi_host(hosts / "tinymath.tar.gz")),
                            ("pypi", "excluded-host", pypi_host(hosts / "excluded.tar.gz", HOST_SETUP + "\n"))):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        rows.append(f"{eco}\t{name}\t1.0\t0\tbenign-current-{eco}\tcurrent-popular\t{path}\t{digest}")
    (tmp_path / "samples.tsv").write_text("\n".join(rows) + "\n")
    excluded = hashlib.sha256((hosts / "excluded.tar.gz").read_bytes()).hexdigest()
    (tmp_path / "exclude.sha256").write_text(excluded + "\n")

    out, work = tmp_path / "rows.jsonl", tmp_path / "work"
    bench = load_bench("diff_injections")
    assert bench.main(["--hosts", str(tmp_path / "samples.tsv"), "--exclude", str(tmp_path / "exclude.sha256"),
                       "--exclude", str(tmp_path / "no-such-corpus.tsv"), "--datasets", str(datasets),
                       "--split", str(split), "--work", str(work), "--out", str(out),
                       "--summary", str(tmp_path / "summary.json")]) == 0

    text = out.read_text()
    assert "collector.example.invalid" not in text and "agent.bin" not in text  # names and scores only
    got = [json.loads(line) for line in text.splitlines()]
    assert sorted((r["ecosystem"], r["name"], r["kind"]) for r in got) == [
        ("npm", "padder", "control"), ("npm", "padder", "injection"),
        ("pypi", "tinymath", "control"), ("pypi", "tinymath", "injection"), ("pypi", "tinymath", "injection-inline")]
    assert all(r["synthetic"] and "SYNTHETIC" in r["new"] and (work / r["ecosystem"] / r["new"]).is_file()
               for r in got)
    injections = {r["ecosystem"]: r for r in got if r["kind"] == "injection"}
    assert injections["npm"]["payload_sha256"] == samples["malicious-npm"]
    assert injections["npm"]["payload_kind"] == "npm-hook" and injections["pypi"]["payload_kind"] == "pypi-setup"
    assert injections["npm"]["delta_verdict"] == "malicious"
    assert all(r["delta_verdict"] != "malicious" for r in got if r["kind"] == "control")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["npm"]["delta_recall"] == "1/1 (100.0%)"
    assert summary["all"]["control_delta_fires"] == "0/2 (0.0%)"
    assert summary["pypi"]["inline"]["hosts"] == 1
    assert Ecosystem.NPM.value in summary


def test_host_parts_split_the_hosts_into_disjoint_sets(load_bench: Callable[[str], ModuleType]) -> None:
    """Training and validation injections take their hosts from complementary parts (`--host-part`)."""
    bench = load_bench("diff_injections")
    names = [f"package-{i}" for i in range(200)]
    part = {n for n in names if bench.in_part("0/5", n)}
    rest = {n for n in names if bench.in_part("!0/5", n)}
    assert part and rest and not part & rest and part | rest == set(names)
    assert 20 < len(part) < 60  # about a fifth
    assert all(bench.in_part(None, n) for n in names)
