"""Every watch source against a local registry serving recorded-format documents, including
malformed, truncated and huge ones: a bad document is a clear error, and the watch goes on."""

from __future__ import annotations

from pathlib import Path

import pytest
from watch_registry import FakeRegistry, Route

from malseq.errors import RegistryError, UsageError
from malseq.intake import IntakeOptions
from malseq.watch.sources import (
    NpmChangesSource,
    PollResult,
    PyPIFeedSource,
    PyPISimpleIndexSource,
    RateLimiter,
    RegistryClient,
    WatchListSource,
    parse_watch_list,
    read_watch_list,
)
from malseq.watch.store import Cursor

MB = 1024 * 1024


def client_for(fake: FakeRegistry, tmp_path: Path, max_bytes: int = 4 * MB) -> RegistryClient:
    options = IntakeOptions(pypi_index_url=fake.index_url, npm_registry_url=fake.npm_url,
                            cache_dir=tmp_path / "cache", http_timeout=10)
    return RegistryClient(options, RateLimiter(0), max_bytes=max_bytes)


def merged(cursor: Cursor | None, result: PollResult) -> Cursor:
    """What the store keeps after a poll: the new cursor with the union of seen keys."""
    old = cursor.seen if cursor is not None else frozenset()
    return Cursor(result.cursor.source, result.cursor.serial, result.cursor.etag, old | result.cursor.seen)


def released(result: PollResult) -> list[tuple[str, str, str]]:
    return sorted((r.ecosystem, r.name, r.version) for r in result.releases)


# -- the watch list --------------------------------------------------------------------------------


def test_watch_list_parsing(tmp_path: Path) -> None:
    names = parse_watch_list("# popular\npypi:Requests\n\nnpm:@types/node  # scoped\nnpm:left-pad\npypi:requests\n")
    assert [(n.ecosystem, n.name) for n in names] == [("pypi", "Requests"), ("npm", "@types/node"),
                                                      ("npm", "left-pad")]
    with pytest.raises(UsageError, match="line 2"):
        parse_watch_list("pypi:ok\ncargo:serde\n")
    with pytest.raises(UsageError, match="line 1"):
        parse_watch_list("npm:../../etc/passwd\n")
    with pytest.raises(UsageError, match="line 1"):
        parse_watch_list("pypi:bad name\n")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UsageError, match="names no package"):
        read_watch_list(tmp_path / "empty.txt")
    with pytest.raises(UsageError, match="cannot read"):
        read_watch_list(tmp_path / "missing.txt")


@pytest.mark.parametrize("html", [False, True], ids=["pep691-json", "pep503-html"])
def test_watch_list_first_poll_takes_latest_then_each_new_version(registry: FakeRegistry, tmp_path: Path,
                                                                  html: bool) -> None:
    registry.html_pages = html
    for v in ("1.0", "1.1", "2.0rc1"):
        registry.add_pypi("Demo_Lib", v)
    registry.add_npm("left-pad", "1.2.0")
    registry.add_npm("left-pad", "1.3.0")
    registry.add_npm("left-pad", "2.0.0-beta.1", latest=False)
    registry.add_npm("@acme/tool", "0.1.0")
    source = WatchListSource(parse_watch_list("pypi:demo-lib\nnpm:left-pad\nnpm:@acme/tool\n"),
                             client_for(registry, tmp_path))
    first = source.poll(None)
    # the latest stable release of each name only, the rest remembered as seen
    assert released(first) == [("npm", "@acme/tool", "0.1.0"), ("npm", "left-pad", "1.3.0"),
                               ("pypi", "demo-lib", "1.1")]
    assert first.problems == ()
    cursor = merged(None, first)
    assert {"pypi:demo-lib==1.0", "pypi:demo-lib==2.0rc1", "npm:left-pad@2.0.0-beta.1"} <= cursor.seen

    assert source.poll(cursor).releases == ()  # nothing new
    registry.add_pypi("Demo_Lib", "1.2")
    registry.add_npm("left-pad", "1.3.1")
    registry.add_npm("left-pad", "0.9.9-hotfix", latest=False)  # not the latest: still a new release
    second = source.poll(cursor)
    assert released(second) == [("npm", "left-pad", "0.9.9-hotfix"), ("npm", "left-pad", "1.3.1"),
                                ("pypi", "demo-lib", "1.2")]
    # a name added to the list later gets its own first poll: latest only
    registry.add_npm("newcomer", "1.0.0")
    registry.add_npm("newcomer", "1.1.0")
    grown = WatchListSource(parse_watch_list("pypi:demo-lib\nnpm:left-pad\nnpm:newcomer\n"),
                            client_for(registry, tmp_path))
    third = grown.poll(merged(cursor, second))
    assert released(third) == [("npm", "newcomer", "1.1.0")]


