"""A fake PyPI + npm registry on 127.0.0.1 for the watch tests and bench/watch_throughput.py.

It serves documents in the registries' real formats, built from packages added while it runs:
PEP 691 simple pages (JSON, or PEP 503 HTML), the simple index root, npm packuments with sha512
integrity, PyPI's RSS feeds and a CouchDB `_changes` feed. Any path can be overridden with a
`Route` to serve something broken: malformed, truncated (a Content-Length longer than the body),
huge (streamed without a length), or an HTTP error.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


def tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def benign_sdist(name: str, version: str) -> bytes:
    base = f"{name}-{version}"
    module = name.replace("-", "_")
    return tar_gz({
        f"{base}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{base}/setup.py": f"from setuptools import setup\nsetup(name={name!r}, version={version!r})\n".encode(),
        f"{base}/{module}/__init__.py": b"def add(a, b):\n    return a + b\n",
    })


def benign_npm(name: str, version: str) -> bytes:
    manifest = json.dumps({"name": name, "version": version, "main": "index.js"}).encode()
    return tar_gz({"package/package.json": manifest,
                   "package/index.js": b"module.exports = function add(a, b) { return a + b; };\n"})


def exfil_npm(name: str, version: str) -> bytes:
    """examples/npm-env-exfil (inert: its collector posts to a reserved address) as an npm tarball."""
    folder = EXAMPLES / "npm-env-exfil"
    members = {f"package/{p.name}": p.read_bytes() for p in folder.iterdir() if p.is_file()}
    manifest = json.loads(members["package/package.json"])
    manifest.update(name=name, version=version)
    members["package/package.json"] = json.dumps(manifest, indent=2).encode()
    return tar_gz(members)


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    declared_length: int | None = None  # a Content-Length that differs from the body: a truncated answer
    stream_bytes: int = 0  # > 0: stream this many bytes of junk without a Content-Length (a huge document)


@dataclass
class FakeRegistry:
    url: str = ""
    html_pages: bool = False  # serve PEP 503 HTML instead of PEP 691 JSON
    routes: dict[str, Route] = field(default_factory=dict)  # overrides, by path with query
    log: list[str] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    pypi: dict[str, dict[str, tuple[bytes, bool]]] = field(default_factory=dict)  # name -> version -> (sdist, yanked)
    npm: dict[str, dict[str, bytes]] = field(default_factory=dict)
    npm_latest: dict[str, str] = field(default_factory=dict)
    changes: list[tuple[int, str, bool]] = field(default_factory=list)  # (seq, id, deleted)
    rss_updates: list[tuple[str, str]] = field(default_factory=list)
    rss_packages: list[str] = field(default_factory=list)

    @property
    def index_url(self) -> str:
        return f"{self.url}/simple"

    @property
    def npm_url(self) -> str:
        return f"{self.url}/npm/"

    def add_pypi(self, name: str, version: str, sdist: bytes | None = None, yanked: bool = False) -> None:
        with self.lock:
            self.pypi.setdefault(name, {})[version] = (sdist or benign_sdist(name, version), yanked)
            if len(self.pypi[name]) == 1:
                self.rss_packages.append(name)
            self.rss_updates.append((name, version))

    def add_npm(self, name: str, version: str, tgz: bytes | None = None, latest: bool = True) -> None:
        with self.lock:
            self.npm.setdefault(name, {})[version] = tgz or benign_npm(name, version)
            if latest or name not in self.npm_latest:
                self.npm_latest[name] = version
            self.changes.append((len(self.changes) + 1, name, False))

    def requests(self, prefix: str = "") -> list[str]:
        with self.lock:
            return [p for p in self.log if p.startswith(prefix)]

    # -- documents -------------------------------------------------------------------------------

    def answer(self, path: str) -> Route:
        with self.lock:
            self.log.append(path)
            if path in self.routes:
                return self.routes[path]
            return self._document(path) or Route(b'{"error":"Not found"}', 404)

    def _document(self, path: str) -> Route | None:
        if path == "/simple/":
            names = sorted(self.pypi)
            if self.html_pages:
                links = "".join(f'<a href="/simple/{_norm(n)}/">{escape(n)}</a>\n' for n in names)
                return Route(f"<!DOCTYPE html><html><body>{links}</body></html>".encode(), content_type="text/html")
            body = {"meta": {"api-version": "1.1", "_last-serial": len(self.rss_updates)},
                    "projects": [{"name": n, "_last-serial": 1} for n in names]}
            etag = '"' + hashlib.sha256(json.dumps(body).encode()).hexdigest()[:16] + '"'
            return Route(json.dumps(body).encode(), content_type="application/vnd.pypi.simple.v1+json",
                         headers={"ETag": etag})
        m = re.fullmatch(r"/simple/([^/]+)/", path)
        if m:
            name = next((n for n in self.pypi if _norm(n) == m.group(1)), None)
            return None if name is None else self._simple_page(name)
        m = re.fullmatch(r"/files/([^/]+)/([^/]+)\.tar\.gz", path)
        if m:
            for name, versions in self.pypi.items():
                for version, (data, _) in versions.items():
                    if f"{name}-{version}" == m.group(2):
                        return Route(data, content_type="application/gzip")
            return None
        m = re.fullmatch(r"/npm/_changes\?since=([^&]+)&limit=(\d+)", path)
        if m:
            last = self.changes[-1][0] if self.changes else 0
            if m.group(1) == "now":
                return Route(json.dumps({"results": [], "last_seq": last}).encode())
            since, limit = int(m.group(1)), int(m.group(2))
            rows = [c for c in self.changes if c[0] > since][:limit]
            results = [{"seq": s, "id": i, "changes": [{"rev": f"{s}-x"}], **({"deleted": True} if d else {})}
                       for s, i, d in rows]
            return Route(json.dumps({"results": results, "last_seq": rows[-1][0] if rows else since}).encode())
        m = re.fullmatch(r"/npm/(@[^/]+%2[fF][^/]+|[^/@][^/]*)", path)
        if m:
            name = m.group(1).replace("%2f", "/").replace("%2F", "/")
            return self._packument(name) if name in self.npm else None
        m = re.fullmatch(r"/tarballs/(.+)/-/[^/]+-(\d[^/]*)\.tgz", path)
        if m and m.group(1) in self.npm and m.group(2) in self.npm[m.group(1)]:
            return Route(self.npm[m.group(1)][m.group(2)], content_type="application/octet-stream")
        if path == "/rss/updates.xml":
            items = [(f"{n} {v}", f"https://pypi.example/project/{n}/{v}/") for n, v in self.rss_updates[-40:]]
            return _rss("PyPI recent updates", items)
        if path == "/rss/packages.xml":
            items = [(f"{n} added to PyPI", f"https://pypi.example/project/{n}/") for n in self.rss_packages[-40:]]
            return _rss("PyPI newest packages", items)
        return None

    def _simple_page(self, name: str) -> Route:
        files = []
        for version, (data, yanked) in self.pypi[name].items():
            filename = f"{name}-{version}.tar.gz"
            files.append({"filename": filename, "url": f"{self.url}/files/{_norm(name)}/{name}-{version}.tar.gz",
                          "hashes": {"sha256": hashlib.sha256(data).hexdigest()}, "yanked": yanked,
                          "size": len(data)})
        if self.html_pages:
            links = "".join(
                f'<a href="{escape(f["url"])}#sha256={f["hashes"]["sha256"]}"'
                f'{" data-yanked" if f["yanked"] else ""}>{escape(f["filename"])}</a>\n' for f in files)
            return Route(f"<html><body>{links}</body></html>".encode(), content_type="text/html")
        body = {"meta": {"api-version": "1.1"}, "name": _norm(name), "files": files,
                "versions": list(self.pypi[name])}
        return Route(json.dumps(body).encode(), content_type="application/vnd.pypi.simple.v1+json")

    def _packument(self, name: str) -> Route:
        versions = {}
        for version, data in self.npm[name].items():
            integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
            short = name.rsplit("/", 1)[-1]
            versions[version] = {"name": name, "version": version,
                                 "dist": {"tarball": f"{self.url}/tarballs/{name}/-/{short}-{version}.tgz",
                                          "integrity": integrity}}
        body = {"name": name, "dist-tags": {"latest": self.npm_latest[name]}, "versions": versions,
                "modified": "2026-11-30T00:00:00.000Z"}
        return Route(json.dumps(body).encode(), content_type="application/vnd.npm.install-v1+json")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _rss(title: str, items: list[tuple[str, str]]) -> Route:
    body = "".join(f"<item><title>{escape(t)}</title><link>{escape(link)}</link>"
                   f"<pubDate>Mon, 30 Nov 2026 12:00:00 GMT</pubDate></item>" for t, link in reversed(items))
    xml = (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>{title}</title>'
           f"{body}</channel></rss>")
    return Route(xml.encode(), content_type="text/xml")


def _handler(fake: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the connection closes after each answer

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            route = fake.answer(self.path)
            try:
                etag = route.headers.get("ETag")
                if etag is not None and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                if route.stream_bytes:
                    self.end_headers()
                    chunk = b"x" * 65536
                    for _ in range(route.stream_bytes // len(chunk)):
                        self.wfile.write(chunk)
                    return
                self.send_header("Content-Length", str(route.declared_length or len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)
            except OSError:
                pass  # the client stopped reading (bounded reads)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@contextmanager
def serve(fake: FakeRegistry | None = None) -> Iterator[FakeRegistry]:
    fake = fake or FakeRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
