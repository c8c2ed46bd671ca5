"""Hard-negative benign lists: exclusions checked before any request, strata read from metadata."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest

from malseq_lab.corpus import hardneg
from malseq_lab.corpus.hardneg import (
    BUNDLED,
    INSTALL_SCRIPT,
    NATIVE_EXTENSION,
    OLD_SDIST_LONG_TAIL,
    OLD_SDIST_POPULAR,
    TELEMETRY_CLIENT,
    TYPE_STUBS,
    Exclusions,
    Listed,
    ReservedNameRequested,
)
from malseq_lab.corpus.loaders import load_benign_list

REPO = Path(__file__).resolve().parents[3]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
LAB_DATA = REPO / "lab" / "data"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_reserved_digest_normalizes_like_the_shared_readme() -> None:
    # PEP 503 for PyPI: lowercase, runs of -_. become one -
    assert hardneg.reserved_digest("pypi", "Foo__Bar.baz") == _digest("pypi:foo-bar-baz")
    # npm: lowercased, scope kept
    assert hardneg.reserved_digest("npm", "@Scope/Name_x") == _digest("npm:@scope/name_x")


def _pypi_page(*files: tuple[str, str, str]) -> dict[str, Any]:
    """A PEP 691 page; each file is (filename, upload date, yanked flag 'y' or '')."""
    return {
        "meta": {"api-version": "1.1"},
        "files": [
            {"filename": f, "upload-time": f"{d}T00:00:00Z", "size": 1000, "yanked": y == "y", "hashes": {}}
            for f, d, y in files
        ],
    }


def _packument(version: str, **manifest: Any) -> dict[str, Any]:
    return {
        "dist-tags": {"latest": version},
        "versions": {version: {"dist": {"tarball": f"https://r.invalid/x-{version}.tgz"}, **manifest}},
        "time": {version: "2020-02-03T00:00:00Z"},
    }


def _datasets(tmp_path: Path, reserved: list[str]) -> Path:
    folder = tmp_path / "datasets"
    (folder / "malicious-pypi").mkdir(parents=True)
    (folder / "benign-pypi.tsv").write_text("ecosystem\tname\tversion\tstratum\npypi\tAlready.Listed\t1.0\tpopular\n")
    (folder / "benign-npm.tsv").write_text("ecosystem\tname\tversion\tstratum\nnpm\tlisted-js\t1.0\tpopular\n")
    (folder / "malicious-pypi" / "manifest.tsv").write_text(
        "path\tname\tversion\tsha256\tadded\nx\tevil_pkg\t1\t0\t2024-01-01\n"
    )
    (folder / "reserved-names.sha256").write_text("".join(f"{_digest(r)}\n" for r in reserved))
    return folder


class FakeRegistry:
    """Documents by name; records every name asked for."""

    def __init__(self, documents: dict[tuple[str, str], Any]) -> None:
        self.documents = documents
        self.asked: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, ecosystem: str, name: str) -> Any:
        with self._lock:
            self.asked.append((ecosystem, name))
        return self.documents.get((ecosystem, name))


def _old_sdist_page(name: str) -> dict[str, Any]:
    return _pypi_page((f"{name}-1.0.tar.gz", "2016-05-01", ""), (f"{name}-2.0.tar.gz", "2024-05-01", ""))


def test_reserved_names_are_never_requested_nor_listed(tmp_path: Path) -> None:
    # a reserved name injected into the package list, written the way the registry spells it
    datasets = _datasets(tmp_path, ["pypi:secret-pkg", "npm:@hidden/tool"])
    exclusions = hardneg.load_exclusions(datasets)
    pypi_listed = [
        Listed("pypi", name, "2017-03", None, 0, "a small helper for things")
        for name in ("Secret_Pkg", "already-listed", "Evil.Pkg", "open-pkg", "other-pkg")
    ]
    npm_listed = [
        Listed("npm", name, "", None, 9000, "native bindings") for name in ("@Hidden/Tool", "listed-js", "free-js")
    ]
    documents: dict[tuple[str, str], Any] = {("pypi", p.name): _old_sdist_page(p.name) for p in pypi_listed}
    documents.update(
        {("npm", p.name): _packument("1.0.0", scripts={"install": "node-gyp rebuild"}) for p in npm_listed}
    )
    registry = FakeRegistry(documents)
    picks, stats = hardneg.build_lists(
        pypi_listed,
        npm_listed,
        exclusions,
        registry,
        quotas={OLD_SDIST_LONG_TAIL: 10, INSTALL_SCRIPT: 10},
        log=lambda m: None,
    )
    asked = {(e, hardneg.normalized_name(e, n)) for e, n in registry.asked}
    assert ("pypi", "secret-pkg") not in asked and ("npm", "@hidden/tool") not in asked
    # names of the shared benign lists and the malicious manifests are not asked for either
    assert ("pypi", "already-listed") not in asked and ("pypi", "evil-pkg") not in asked
    assert ("npm", "listed-js") not in asked
    assert sorted((p.ecosystem, p.name) for p in picks) == [
        ("npm", "free-js"),
        ("pypi", "open-pkg"),
        ("pypi", "other-pkg"),
    ]
    assert stats.excluded == 5


def test_the_guard_refuses_a_reserved_name_even_if_a_caller_forgets() -> None:
    registry = FakeRegistry({})
    guarded = hardneg.guarded(registry, Exclusions(reserved=frozenset({_digest("pypi:x-y")})))
    with pytest.raises(ReservedNameRequested):
        guarded("pypi", "X_Y")
    assert registry.asked == []


def test_exclusions_need_the_reserved_file(tmp_path: Path) -> None:
    from malseq.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="reserved"):
        hardneg.load_exclusions(tmp_path)


def test_old_sdist_release_is_drawn_from_the_period_and_by_seed() -> None:
    page = _pypi_page(
        ("p-0.9.tar.gz", "2012-01-01", ""),
        ("p-1.0.tar.gz", "2014-01-01", ""),
        ("p-1.1.zip", "2019-01-01", ""),
        ("p-1.2.tar.gz", "2020-01-01", "y"),  # yanked
        ("p-2.0rc1.tar.gz", "2020-06-01", ""),  # prerelease
        ("p-3.0.tar.gz", "2023-01-01", ""),
        ("p-3.0-py3-none-any.whl", "2023-01-01", ""),
    )
    picks = {
        hardneg.pick_pypi(Listed("pypi", "p", "2023-01", 10, 0, ""), page, [OLD_SDIST_POPULAR], seed).version  # type: ignore[union-attr]
        for seed in range(40)
    }
    assert picks == {"1.0", "1.1"}
    # a popular project is not long tail and the other way round
    assert hardneg.pick_pypi(Listed("pypi", "p", "", 10, 0, ""), page, [OLD_SDIST_LONG_TAIL], 1) is None
    assert hardneg.pick_pypi(Listed("pypi", "p", "", None, 0, ""), page, [OLD_SDIST_POPULAR], 1) is None


def test_native_stub_and_telemetry_strata() -> None:
    page = _pypi_page(
        ("fastx-1.0.tar.gz", "2022-01-01", ""),
        ("fastx-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "2022-01-01", ""),
        ("fastx-1.1.tar.gz", "2023-01-01", ""),
        ("fastx-1.1-py3-none-any.whl", "2023-01-01", ""),
    )
    native = hardneg.pick_pypi(Listed("pypi", "fastx", "", 5, 0, ""), page, [NATIVE_EXTENSION], 1)
    assert native is not None and native.version == "1.0" and "1 platform wheels" in native.reason
    stub = hardneg.pick_pypi(Listed("pypi", "types-fastx", "", None, 0, ""), page, [TYPE_STUBS, NATIVE_EXTENSION], 1)
    assert stub is not None and stub.stratum == TYPE_STUBS and stub.version == "1.1"
    assert hardneg.pick_pypi(Listed("pypi", "fastx", "", None, 0, ""), page, [TYPE_STUBS], 1) is None
    tele = hardneg.pick_pypi(
        Listed("pypi", "acme-sdk", "", None, 0, "Sends anonymous usage statistics"), page, [TELEMETRY_CLIENT], 1
    )
    assert tele is not None and "usage statistics" in tele.reason


@pytest.mark.parametrize(
    ("manifest", "stratum", "kind"),
    [
        ({"scripts": {"install": "node-gyp rebuild"}}, INSTALL_SCRIPT, "native build (node-gyp)"),
        ({"gypfile": True}, INSTALL_SCRIPT, "native build (node-gyp)"),
        (
            {"scripts": {"install": "node-pre-gyp install --fallback-to-build"}},
            INSTALL_SCRIPT,
            "prebuilt-binary download",
        ),
        ({"scripts": {"postinstall": "husky install"}}, INSTALL_SCRIPT, "git hooks"),
        ({"scripts": {"postinstall": "node install.js"}}, INSTALL_SCRIPT, "install.js"),
        ({"scripts": {"test": "jest"}, "unpkg": "dist/lib.js"}, BUNDLED, "unpkg"),
        ({"main": "dist/lib.umd.js"}, BUNDLED, "main"),
        ({"browser": "build/x.min.js"}, BUNDLED, "browser"),
    ],
)
def test_npm_strata_from_the_manifest(manifest: dict[str, Any], stratum: str, kind: str) -> None:
    pick = hardneg.pick_npm(
        Listed("npm", "x", "", None, 10, ""), _packument("2.0.0", **manifest), [INSTALL_SCRIPT, BUNDLED]
    )
    assert pick is not None and pick.stratum == stratum and pick.version == "2.0.0" and kind in pick.reason
    assert pick.uploaded == "2020-02-03"


def test_npm_latest_manifest_reads_like_the_package_document() -> None:
    manifest = {"name": "x", "version": "3.1.0", "scripts": {"postinstall": "node install.js"}}
    manifest["dist"] = {"tarball": "t"}
    pick = hardneg.pick_npm(Listed("npm", "x", "", None, 10, ""), manifest, [INSTALL_SCRIPT])
    assert pick is not None and (pick.version, pick.uploaded) == ("3.1.0", "")


def test_npm_compiled_entry_is_not_a_bundle() -> None:
    doc = _packument("1.0.0", main="dist/index.js", scripts={"build": "tsc"})
    assert hardneg.pick_npm(Listed("npm", "x", "", None, 10, ""), doc, [INSTALL_SCRIPT, BUNDLED]) is None


def test_same_lists_and_seed_give_the_same_picks_whatever_the_list_order(tmp_path: Path) -> None:
    listed = [Listed("pypi", f"pkg{i}", "2018-01", None, 0, "does useful things") for i in range(30)]
    registry = FakeRegistry({("pypi", p.name): _old_sdist_page(p.name) for p in listed})

    def run(items: list[Listed], seed: int) -> list[str]:
        picks, _ = hardneg.build_lists(
            items, [], Exclusions(), registry, seed=seed, quotas={OLD_SDIST_LONG_TAIL: 7}, threads=3, log=lambda m: None
        )
        return [p.name for p in picks]

    first = run(listed, 5)
    assert len(first) == 7
    assert run(list(reversed(listed)), 5) == first
    assert run(listed, 6) != first


def test_written_list_loads_as_a_benign_list(tmp_path: Path) -> None:
    pick = hardneg.Pick("npm", "@s/x", "1.0.0", INSTALL_SCRIPT, "postinstall:\tnode x.js", "2020-01-01", "5/month")
    path = tmp_path / "benign-hardneg-npm.tsv"
    assert hardneg.write_list(path, [pick]) == 1
    (sample,) = load_benign_list(path)
    assert (sample.ecosystem, sample.name, sample.version, sample.stratum) == ("npm", "@s/x", "1.0.0", INSTALL_SCRIPT)
    assert hardneg.read_list(path)[0]["reason"] == "postinstall: node x.js"


COMMITTED = sorted(LAB_DATA.glob("benign-hardneg-*.tsv"))


@pytest.mark.skipif(not (SHARED_DATASETS / "reserved-names.sha256").is_file(), reason="shared datasets not present")
def test_committed_lists_hold_no_reserved_or_already_listed_name() -> None:
    assert COMMITTED, "lab/data/benign-hardneg-*.tsv are committed"
    exclusions = hardneg.load_exclusions(SHARED_DATASETS)
    rows = [row for path in COMMITTED for row in hardneg.read_list(path)]
    assert len(rows) >= 3000
    assert [r["name"] for r in rows if exclusions.is_reserved(r["ecosystem"], r["name"])] == []
    assert [r["name"] for r in rows if not exclusions.allows(r["ecosystem"], r["name"])] == []
    keys = [(r["ecosystem"], hardneg.normalized_name(r["ecosystem"], r["name"])) for r in rows]
    assert len(keys) == len(set(keys)), "one release per name: strata are disjoint"


def test_registry_documents_from_a_local_registry_cached_and_404_as_none(tmp_path: Path) -> None:
    """The real document source against a registry on 127.0.0.1 (started here), both ecosystems."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    served: list[str] = []

    class Registry(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            served.append(self.path)
            if self.path == "/simple/old-pkg/":
                body = json.dumps(_old_sdist_page("old_pkg")).encode()
                kind = "application/vnd.pypi.simple.v1+json"
            elif self.path == "/npm/@s%2fbin-tool/latest":
                body = json.dumps({"name": "@s/bin-tool", "version": "1.2.3", "dist": {"tarball": "t"},
                                   "scripts": {"postinstall": "node-pre-gyp install"}}).encode()
                kind = "application/json"
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        docs = hardneg.RegistryDocuments(
            tmp_path / "cache", pypi_index_url=f"{base}/simple", npm_registry_url=f"{base}/npm", timeout=10
        )
        page = docs("pypi", "Old_Pkg")
        pick = hardneg.pick_pypi(Listed("pypi", "Old_Pkg", "", None, 0, ""), page, [OLD_SDIST_LONG_TAIL], 1)
        assert pick is not None and pick.version == "1.0"
        manifest = docs("npm", "@s/bin-tool")
        npm_pick = hardneg.pick_npm(Listed("npm", "@s/bin-tool", "", None, 9, ""), manifest, [INSTALL_SCRIPT])
        assert npm_pick is not None and "prebuilt-binary download" in npm_pick.reason
        assert docs("npm", "missing") is None
        # read back from the cache: nothing asked again
        asked = len(served)
        assert docs("pypi", "old.pkg") == page and docs("npm", "@s/bin-tool") == manifest
        assert docs("npm", "missing") is None
        assert len(served) == asked == 3 and docs.requests == 3
    finally:
        server.shutdown()
        server.server_close()


def test_a_name_reserved_on_the_other_registry_is_kept_out_and_masked_in_reasons(tmp_path: Path) -> None:
    import hashlib

    from malseq_lab.corpus import hardneg

    reserved = frozenset({hashlib.sha256(b"pypi:same-project").hexdigest(), hashlib.sha256(b"npm:helper").hexdigest()})
    ex = hardneg.Exclusions(reserved=reserved)
    assert ex.is_reserved("npm", "same-project") and ex.is_reserved("pypi", "Same.Project")
    assert ex.mask("install: node helper/run.js && helper build") == "install: node helper/run.js && <reserved> build"