def test_watch_list_skips_yanked_latest_on_first_poll(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.add_pypi("yanky", "1.0")
    registry.add_pypi("yanky", "1.1", yanked=True)
    source = WatchListSource(parse_watch_list("pypi:yanky\n"), client_for(registry, tmp_path))
    assert released(source.poll(None)) == [("pypi", "yanky", "1.0")]


@pytest.mark.parametrize("broken", ["missing", "malformed", "truncated", "huge", "server-error", "not-object"])
def test_watch_list_one_bad_document_is_a_problem_not_the_end(registry: FakeRegistry, tmp_path: Path,
                                                              broken: str) -> None:
    registry.add_npm("good-one", "1.0.0")
    registry.add_npm("bad-one", "1.0.0")
    registry.add_pypi("good-py", "3.0")
    route = {
        "missing": Route(b'{"error":"Not found"}', 404),
        "malformed": Route(b'{"name": "bad-one", "versions": {"1.0.0": '),
        "truncated": Route(b'{"name": "bad-one", "versions": {}}', declared_length=5000),
        "huge": Route(stream_bytes=8 * MB),
        "server-error": Route(b"upstream failed", 503, "text/plain"),
        "not-object": Route(b"[1, 2, 3]"),
    }[broken]
    if broken != "missing":
        registry.routes["/npm/bad-one"] = route
    else:
        del registry.npm["bad-one"]
    source = WatchListSource(parse_watch_list("npm:good-one\nnpm:bad-one\npypi:good-py\n"),
                             client_for(registry, tmp_path, max_bytes=1 * MB))
    result = source.poll(None)
    assert released(result) == [("npm", "good-one", "1.0.0"), ("pypi", "good-py", "3.0")]
    assert len(result.problems) == 1 and result.problems[0].startswith("npm:bad-one: ")
    expected = {"missing": "does not exist", "malformed": "not valid JSON", "truncated": "sent 35 of the 5000 bytes",
                "huge": "more than the limit of 1048576", "server-error": "HTTP 503",
                "not-object": "not a JSON object"}[broken]
    assert expected in result.problems[0]
    # the bad name's first poll is still to come: it is not marked seen
    assert "npm:bad-one" not in result.cursor.seen and "npm:good-one" in result.cursor.seen


# -- the simple index ------------------------------------------------------------------------------


@pytest.mark.parametrize("html", [False, True], ids=["pep691-json", "pep503-html"])
def test_simple_index_first_poll_records_then_reports_new_projects(registry: FakeRegistry, tmp_path: Path,
                                                                   html: bool) -> None:
    registry.html_pages = html
    for name in ("alpha", "Beta.Pkg", "gamma"):
        registry.add_pypi(name, "1.0")
    source = PyPISimpleIndexSource(client_for(registry, tmp_path))
    first = source.poll(None)
    assert first.releases == () and first.cursor.seen == {"alpha", "beta-pkg", "gamma"}
    cursor = merged(None, first)
    assert source.poll(cursor).releases == ()
    registry.add_pypi("Delta_Tool", "0.1")
    registry.add_pypi("Delta_Tool", "0.2")
    registry.add_pypi("alpha", "1.1")  # a new version of a known project is not this source's business
    second = source.poll(cursor)
    assert released(second) == [("pypi", "Delta_Tool", "0.2")]
    assert second.cursor.seen == {"delta-tool"}


def test_simple_index_uses_etag_and_caps_lookups(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.add_pypi("alpha", "1.0")
    source = PyPISimpleIndexSource(client_for(registry, tmp_path), max_new=2)
    cursor = merged(None, source.poll(None))
    assert cursor.etag is not None
    unchanged = source.poll(cursor)  # 304 Not Modified: nothing read, nothing new
    assert unchanged.releases == () and unchanged.cursor.etag == cursor.etag
    for name in ("n1", "n2", "n3"):
        registry.add_pypi(name, "1.0")
    first = source.poll(cursor)
    assert released(first) == [("pypi", "n1", "1.0"), ("pypi", "n2", "1.0")]
    assert first.cursor.etag == cursor.etag  # more were waiting: the next poll reads the index again
    second = source.poll(merged(cursor, first))
    assert released(second) == [("pypi", "n3", "1.0")]


@pytest.mark.parametrize("route, message", [
    (Route(stream_bytes=8 * MB, content_type="application/vnd.pypi.simple.v1+json"), "more than the limit"),
    (Route(b'{"meta": {"api-version": "1.1"}, "projects": [', content_type="application/vnd.pypi.simple.v1+json"),
     "not valid JSON"),
    (Route(b'{"meta": {}}', content_type="application/vnd.pypi.simple.v1+json"), "no project list"),
    (Route(b"\x00\x01binary", content_type="application/octet-stream"), "answered with application/octet-stream"),
])
def test_simple_index_bad_root_is_a_clear_error(registry: FakeRegistry, tmp_path: Path, route: Route,
                                                message: str) -> None:
    registry.routes["/simple/"] = route
    with pytest.raises(RegistryError, match=message):
        PyPISimpleIndexSource(client_for(registry, tmp_path, max_bytes=1 * MB)).poll(None)


# -- PyPI's RSS feeds ------------------------------------------------------------------------------


def test_rss_feeds_report_releases_and_new_projects(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.add_pypi("alpha", "1.0")
    registry.add_pypi("alpha", "1.1")
    source = PyPIFeedSource(client_for(registry, tmp_path))  # feed base: the index URL without /simple
    first = source.poll(None)
    assert released(first) == [("pypi", "alpha", "1.0"), ("pypi", "alpha", "1.1")]
    cursor = merged(None, first)
    assert source.poll(cursor).releases == ()
    registry.add_pypi("alpha", "1.2")
    registry.add_pypi("brand-new", "0.1")
    second = source.poll(cursor)
    # updates.xml names both releases; packages.xml's new project resolves to the same release, reported once
    assert released(second) == [("pypi", "alpha", "1.2"), ("pypi", "brand-new", "0.1")]


@pytest.mark.parametrize("body, message", [
    (b"<rss><channel><item><title>x 1</title>", "not well-formed"),
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
     b"<rss><channel><item><title>&lol2;</title></item></channel></rss>", "not well-formed"),
    (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss>&x;</rss>',
     "not well-formed"),
])
def test_rss_refuses_malformed_and_entity_tricks(registry: FakeRegistry, tmp_path: Path, body: bytes,
                                                 message: str) -> None:
    registry.routes["/rss/updates.xml"] = Route(body, content_type="text/xml")
    with pytest.raises(RegistryError, match=message):
        PyPIFeedSource(client_for(registry, tmp_path)).poll(None)


def test_rss_huge_feed_is_bounded(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.routes["/rss/updates.xml"] = Route(stream_bytes=8 * MB, content_type="text/xml")
    with pytest.raises(RegistryError, match="more than the limit"):
        PyPIFeedSource(client_for(registry, tmp_path, max_bytes=1 * MB)).poll(None)


def test_rss_needs_a_feed_url_when_the_index_is_not_a_simple_path(registry: FakeRegistry, tmp_path: Path) -> None:
    options = IntakeOptions(pypi_index_url=f"{registry.url}/mirror/pypi", cache_dir=tmp_path / "c")
    client = RegistryClient(options, RateLimiter(0))
    with pytest.raises(UsageError, match="--pypi-feed-url"):
        PyPIFeedSource(client).poll(None)
    registry.add_pypi("alpha", "1.0")
    assert released(PyPIFeedSource(client, base_url=registry.url).poll(None)) == [("pypi", "alpha", "1.0")]


# -- npm's changes feed ----------------------------------------------------------------------------


def test_npm_changes_since_now_then_each_changed_package(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.add_npm("old-news", "1.0.0")
    source = NpmChangesSource(client_for(registry, tmp_path), batch=2)
    first = source.poll(None)
    assert first.releases == () and first.cursor.serial == 1
    registry.add_npm("fresh", "1.0.0")
    registry.add_npm("fresh", "1.0.1")
    registry.add_npm("@scope/thing", "3.0.0")
    registry.changes.append((len(registry.changes) + 1, "_design/app", False))
    registry.changes.append((len(registry.changes) + 1, "gone", True))
    second = source.poll(first.cursor)
    assert released(second) == [("npm", "fresh", "1.0.1")] and second.cursor.serial == 3  # batch of 2 changes
    third = source.poll(second.cursor)
    assert released(third) == [("npm", "@scope/thing", "3.0.0")] and third.cursor.serial == 5
    fourth = source.poll(third.cursor)
    assert fourth.releases == () and fourth.cursor.serial == 6
    assert "/npm/_changes?since=now&limit=2" in registry.requests("/npm/_changes")


@pytest.mark.parametrize("route, message", [
    (Route(b'{"results": [], "last_seq": "12-g1AAAA"}'), "not a sequence number"),
    (Route(b'{"results": {}, "last_seq": 3}'), "no results list"),
    (Route(b'{"results": [{"seq": 1, "id": "x"'), "not valid JSON"),
    (Route(stream_bytes=8 * MB), "more than the limit"),
    (Route(b"", 500), "HTTP 500"),
])
def test_npm_changes_bad_feed_is_a_clear_error(registry: FakeRegistry, tmp_path: Path, route: Route,
                                               message: str) -> None:
    registry.routes["/npm/_changes?since=now&limit=500"] = route
    with pytest.raises(RegistryError, match=message):
        NpmChangesSource(client_for(registry, tmp_path, max_bytes=1 * MB)).poll(None)


def test_npm_changes_one_bad_packument_is_a_problem(registry: FakeRegistry, tmp_path: Path) -> None:
    source = NpmChangesSource(client_for(registry, tmp_path))
    cursor = source.poll(None).cursor
    registry.add_npm("fine", "1.0.0")
    registry.add_npm("broken", "1.0.0")
    registry.routes["/npm/broken"] = Route(b"{not json")
    result = source.poll(cursor)
    assert released(result) == [("npm", "fine", "1.0.0")]
    assert len(result.problems) == 1 and "npm:broken" in result.problems[0]


# -- rate limits -----------------------------------------------------------------------------------


def test_rate_limiter_spaces_requests_per_host() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = RateLimiter(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.wait("https://a.example/x")
    limiter.wait("https://b.example/y")  # another host: its own budget
    assert slept == [0.25, 0.5]
    limiter.wait("https://a.example/z", requests=2)
    assert slept[-1] == 0.75
    now[0] += 10  # long idle: no debt carried over
    limiter.wait("https://a.example/x")
    assert len(slept) == 3
