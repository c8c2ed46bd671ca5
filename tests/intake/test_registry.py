"""Registry intake against a local fake registry serving recorded documents (no network).

The fake serves templates of real PyPI and npm documents (tests/fixtures/registry) with the
hashes of tiny archives built here. The `online` test at the end talks to the live
registries and is off by default.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from local_http import isolate_registry_config

from malseq import _cli
from malseq._deadline import Deadline
from malseq.errors import (
    ArchiveLimitError,
    ConfigurationError,
    HashMismatchError,
    NotFoundError,
    RegistryError,
)
from malseq.intake import IntakeOptions, PypiDistribution, load_target, registry
from malseq.intake.limits import DEFAULT_LIMITS
from malseq.intake.package import Ecosystem
from malseq.intake.registry import config as registry_config
from malseq.intake.registry import pypi as registry_pypi
from malseq.intake.targets import RegistryTarget

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "registry"


# --------------------------------------------------------------------------------------
# Tiny archives


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_sdist(name: str, version: str) -> bytes:
    base = f"{name}-{version}"
    return _tar_gz(
        {
            f"{base}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
            f"{base}/setup.py": b"from setuptools import setup\nsetup()\n",
            f"{base}/{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
        }
    )


def make_wheel(name: str, version: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}/__init__.py", f"VERSION = {version!r}\n")
        zf.writestr(
            f"{name}-{version}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
    return buf.getvalue()


def make_npm_tgz(name: str, version: str) -> bytes:
    manifest = json.dumps({"name": name, "version": version, "main": "index.js"}).encode()
    return _tar_gz({"package/package.json": manifest, "package/index.js": b"module.exports = 42;\n"})


# --------------------------------------------------------------------------------------
# The fake registry


@dataclass
class Route:
    body: bytes
    status: int = 200
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True
    delay: float = 0.0


@dataclass
class FakeRegistry:
    url: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    log: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def index_url(self) -> str:
        return f"{self.url}/simple"

    @property
    def npm_url(self) -> str:
        return f"{self.url}/npm/"

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.log]

    def count(self, path: str) -> int:
        return self.paths().count(path)

    def headers_for(self, path: str) -> dict[str, str]:
        with self.lock:
            return next(h for p, h in self.log if p == path)


def _handler(fake: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the connection closes after each answer

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            with fake.lock:
                fake.log.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            route = fake.routes.get(self.path) or Route(b'{"error":"Not found"}', 404, "application/json")
            try:
                if route.delay:
                    time.sleep(route.delay)
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                if route.send_length:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)
            except OSError:
                pass  # the client gave up (timeout tests)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    reg = FakeRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(reg))
    server.daemon_threads = True
    reg.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield reg
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def isolated(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Never read the real user's pip/npm configuration, never run the real npm."""
    if request.node.get_closest_marker("online"):
        yield
        return
    isolate_registry_config(monkeypatch, tmp_path)
    bin_dir = tmp_path / "bin"  # no npm on PATH unless a test puts a fake one there
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg-system"))
    yield


@dataclass
class Served:
    doc: dict[str, Any]
    archives: dict[str, bytes]  # filename -> bytes
    paths: dict[str, str]  # filename -> URL path on the fake
    doc_path: str


def serve_pypi(fake: FakeRegistry, project: str = "demo") -> Served:
    doc = json.loads((FIXTURES / "pypi-simple-demo.json").read_text())
    doc["name"] = project
    doc_path = f"/simple/{project}/"
    page = fake.url + doc_path
    archives: dict[str, bytes] = {}
    paths: dict[str, str] = {}
    for entry in doc["files"]:
        filename = entry["filename"].replace("demo", project, 1)
        entry["filename"] = filename
        if filename.endswith(".whl"):
            data = make_wheel(project, filename.split("-")[1])
        else:
            data = make_sdist(project, filename[len(project) + 1 : -len(".tar.gz")])
        entry["hashes"]["sha256"] = hashlib.sha256(data).hexdigest()
        entry["size"] = len(data)
        entry["url"] = entry["url"].replace("{server}", fake.url).replace("demo", project)
        path = urlsplit(urljoin(page, entry["url"])).path
        archives[filename] = data
        paths[filename] = path
        fake.routes[path] = Route(data)
    fake.routes[doc_path] = Route(json.dumps(doc).encode(), content_type=registry.PYPI_JSON)
    return Served(doc, archives, paths, doc_path)


def serve_npm(fake: FakeRegistry, name: str = "demo") -> Served:
    text = (FIXTURES / "npm-demo.json").read_text()
    doc = json.loads(text.replace("{name}", name).replace("{server}", fake.url))
    archives: dict[str, bytes] = {}
    paths: dict[str, str] = {}
    for version, meta in doc["versions"].items():
        data = make_npm_tgz(name, version)
        dist = meta["dist"]
        if "integrity" in dist:
            dist["integrity"] = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        dist["shasum"] = hashlib.sha1(data).hexdigest()
        path = urlsplit(dist["tarball"]).path
        archives[version] = data
        paths[version] = path
        fake.routes[path] = Route(data)
    doc_path = "/npm/" + name.replace("/", "%2f")
    fake.routes[doc_path] = Route(json.dumps(doc).encode(), content_type="application/json")
    return Served(doc, archives, paths, doc_path)


def options(fake: FakeRegistry, tmp_path: Path, **kw: Any) -> IntakeOptions:
    # sdists unless a test says otherwise: the default (the wheel for this machine) differs by machine
    base = IntakeOptions(pypi_index_url=fake.index_url, npm_registry_url=fake.npm_url, cache_dir=tmp_path / "cache",
                         pypi_distribution=PypiDistribution.SDIST)
    return replace(base, **kw)


def fetch(ecosystem: Ecosystem, name: str, version: str | None, opts: IntakeOptions) -> registry.Download:
    return registry.fetch_release(RegistryTarget(ecosystem, name, version), opts, Deadline(30))


def cached_downloads(tmp_path: Path) -> list[Path]:
    root = tmp_path / "cache" / "downloads"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --------------------------------------------------------------------------------------
# PyPI


def test_pypi_latest_is_newest_stable_unyanked_sdist(fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_pypi(fake)
    got = fetch(Ecosystem.PYPI, "demo", None, options(fake, tmp_path))
    # 1.1 is yanked, 2.0b1 a prerelease, 3.0 listed without files: 1.0 it is, as the sdist.
    assert (got.name, got.version, got.filename) == ("demo", "1.0", "demo-1.0.tar.gz")
    assert got.data == served.archives["demo-1.0.tar.gz"]
    assert got.sha256 == hashlib.sha256(got.data).hexdigest()
    # Its URL was relative to the index page.
    assert got.url == fake.url + "/packages/cc/demo-1.0.tar.gz"
    headers = fake.headers_for(served.doc_path)
    assert registry.PYPI_JSON in headers["accept"]
    assert headers["user-agent"].startswith("malseq/")


def test_pypi_name_is_normalised_in_the_request(fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_pypi(fake)
    got = fetch(Ecosystem.PYPI, "DeMo", "1.0", options(fake, tmp_path))
    assert got.version == "1.0"
    assert served.doc_path in fake.paths()


def test_pypi_explicit_version(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_pypi(fake)
    got = fetch(Ecosystem.PYPI, "demo", "0.9", options(fake, tmp_path))
    assert (got.version, got.filename) == ("0.9", "demo-0.9.tar.gz")


def test_pypi_exact_pin_may_select_a_yanked_release(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_pypi(fake)
    got = fetch(Ecosystem.PYPI, "demo", "1.1", options(fake, tmp_path))
    assert got.filename == "demo-1.1.tar.gz"


def test_pypi_prerelease_only_by_name(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_pypi(fake)
    got = fetch(Ecosystem.PYPI, "demo", "2.0b1", options(fake, tmp_path))
    # No sdist for 2.0b1: the wheel is scanned rather than nothing.
    assert got.filename == "demo-2.0b1-py3-none-any.whl"


def test_pypi_wheel_is_the_one_pip_would_install_for_the_target(fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_pypi(fake)  # 1.0: a cp311 manylinux_2_17 x86_64 wheel, a py2.py3 pure wheel, an sdist

    def pick(mode: PypiDistribution, version: str | None, *platforms: str) -> str:
        opts = options(fake, tmp_path, pypi_distribution=mode, python_version=version, platforms=platforms)
        return fetch(Ecosystem.PYPI, "demo", "1.0", opts).filename

    auto, wheel = PypiDistribution.AUTO, PypiDistribution.WHEEL
    # CPython 3.11 on a newer glibc: the binary wheel, ahead of the pure one (pip's tag order)
    assert pick(auto, "3.11", "manylinux_2_28_x86_64") == "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    assert pick(auto, "3.11", "manylinux2014_x86_64") == "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    # too old a glibc, another interpreter, another OS: the pure wheel still installs
    assert pick(auto, "3.11", "manylinux_2_12_x86_64") == "demo-1.0-py2.py3-none-any.whl"
    assert pick(auto, "3.12", "manylinux_2_28_x86_64") == "demo-1.0-py2.py3-none-any.whl"
    assert pick(wheel, "3.11", "win_amd64", "macosx_14_0_arm64") == "demo-1.0-py2.py3-none-any.whl"
    # the sdist when asked
    assert pick(PypiDistribution.SDIST, "3.11", "manylinux_2_28_x86_64") == "demo-1.0.tar.gz"
    got = fetch(Ecosystem.PYPI, "demo", "1.0", options(fake, tmp_path, pypi_distribution=wheel, python_version="3.11",
                                                        platforms=("manylinux_2_28_x86_64",)))
    assert got.data == served.archives[got.filename]


def test_pypi_default_follows_this_interpreter_and_platform(fake: FakeRegistry, tmp_path: Path) -> None:
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    serve_pypi(fake)
    got = fetch(Ecosystem.PYPI, "demo", "1.0", options(fake, tmp_path, pypi_distribution=PypiDistribution.AUTO))
    # pip's choice: the first of this interpreter's tags (most preferred first) that a wheel carries
    wheels = ["demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "demo-1.0-py2.py3-none-any.whl"]
    expected = next(w for tag in sys_tags() for w in wheels if tag in parse_wheel_filename(w)[3])
    assert got.filename == expected


def test_pypi_without_a_compatible_wheel(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_pypi(fake)
    # 2.0b1 has only a py3 wheel: Python 2 has no wheel; auto reads it anyway, --wheel says why not
    opts = options(fake, tmp_path, python_version="2.7", platforms=("manylinux_2_28_x86_64",))
    got = fetch(Ecosystem.PYPI, "demo", "2.0b1", replace(opts, pypi_distribution=PypiDistribution.AUTO))
    assert got.filename == "demo-2.0b1-py3-none-any.whl"
    with pytest.raises(NotFoundError) as err:
        fetch(Ecosystem.PYPI, "demo", "2.0b1", replace(opts, pypi_distribution=PypiDistribution.WHEEL))
    assert "has no wheel for Python 2.7 on manylinux_2_28_x86_64" in err.value.message
    assert err.value.hint is not None and "demo-2.0b1-py3-none-any.whl" in err.value.hint
    # 1.0 on Python 2: its py2.py3 wheel fits
    got = fetch(Ecosystem.PYPI, "demo", "1.0", replace(opts, pypi_distribution=PypiDistribution.AUTO))
    assert got.filename == "demo-1.0-py2.py3-none-any.whl"  # py2.py3 suits Python 2 too


def test_platform_tags_expand_like_pip() -> None:
    from packaging.tags import Tag

    tags = registry_pypi.target_tags("3.12", ["manylinux_2_28_aarch64"])
    assert Tag("cp312", "cp312", "manylinux_2_28_aarch64") in tags
    assert Tag("cp312", "abi3", "manylinux2014_aarch64") in tags
    assert Tag("py3", "none", "any") in tags
    assert tags.index(Tag("cp312", "cp312", "manylinux_2_28_aarch64")) < tags.index(
        Tag("cp312", "cp312", "manylinux_2_17_aarch64")) < tags.index(Tag("py3", "none", "any"))
    assert Tag("cp312", "cp312", "manylinux_2_28_x86_64") not in tags
    assert Tag("cp312", "cp312", "macosx_10_9_arm64") not in tags
    mac = registry_pypi.target_tags("3.12", ["macosx_14_0_arm64"])
    assert Tag("cp312", "cp312", "macosx_11_0_arm64") in mac and Tag("cp312", "cp312", "macosx_14_0_universal2") in mac
    with pytest.raises(ConfigurationError):
        registry_pypi.target_tags("three", [])


def test_pypi_missing_version_lists_nearby_versions(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_pypi(fake)
    with pytest.raises(NotFoundError) as err:
        fetch(Ecosystem.PYPI, "demo", "1.05", options(fake, tmp_path))
    assert "has no version 1.05" in err.value.message
    assert err.value.hint is not None
    assert "1.0" in err.value.hint and "1.1" in err.value.hint and "latest: 1.0" in err.value.hint


def test_pypi_version_listed_without_files(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_pypi(fake)
    with pytest.raises(NotFoundError, match="listed by the index but has no sdist or wheel"):
        fetch(Ecosystem.PYPI, "demo", "3.0", options(fake, tmp_path))


def test_pypi_missing_package(fake: FakeRegistry, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as err:
        fetch(Ecosystem.PYPI, "no-such-project", None, options(fake, tmp_path))
    assert "pypi:no-such-project does not exist" in err.value.message
    assert fake.index_url in err.value.message
    assert err.value.hint is not None and "404" in err.value.hint


def test_pypi_hash_mismatch_is_refused_and_not_cached(fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_pypi(fake)
    fake.routes[served.paths["demo-1.0.tar.gz"]] = Route(make_sdist("demo", "6.6.6"))
    with pytest.raises(HashMismatchError, match="does not match the sha256"):
        fetch(Ecosystem.PYPI, "demo", "1.0", options(fake, tmp_path))
    assert cached_downloads(tmp_path) == []


def test_pypi_html_index_is_read_too(fake: FakeRegistry, tmp_path: Path) -> None:
    sdist = make_sdist("plain", "2.0")
    digest = hashlib.sha256(sdist).hexdigest()
    old = make_sdist("plain", "2.1")
    page = (
        "<!DOCTYPE html><html><body><h1>Links for plain</h1>\n"
        f'<a href="/files/plain-2.0.tar.gz#sha256={digest}">plain-2.0.tar.gz</a><br/>\n'
        f'<a href="/files/plain-2.1.tar.gz#sha256={hashlib.sha256(old).hexdigest()}" '
        'data-yanked="">plain-2.1.tar.gz</a><br/>\n'
        "</body></html>\n"
    )
    fake.routes["/simple/plain/"] = Route(page.encode(), content_type="text/html; charset=utf-8")
    fake.routes["/files/plain-2.0.tar.gz"] = Route(sdist)
    got = fetch(Ecosystem.PYPI, "plain", None, options(fake, tmp_path))
    assert (got.version, got.data) == ("2.0", sdist)


def test_pypi_credentials_in_index_url(fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_pypi(fake)
    index = fake.index_url.replace("http://", "http://alice:s%3Acret@")
    got = fetch(Ecosystem.PYPI, "demo", "1.0", options(fake, tmp_path, pypi_index_url=index))
    expected = "Basic " + base64.b64encode(b"alice:s:cret").decode()
    assert fake.headers_for(served.doc_path)["authorization"] == expected
    assert fake.headers_for(served.paths["demo-1.0.tar.gz"])["authorization"] == expected  # same origin
    assert "alice" not in got.url


# --------------------------------------------------------------------------------------
# npm


def test_npm_latest_follows_dist_tags(fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_npm(fake)
    got = fetch(Ecosystem.NPM, "demo", None, options(fake, tmp_path))
    assert (got.name, got.version, got.filename) == ("demo", "7.0.0", "demo-7.0.0.tgz")
    assert got.data == served.archives["7.0.0"]
    assert cached_downloads(tmp_path)[0].parent.name == "sha512"
    assert fake.headers_for("/npm/demo")["user-agent"].startswith("malseq/")


def test_npm_scoped_name_is_requested_with_encoded_slash(fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_npm(fake, "@scope/demo")
    got = fetch(Ecosystem.NPM, "@scope/demo", "6.0.0", options(fake, tmp_path))
    assert "/npm/@scope%2fdemo" in fake.paths()
    assert (got.name, got.version, got.data) == ("@scope/demo", "6.0.0", served.archives["6.0.0"])


def test_npm_dist_tag_as_version(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_npm(fake)
    assert fetch(Ecosystem.NPM, "demo", "next", options(fake, tmp_path)).version == "8.0.0-rc.1"


def test_npm_sha1_fallback_without_integrity(fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_npm(fake)
    got = fetch(Ecosystem.NPM, "demo", "0.1.0", options(fake, tmp_path))
    assert got.data == served.archives["0.1.0"]
    assert cached_downloads(tmp_path)[0].parent.name == "sha1"


def test_npm_hash_mismatch(fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_npm(fake)
    fake.routes[served.paths["7.0.0"]] = Route(make_npm_tgz("demo", "7.0.0-evil"))
    with pytest.raises(HashMismatchError, match="sha512"):
        fetch(Ecosystem.NPM, "demo", "7.0.0", options(fake, tmp_path))
    assert cached_downloads(tmp_path) == []


def test_npm_missing_version_lists_nearby_versions(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_npm(fake)
    with pytest.raises(NotFoundError) as err:
        fetch(Ecosystem.NPM, "demo", "6.5.0", options(fake, tmp_path))
    assert err.value.hint is not None
    assert "6.0.0" in err.value.hint and "7.0.0" in err.value.hint and "latest: 7.0.0" in err.value.hint


def test_npm_missing_package(fake: FakeRegistry, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="npm:@nobody/nothing does not exist"):
        fetch(Ecosystem.NPM, "@nobody/nothing", None, options(fake, tmp_path))


def test_npm_gzip_document(fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_npm(fake)
    route = fake.routes[served.doc_path]
    fake.routes[served.doc_path] = replace(route, body=gzip.compress(route.body), headers={"Content-Encoding": "gzip"})
    assert fetch(Ecosystem.NPM, "demo", None, options(fake, tmp_path)).version == "7.0.0"
    assert "gzip" in fake.headers_for(served.doc_path)["accept-encoding"]


# --------------------------------------------------------------------------------------
# Cache, limits, failures, offline


def test_cache_hit_makes_no_archive_request(fake: FakeRegistry, tmp_path: Path) -> None:
    pypi = serve_pypi(fake)
    npm = serve_npm(fake)
    opts = options(fake, tmp_path)
    for _ in range(2):
        first = fetch(Ecosystem.PYPI, "demo", None, opts)
        second = fetch(Ecosystem.NPM, "demo", None, opts)
    assert fake.count(pypi.paths["demo-1.0.tar.gz"]) == 1
    assert fake.count(npm.paths["7.0.0"]) == 1
    assert fake.count(pypi.doc_path) == 2  # documents are fetched afresh online
    assert (first.version, second.version) == ("1.0", "7.0.0")
    assert cached_downloads(tmp_path)[0].name in {first.sha256, hashlib.sha512(second.data).hexdigest()}


def test_damaged_cache_entry_is_fetched_again(fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_pypi(fake)
    opts = options(fake, tmp_path)
    got = fetch(Ecosystem.PYPI, "demo", "1.0", opts)
    (entry,) = cached_downloads(tmp_path)
    assert entry == tmp_path / "cache" / "downloads" / "sha256" / got.sha256
    entry.write_bytes(b"not what was published")
    assert fetch(Ecosystem.PYPI, "demo", "1.0", opts).data == got.data
    assert fake.count(served.paths["demo-1.0.tar.gz"]) == 2
    assert entry.read_bytes() == got.data


def test_oversized_download_refused_from_published_size(fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_pypi(fake)
    opts = options(fake, tmp_path, limits=replace(DEFAULT_LIMITS, max_archive_bytes=100))
    with pytest.raises(ArchiveLimitError, match="more than the limit of 100"):
        fetch(Ecosystem.PYPI, "demo", "1.0", opts)
    assert fake.count(served.paths["demo-1.0.tar.gz"]) == 0


@pytest.mark.parametrize("send_length", [True, False])
def test_oversized_download_refused_while_reading(fake: FakeRegistry, tmp_path: Path, send_length: bool) -> None:
    served = serve_npm(fake)
    path = served.paths["7.0.0"]
    fake.routes[path] = replace(fake.routes[path], send_length=send_length)
    opts = options(fake, tmp_path, limits=replace(DEFAULT_LIMITS, max_archive_bytes=100))
    with pytest.raises(ArchiveLimitError, match="more than the limit of 100"):
        fetch(Ecosystem.NPM, "demo", "7.0.0", opts)
    assert cached_downloads(tmp_path) == []


def test_http_error_names_url_and_status(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.routes["/npm/demo"] = Route(b"oops", 503)
    with pytest.raises(RegistryError) as err:
        fetch(Ecosystem.NPM, "demo", None, options(fake, tmp_path))
    assert f"{fake.url}/npm/demo" in err.value.message and "503" in err.value.message
    assert err.value.hint is not None


def test_unreachable_registry(tmp_path: Path) -> None:
    opts = IntakeOptions(npm_registry_url="http://127.0.0.1:9/", cache_dir=tmp_path / "cache", http_timeout=5)
    with pytest.raises(RegistryError, match="cannot reach http://127.0.0.1:9/demo"):
        fetch(Ecosystem.NPM, "demo", None, opts)


def test_slow_registry_times_out_within_the_deadline(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_npm(fake)
    fake.routes["/npm/demo"] = replace(fake.routes["/npm/demo"], delay=10)
    start = time.monotonic()
    with pytest.raises(RegistryError, match="timed out"):
        registry.fetch_release(
            RegistryTarget(Ecosystem.NPM, "demo", None), options(fake, tmp_path, http_timeout=30), Deadline(0.5)
        )
    assert time.monotonic() - start < 8  # well before the server's 10 s answer, even on a busy machine


def test_redirect_to_a_file_url_is_refused(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.routes["/npm/demo"] = Route(b"", 302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(RegistryError, match="302.*file:"):
        fetch(Ecosystem.NPM, "demo", None, options(fake, tmp_path))


def test_offline_uses_cached_document_and_archive(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_pypi(fake)
    serve_npm(fake, "@scope/demo")
    online = options(fake, tmp_path)
    a = fetch(Ecosystem.PYPI, "demo", None, online)
    b = fetch(Ecosystem.NPM, "@scope/demo", None, online)
    fake.log.clear()
    # Offline needs no registry URL at all.
    offline = IntakeOptions(cache_dir=tmp_path / "cache", offline=True, pypi_distribution=PypiDistribution.SDIST)
    assert fetch(Ecosystem.PYPI, "demo", None, offline) == a
    assert fetch(Ecosystem.NPM, "@scope/demo", None, offline) == b
    assert fake.paths() == []


def test_offline_without_cached_document(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_pypi(fake)
    with pytest.raises(RegistryError, match="offline mode: no cached registry document for pypi:demo") as err:
        fetch(Ecosystem.PYPI, "demo", None, options(fake, tmp_path, offline=True))
    assert err.value.hint is not None and "without --offline" in err.value.hint
    assert fake.paths() == []


def test_offline_with_document_but_no_archive(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_npm(fake)
    fetch(Ecosystem.NPM, "demo", "7.0.0", options(fake, tmp_path))
    with pytest.raises(RegistryError, match="not in the download cache"):
        fetch(Ecosystem.NPM, "demo", "6.0.0", options(fake, tmp_path, offline=True))


def test_load_target_builds_a_package(fake: FakeRegistry, tmp_path: Path) -> None:
    serve_npm(fake)
    package = load_target("npm:demo@6.0.0", options(fake, tmp_path))
    assert (package.name, package.version, package.ecosystem) == ("demo", "6.0.0", Ecosystem.NPM)
    assert package.origin.kind == "registry"


# --------------------------------------------------------------------------------------
# Where the registries are


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_pypi_option_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")
    assert registry.resolve_pypi_index("https://opt.example/simple").url == "https://opt.example/simple"
    assert registry.resolve_pypi_index().url == "https://env.example/simple"


def test_pypi_from_pip_config_file_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = write(tmp_path / "my-pip.conf", "[global]\nindex-url = https://conf.example/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    location = registry.resolve_pypi_index()
    assert location.url == "https://conf.example/simple"
    assert str(conf) in location.source


@pytest.mark.parametrize("text", [
    "extra-index-url = https://alice:s3cr3tTOKEN@host.example/simple\n",  # before any [section]
    "[global]\nindex-url = https://ok.example/simple\n  https://alice:s3cr3tTOKEN@host.example/simple\n"
    "alice s3cr3tTOKEN on a line with no delimiter\n",  # a line configparser cannot parse
    "[global]\nindex-url = https://alice:s3cr3tTOKEN@host.example/simple\n"
    "index-url = https://alice:s3cr3tTOKEN@host.example/simple\n",  # a duplicate option
])
def test_an_unreadable_pip_conf_is_named_by_file_and_line_never_by_its_text(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> None:
    # configparser's own messages quote the offending line, credentials and all
    conf = write(tmp_path / "pip.conf", text)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    for read in (registry.resolve_pypi_index, registry_config.pip_extra_indexes):
        with pytest.raises(ConfigurationError) as caught:
            read()
        message = str(caught.value)
        assert "s3cr3tTOKEN" not in message and "alice" not in message, message
        assert str(conf) in message and re.search(r"\blines? \d", message), message


def test_pypi_from_user_pip_conf(tmp_path: Path) -> None:
    home = Path(os.environ["HOME"])
    write(home / ".pip" / "pip.conf", "[global]\nindex-url = https://legacy.example/simple\n")
    write(home / ".config" / "pip" / "pip.conf", "[install]\nindex-url = https://user.example/simple\n")
    assert registry.resolve_pypi_index().url == "https://user.example/simple"


def test_pypi_download_section_beats_global(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write(registry_config._PIP_SYSTEM_CONFIG, "[download]\nindex-url = https://download.example/simple\n")
    home = Path(os.environ["HOME"])
    write(home / ".config" / "pip" / "pip.conf", "[global]\nindex-url = https://global.example/simple\n")
    assert registry.resolve_pypi_index().url == "https://download.example/simple"


def test_pypi_falls_back_to_pips_default() -> None:
    pip_index = pytest.importorskip("pip._internal.models.index")
    location = registry.resolve_pypi_index()
    assert location.url == pip_index.PyPI.simple_url
    assert location.source == "pip's default index"


def test_pypi_without_pip_or_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pip._internal.models.index", None)
    with pytest.raises(ConfigurationError) as err:
        registry.resolve_pypi_index()
    assert err.value.hint is not None and "MALSEQ_PYPI_INDEX_URL" in err.value.hint


def test_resolved_location_is_cached_per_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = write(Path(os.environ["HOME"]) / ".config" / "pip" / "pip.conf", "[global]\nindex-url = https://a.example/\n")
    assert registry.resolve_pypi_index().url == "https://a.example/"
    conf.write_text("[global]\nindex-url = https://b.example/\n")
    assert registry.resolve_pypi_index().url == "https://a.example/"
    monkeypatch.setenv("PIP_INDEX_URL", "https://c.example/")  # a changed environment is seen
    assert registry.resolve_pypi_index().url == "https://c.example/"


def test_not_an_http_url_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "ftp://files.example/simple")
    with pytest.raises(ConfigurationError, match="not an http"):
        registry.resolve_pypi_index()


def test_credentials_are_kept_out_of_the_reported_url() -> None:
    location = registry.resolve_pypi_index("https://bob:hunter2@priv.example:8443/simple")
    assert location.url == "https://priv.example:8443/simple"
    assert location.authorization == "Basic " + base64.b64encode(b"bob:hunter2").decode()
    assert "hunter2" not in location.describe()


@pytest.mark.parametrize("variable", ["npm_config_registry", "NPM_CONFIG_REGISTRY"])
def test_npm_from_environment(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "https://env.example/npm/")
    location = registry.resolve_npm_registry(None, "demo")
    assert (location.url, location.source) == ("https://env.example/npm/", f"${variable}")


def test_npm_from_user_npmrc() -> None:
    write(Path(os.environ["HOME"]) / ".npmrc", "; comment\nfund=false\nregistry = https://rc.example/\n")
    assert registry.resolve_npm_registry(None, "demo").url == "https://rc.example/"


def test_npm_userconfig_variable_and_expansion(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rc = write(tmp_path / "custom.npmrc", 'registry="https://${NPM_HOST}/registry/"\n')
    monkeypatch.setenv("NPM_CONFIG_USERCONFIG", str(rc))
    monkeypatch.setenv("NPM_HOST", "expanded.example")
    write(Path(os.environ["HOME"]) / ".npmrc", "registry=https://ignored.example/\n")
    assert registry.resolve_npm_registry(None, "demo").url == "https://expanded.example/registry/"


def test_npm_scoped_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        Path(os.environ["HOME"]) / ".npmrc",
        "registry=https://public.example/\n@corp:registry=https://corp.example/npm/\n",
    )
    monkeypatch.setenv("npm_config_registry", "https://env.example/")
    assert registry.resolve_npm_registry(None, "@corp/tool").url == "https://corp.example/npm/"
    assert registry.resolve_npm_registry(None, "@other/tool").url == "https://env.example/"
    assert registry.resolve_npm_registry(None, "tool").url == "https://env.example/"


def _fake_npm(answer: str) -> None:
    script = Path(os.environ["PATH"]) / "npm"
    script.write_text(f"#!/bin/sh\n[ \"$1 $2 $3\" = 'config get registry' ] || exit 3\necho '{answer}'\n")
    script.chmod(0o755)


@pytest.mark.skipif(sys.platform == "win32", reason="shell script stands in for npm")
def test_npm_falls_back_to_npm_config_get() -> None:
    _fake_npm("https://cli.example/")
    location = registry.resolve_npm_registry(None, "demo")
    assert (location.url, location.source) == ("https://cli.example/", "`npm config get registry`")


@pytest.mark.skipif(sys.platform == "win32", reason="shell script stands in for npm")
def test_npm_is_asked_once_for_all_scopes() -> None:
    # starting npm costs seconds on a busy machine; a batch of scoped packages must not pay it per scope
    calls = Path(os.environ["PATH"]) / "calls"
    script = Path(os.environ["PATH"]) / "npm"
    script.write_text(f"#!/bin/sh\necho x >> '{calls}'\necho 'https://cli.example/'\n")
    script.chmod(0o755)
    urls = {registry.resolve_npm_registry(None, name).url for name in ("demo", "@a/x", "@b/y", "@c/z", "@a/w")}
    assert urls == {"https://cli.example/"}
    assert calls.read_text().count("x") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="shell script stands in for npm")
def test_npm_without_an_answer_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no npm registry is configured"):
        registry.resolve_npm_registry(None, "demo")  # no npm on PATH
    _fake_npm("undefined")
    registry_config._resolved.clear()
    with pytest.raises(ConfigurationError) as err:
        registry.resolve_npm_registry(None, "demo")
    assert err.value.hint is not None and "MALSEQ_NPM_REGISTRY" in err.value.hint


def test_registry_target_with_env_configuration(
    fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    serve_pypi(fake)
    monkeypatch.setenv("PIP_INDEX_URL", fake.index_url)
    got = fetch(Ecosystem.PYPI, "demo", None, IntakeOptions(cache_dir=tmp_path / "cache"))
    assert got.version == "1.0"


def test_no_host_names_in_the_module() -> None:
    modules = sorted(Path(registry.__file__).parent.glob("*.py"))
    assert len(modules) > 1  # the package, not only its __init__
    for module in modules:
        source = module.read_text()
        for host in ("pypi.org", "pythonhosted.org", "npmjs.org", "npmjs.com", "yarnpkg"):
            assert host not in source, module


# --------------------------------------------------------------------------------------
# Through the command line


def test_cli_scans_a_pypi_release(fake: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serve_pypi(fake)
    argv = ["scan", "--no-analysis", "--format", "json", "--pypi-index-url", fake.index_url, "--sdist",
            "--cache-dir", str(tmp_path / "cache"), "pypi:demo==1.0"]  # fmt: skip
    assert _cli.main(argv) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    package = entry["package"]
    assert (package["ecosystem"], package["name"], package["version"]) == ("pypi", "demo", "1.0")
    assert package["origin"]["kind"] == "registry"
    assert package["origin"]["location"] == fake.url + "/packages/cc/demo-1.0.tar.gz"
    assert package["origin"]["filename"] == "demo-1.0.tar.gz"
    assert package["has_setup_py"] is True


def test_text_report_names_a_registry_release_once(
    fake: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served = serve_pypi(fake)
    npm = serve_npm(fake)
    argv = ["scan", "--no-analysis", "--no-isolate", "--pypi-index-url", fake.index_url, "--npm-registry", fake.npm_url,
            "--sdist", "--cache-dir", str(tmp_path / "cache"), "pypi:Demo==1.0", "npm:demo@7.0.0", "pypi:demo"]
    assert _cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    heads = [line for line in lines if not line.startswith(" ") and not line.startswith("summary:")]
    # one name and version per release, whatever spelling of the spec was given (PEP 503 for PyPI;
    # unpinned: the version read), then the file scanned and its sha256 under it
    assert [h.split(" (")[0] for h in heads] == ["pypi:demo==1.0", "npm:demo@7.0.0", "pypi:demo==1.0"]
    assert not any(h.count("pypi:") + h.count("npm:") > 1 or ": pypi:" in h or ": npm:" in h for h in heads)
    sdist = hashlib.sha256(served.archives["demo-1.0.tar.gz"]).hexdigest()
    tgz = hashlib.sha256(npm.archives["7.0.0"]).hexdigest()
    assert lines[lines.index(heads[0]) + 1] == f"  file: demo-1.0.tar.gz sha256 {sdist}"
    assert lines[lines.index(heads[1]) + 1].startswith("  file: ") and lines[lines.index(heads[1]) + 1].endswith(tgz)


def test_cli_chooses_the_wheel_for_a_target_platform_and_names_the_file(
    fake: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served = serve_pypi(fake)
    argv = ["scan", "--no-analysis", "--pypi-index-url", fake.index_url, "--cache-dir", str(tmp_path / "cache"),
            "--wheel", "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "pypi:demo==1.0"]
    assert _cli.main(argv) == 0
    wheel = "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    sha = hashlib.sha256(served.archives[wheel]).hexdigest()
    assert f"  file: {wheel} sha256 {sha}\n" in capsys.readouterr().out
    # --wheel for a target no wheel suits is that target's error (exit 3), not another platform's wheel
    argv[-4:-1] = ["2.7", "--platform", "win_amd64"]
    assert _cli.main([*argv[:-1], "pypi:demo==2.0b1"]) == 3
    assert "has no wheel for Python 2.7 on win_amd64" in capsys.readouterr().out
    # a malformed version is a usage error; --wheel and --sdist together too
    assert _cli.main(["scan", "--python-version", "three", "pypi:demo==1.0"]) == 2
    assert _cli.main(["scan", "--wheel", "--sdist", "pypi:demo==1.0"]) == 2


def test_cli_scoped_npm_and_missing_release(
    fake: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_npm(fake, "@scope/demo")
    argv = ["scan", "--no-analysis", "--format", "json", "--npm-registry", fake.npm_url, "-q",
            "--cache-dir", str(tmp_path / "cache"), "npm:@scope/demo@7.0.0", "npm:@scope/demo@9.9.9"]  # fmt: skip
    assert _cli.main(argv) == 3
    ok, missing = json.loads(capsys.readouterr().out)
    assert (ok["package"]["name"], ok["package"]["version"]) == ("@scope/demo", "7.0.0")
    assert missing["error"]["type"] == "NotFoundError"
    assert "latest: 7.0.0" in missing["error"]["hint"]


# --------------------------------------------------------------------------------------
# Live registries (off by default: pytest -m online)


@pytest.mark.online
def test_live_registries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scan", "--no-analysis", "--format", "json", "-q", "--cache-dir", str(tmp_path / "cache"),
            "pypi:requests==2.32.3", "npm:express@4.19.2"]  # fmt: skip
    assert _cli.main(argv) == 0
    pypi, npm = json.loads(capsys.readouterr().out)
    assert (pypi["package"]["name"], pypi["package"]["version"]) == ("requests", "2.32.3")
    assert pypi["package"]["origin"]["location"].endswith("/requests-2.32.3.tar.gz")
    assert (npm["package"]["name"], npm["package"]["version"]) == ("express", "4.19.2")
    assert npm["package"]["origin"]["location"].endswith("/express-4.19.2.tgz")


def test_npm_auth_token_from_npmrc(monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        Path(os.environ["HOME"]) / ".npmrc",
        "registry=https://npm.corp.example:8443/repo/npm/\n"
        "//npm.corp.example:8443/repo/:_authToken=${CORP_NPM_TOKEN}\n"
        "//other.example/:_authToken=wrong-registry\n",
    )
    monkeypatch.setenv("CORP_NPM_TOKEN", "s3cret")
    location = registry.resolve_npm_registry(None, "demo")
    assert location.url == "https://npm.corp.example:8443/repo/npm/"
    assert location.authorization == "Bearer s3cret"  # the parent path's token applies
    assert "s3cret" not in location.describe()


def test_npm_basic_credentials_from_npmrc() -> None:
    password = base64.b64encode(b"pa:ss").decode()
    write(
        Path(os.environ["HOME"]) / ".npmrc",
        "registry=https://npm.corp.example/\n//npm.corp.example/:username=bob\n"
        f"//npm.corp.example/:_password={password}\n",
    )
    expected = "Basic " + base64.b64encode(b"bob:pa:ss").decode()
    assert registry.resolve_npm_registry(None, "demo").authorization == expected
    registry_config._resolved.clear()
    write(Path(os.environ["HOME"]) / ".npmrc", "registry=https://npm.corp.example/\n//npm.corp.example/:_auth=Ym9iOngK\n")
    assert registry.resolve_npm_registry(None, "demo").authorization == "Basic Ym9iOngK"


def test_npm_credentials_for_another_host_are_not_sent() -> None:
    write(Path(os.environ["HOME"]) / ".npmrc",
          "registry=https://public.example/\n//npm.corp.example/:_authToken=t\n//public.example.evil/:_authToken=u\n")
    assert registry.resolve_npm_registry(None, "demo").authorization is None


def test_npm_password_that_is_not_base64_is_a_configuration_error() -> None:
    write(Path(os.environ["HOME"]) / ".npmrc",
          "registry=https://npm.corp.example/\n//npm.corp.example/:username=bob\n"
          "//npm.corp.example/:_password=not base64!\n")
    with pytest.raises(ConfigurationError, match="not base64"):
        registry.resolve_npm_registry(None, "demo")


def test_npm_credential_keys_follow_npm() -> None:
    assert registry_config._nerf_darts("https://npm.corp.example:443/repo/npm/") == [
        "//npm.corp.example/repo/npm/", "//npm.corp.example/repo/npm", "//npm.corp.example/repo/",
        "//npm.corp.example/repo", "//npm.corp.example/", "//npm.corp.example",
    ]
    assert registry_config._nerf_darts("http://[::1]:8080/")[0] == "//[::1]:8080/"


def test_npm_token_without_trailing_slash_and_with_explicit_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    write(Path(os.environ["HOME"]) / ".npmrc", "//npm.corp.example:_authToken=abc\n")
    location = registry.resolve_npm_registry("https://npm.corp.example/npm/", "demo")
    assert location.authorization == "Bearer abc"  # --npm-registry still gets .npmrc credentials
    assert "abc" not in repr(location)


def test_npm_credentials_merge_files_key_by_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    global_rc = write(tmp_path / "global.npmrc", "//npm.corp.example/:_authToken=from-global\n")
    monkeypatch.setenv("npm_config_globalconfig", str(global_rc))
    write(Path(os.environ["HOME"]) / ".npmrc",
          "registry=https://npm.corp.example/\n//npm.corp.example/:_authToken=from-user\n")
    assert registry.resolve_npm_registry(None, "demo").authorization == "Bearer from-user"


def test_npm_token_naming_an_unset_variable_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNSET_NPM_TOKEN", raising=False)
    write(Path(os.environ["HOME"]) / ".npmrc",
          "registry=https://npm.corp.example/\n//npm.corp.example/:_authToken=${UNSET_NPM_TOKEN}\n")
    with pytest.raises(ConfigurationError, match="not set"):
        registry.resolve_npm_registry(None, "demo")


def test_malseq_variables_are_read_in_the_config_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert registry_config.malseq_environment() == registry_config.MalseqEnvironment(None, None, None, False)
    monkeypatch.setenv("MALSEQ_PYPI_INDEX_URL", "https://pypi.example/simple")
    monkeypatch.setenv("MALSEQ_NPM_REGISTRY", "https://npm.example/")
    monkeypatch.setenv("MALSEQ_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("MALSEQ_OFFLINE", "1")
    env = registry_config.malseq_environment()
    assert env == registry_config.MalseqEnvironment("https://pypi.example/simple", "https://npm.example/",
                                                    tmp_path / "c", True)
    # The command line takes its defaults from there; its options win.
    intake = _cli._scan_options(_cli._build_parser({}).parse_args(["scan", "x"])).intake
    assert (intake.pypi_index_url, intake.npm_registry_url, intake.cache_dir, intake.offline) == (
        "https://pypi.example/simple", "https://npm.example/", tmp_path / "c", True)
    args = _cli._build_parser({}).parse_args(["scan", "--pypi-index-url", "https://opt.example/", "x"])
    assert _cli._scan_options(args).intake.pypi_index_url == "https://opt.example/"
    monkeypatch.setenv("MALSEQ_OFFLINE", "0")
    assert not registry_config.malseq_environment().offline


def test_pypi_latest_is_the_latest_release_the_target_interpreter_can_install(
        fake: FakeRegistry, tmp_path: Path) -> None:
    served = serve_pypi(fake)
    for entry in served.doc["files"]:
        if "-1.0" in entry["filename"]:
            entry["requires-python"] = ">=3.13"
    fake.routes[served.doc_path] = Route(json.dumps(served.doc).encode(), content_type=registry.PYPI_JSON)
    auto = options(fake, tmp_path, pypi_distribution=PypiDistribution.AUTO, platforms=("manylinux_2_28_x86_64",))
    # as pip would: 1.0 needs Python 3.13, so on 3.12 the latest it installs is 0.9
    assert fetch(Ecosystem.PYPI, "demo", None, replace(auto, python_version="3.12")).version == "0.9"
    assert fetch(Ecosystem.PYPI, "demo", None, replace(auto, python_version="3.13")).version == "1.0"
    # an exact pin is taken as given; --sdist keeps the plain latest
    assert fetch(Ecosystem.PYPI, "demo", "1.0", replace(auto, python_version="3.12")).version == "1.0"
    assert fetch(Ecosystem.PYPI, "demo", None, options(fake, tmp_path, python_version="3.12")).version == "1.0"


@pytest.mark.parametrize(
    ("ecosystem", "name", "version"),
    [(Ecosystem.PYPI, "foo bar", None), (Ecosystem.NPM, "evil\nname", "1.0.0"), (Ecosystem.PYPI, "ok", "1.0 beta")],
)
def test_a_name_no_registry_can_have_is_refused_before_any_url_is_made(
    ecosystem: Ecosystem, name: str, version: str | None, tmp_path: Path
) -> None:
    """Lockfiles and library callers build targets themselves: their names never reach a URL unchecked."""
    from malseq._deadline import Deadline
    from malseq.errors import TargetSyntaxError
    from malseq.intake import IntakeOptions
    from malseq.intake.registry import fetch_release
    from malseq.intake.registry.versions import release_list
    from malseq.intake.targets import RegistryTarget

    target = RegistryTarget(ecosystem, name, version)
    # a port nothing listens on: were a URL made and asked, the error would be a connection error
    options = IntakeOptions(cache_dir=tmp_path, pypi_index_url="http://127.0.0.1:9/simple",
                            npm_registry_url="http://127.0.0.1:9")
    for fetch in (fetch_release, release_list):
        with pytest.raises(TargetSyntaxError, match="not a valid"):
            fetch(target, options, Deadline(10))
