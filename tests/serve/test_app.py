"""The triage app over HTTP (Starlette's test client): pages, filters, escaping, labels, CSRF, token."""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from triage_db import BIDI, HANDLER, HOSTILE_NPM_NAME, JS_URL, SCRIPT, TERMINAL

from malseq.serve.app import PAGE_SIZE, create_app
from malseq.serve.highlight import highlight_excerpt
from malseq.serve.security import CONTENT_SECURITY_POLICY, CSRF_FIELD, SESSION_COOKIE
from malseq.serve.view import ExcerptView, parse_report
from malseq.watch.store import Label, NewRelease, ScanRecord, open_store

BASE = "http://127.0.0.1"
Db = tuple[Path, dict[str, int], float]


@pytest.fixture
def client(triage_db: Db) -> TestClient:
    path, _, now = triage_db
    store = open_store(path)
    return TestClient(create_app(store, clock=lambda: now + 5), base_url=BASE, follow_redirects=False)


def _csrf(client: TestClient, release_id: int) -> str:
    page = client.get(f"/release/{release_id}")
    match = re.search(rf'name="{CSRF_FIELD}" value="([0-9a-f]+)"', page.text)
    assert match, "the label form carries a CSRF token"
    return match.group(1)


def _queue_names(html: str) -> list[str]:
    return [html_lib.unescape(n) for n in re.findall(r'<a href="/release/\d+">([^<]*)</a>', html)]


class _Elements(HTMLParser):
    """Every element and attribute of a page, and its text, as a browser's parser would see them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _assert_inert(html: str, where: str) -> _Elements:
    page = _Elements(html)
    for tag, attrs in page.tags:
        assert tag not in ("script", "img", "iframe", "object", "embed", "base", "meta" if attrs and any(
            k == "http-equiv" for k, _ in attrs) else "-"), (where, tag)
        for key, value in attrs:
            assert not key.startswith("on"), (where, tag, key)
            assert key != "style", (where, tag)  # the CSP forbids inline style
            if key in ("href", "src", "action", "formaction"):
                assert value is not None and (value.startswith(("/", "#", "?"))), (where, tag, key, value)
    return page


# -- escaping --------------------------------------------------------------------------------------


def test_every_page_escapes_hostile_package_strings(client: TestClient, triage_db: Db) -> None:
    _, ids, _ = triage_db
    pages = ["/", "/?verdict=malicious", "/dashboard", *(f"/release/{i}" for i in ids.values())]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.text
        _assert_inert(html, url)  # no script, no event handler, no link off the app, no inline style
        assert "<script" not in html.lower(), url
        assert "\x1b" not in html and BIDI not in html and "\x07" not in html, url  # controls made visible
    release = client.get(f"/release/{ids['hostile_npm']}").text
    assert "evil&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in release  # the name, as text
    assert "&lt;img src=x onerror=&#34;document.title=&#39;pwned&#39;&#34;&gt;" in release  # the file path
    assert "javascript:document.title=&#39;pwned&#39;" in release  # the home page, as text, not a link
    assert "\\x1b]0;pwned\\x07" in release and "\\u202e" in release  # description's escapes shown
    # the hostile code is in a highlighted excerpt, escaped by Pygments
    assert '<div class="highlight' not in release and 'class="code"' in release
    assert "&lt;/code&gt;&lt;/pre&gt;&lt;script&gt;" in release
    # the parked release's error and the labels' reviewer and note are package- or user-controlled too
    parked = client.get(f"/release/{ids['parked']}").text
    assert "not a gzip file &lt;script&gt;" in parked
    unsure = client.get(f"/release/{ids['pypi_dropper']}").text
    assert "eve&lt;img src=x onerror=" in unsure and "\\x1b]0;pwned" in unsure


def test_pygments_output_escapes_code() -> None:
    hostile = (f"x = '</code></pre></td></tr></table>{SCRIPT}'", f"y = \"{HANDLER}\" # {TERMINAL}",
               "z = '&lt;already escaped&gt;'")
    for file in ("a.py", "b.js", "c.json", "unknown.bin", "<script>.sh"):
        html = str(highlight_excerpt(ExcerptView(file, 41, hostile, (42,))))
        page = _assert_inert(html, file)
        assert {tag for tag, _ in page.tags} <= {"div", "table", "tr", "td", "pre", "span", "code"}
        assert all(key == "class" for _, attrs in page.tags for key, _ in attrs)
        text = "".join(page.text)
        assert hostile[0] in text and "z = '&lt;already escaped&gt;'" in text  # shown exactly as written
        assert "\\x1b]0;pwned" in text and "\x1b" not in html  # the terminal escape made visible
        assert "41\n42\n43" in text  # numbered from the excerpt's first line
        assert html.count('<span class="hll">') == 1  # the decisive line


def test_security_headers_on_every_response(client: TestClient, triage_db: Db) -> None:
    _, ids, _ = triage_db
    for url in ("/", f"/release/{ids['hostile_npm']}", "/dashboard", "/static/style.css", "/no-such-page",
                "/?verdict=nonsense", "/release/99999"):
        response = client.get(url)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "script-src" not in CONTENT_SECURITY_POLICY
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


def test_foreign_host_header_is_refused(client: TestClient) -> None:
    # DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1
    response = client.get("/", headers={"host": "evil.example:8765"})
    assert response.status_code == 400
    assert client.get("/", headers={"host": "localhost:8765"}).status_code == 200


# -- the queue -------------------------------------------------------------------------------------


def test_queue_is_ordered_by_score_and_paginated(client: TestClient, triage_db: Db) -> None:
    first = client.get("/").text
    names = _queue_names(first)
    assert len(names) == PAGE_SIZE
    assert "68 releases, 1–50 shown" in first
    scores = [float(s) for s in re.findall(r'<td class="num">([0-9.]+)</td>', first)]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.9
    second = client.get("/?page=2").text
    rest = _queue_names(second)
    assert len(rest) == 68 - PAGE_SIZE and not set(rest) & set(names)
    assert rest[-2:] == ["not-yet-scanned 0.1.0", "broken-archive 2.0"]  # unscored last, newest first
    assert 'href="/?page=1"' not in second and 'rel="prev"' in second
    assert client.get("/?page=3").status_code == 200 and _queue_names(client.get("/?page=3").text) == []


def test_queue_filters(client: TestClient, triage_db: Db) -> None:
    _, _, now = triage_db
    flagged = _queue_names(client.get("/?verdict=malicious").text)
    assert len(flagged) == 5 and f"{HOSTILE_NPM_NAME} 6.6.6" in flagged
    assert _queue_names(client.get("/?verdict=pending").text) == ["not-yet-scanned 0.1.0", "broken-archive 2.0"]
    assert _queue_names(client.get("/?label=malicious").text) == ["env-collector 0.0.3"]
    assert _queue_names(client.get("/?label=unsure").text) == ["helperlib 0.0.1"]
    unlabelled = _queue_names(client.get("/?label=unlabelled").text)
    assert "env-collector 0.0.3" not in unlabelled and "tiny-lib 1.0.1" in unlabelled
    npm = _queue_names(client.get("/?ecosystem=npm&verdict=malicious").text)
    assert sorted(npm) == sorted(["env-collector 0.0.3", "tiny-lib 1.0.1", f"{HOSTILE_NPM_NAME} 6.6.6"])
    # dates: the filler releases go back 40 hours; a day that holds none gives none
    from datetime import UTC, datetime

    today = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
    assert client.get(f"/?since={today}&until={today}").status_code == 200
    assert _queue_names(client.get("/?until=2001-01-01").text) == []
    assert len(_queue_names(client.get("/?since=2001-01-01&verdict=malicious").text)) == 5
    # filters survive paging
    page = client.get("/?verdict=benign").text
    assert 'href="/?verdict=benign&amp;page=2"' in page
    assert len(_queue_names(client.get("/?verdict=benign&page=2").text)) == 61 - PAGE_SIZE
    for bad in ("/?verdict=<script>", "/?label=evil", "/?ecosystem=gems", "/?since=yesterday", "/?page=0",
                "/?page=abc"):
        response = client.get(bad)
        assert response.status_code == 400, bad
        assert "<script>" not in response.text


# -- the release page ------------------------------------------------------------------------------


def test_release_page_shows_sequence_code_hooks_metadata_and_diff(client: TestClient, triage_db: Db) -> None:
    _, ids, _ = triage_db
    page = client.get(f"/release/{ids['pypi_dropper']}").text
    assert 'id="verdict">malicious<' in page
    # the threshold that decided stands beside the score
    shown = re.search(r'id="score">([0-9.]+)</strong> against <span id="threshold">([0-9.]+)</span>', page)
    assert shown and float(shown.group(1)) >= float(shown.group(2)) > 0
    steps = re.findall(r'<tr class="step-(\w+)">', page)
    assert steps and steps[0] == "install"  # install-time steps come first, in execution order
    assert 'href="#excerpt-0"' in page and 'id="excerpt-0"' in page
    assert '<span class="hll">' in page  # the decisive lines are highlighted
    assert "fetch_and_run" in page and "setup.py" in page
    assert "runs when pip builds the sdist" in page  # the install hook
    diff = client.get(f"/release/{ids['tiny_lib']}").text
    assert 'id="diff"' in diff and "npm:tiny-lib@1.0.0" in diff and "malicious change" in diff
    assert "collect.example.invalid" in diff and "added postinstall" in diff
    assert 'id="diff"' not in page  # no diff stored: nothing shown
    pending = client.get(f"/release/{ids['pending']}").text
    assert "not scanned yet" in pending and "state queued" in pending
    assert client.get("/release/424242").status_code == 404


def test_reports_without_excerpts_and_malformed_reports_still_render(tmp_path: Path) -> None:
    path, now = tmp_path / "odd.db", 1_800_000_000.0
    old_report = ('{"target": "npm:old@1.0.0", "behaviours": [{"id": "read_env", "file": "i.js", "line": 3, '
                  '"snippet": "process.env<script>"}], "sequence": {"steps": [{"stage": "import", '
                  '"behaviour": "read_env", "file": "i.js", "line": 3}]}, "score": 0.5}')
    with open_store(path) as store:
        ids = []
        for i, report in enumerate((old_report, "not json", "[]", '{"sequence": {"steps": "x"}, "package": 7}',
                                    '{"review": {"excerpts": [{"file": 1, "first_line": "a", "lines": 5}]}}')):
            rid = store.enqueue(NewRelease("npm", f"odd-{i}", "1.0.0", "names"), now)
            assert rid is not None
            claimed = store.claim_next("t", now + 1, 60)
            assert claimed is not None and claimed.id == rid
            assert store.complete(claimed, ScanRecord(now, 0.5, "benign", None, None, "low-fpr", report))
            ids.append(rid)
        client = TestClient(create_app(store), base_url=BASE)
        for rid in ids:
            assert client.get(f"/release/{rid}").status_code == 200
        old = client.get(f"/release/{ids[0]}").text
        assert 'id="events"' in old and "process.env&lt;script&gt;" in old
    view = parse_report('{"sequence": {"steps": [{"behaviour": "read_env", "line": "7", "count": true}]}}')
    assert view.steps[0].phrase == "read environment variables" and view.steps[0].line == 0


# -- labels ----------------------------------------------------------------------------------------


def test_label_post_is_stored_with_timestamp(client: TestClient, triage_db: Db) -> None:
    path, ids, now = triage_db
    rid = ids["hostile_pypi"]
    token = _csrf(client, rid)
    response = client.post(f"/release/{rid}/label", data={CSRF_FIELD: token, "label": "benign",
                                                           "reviewer": f"dan{SCRIPT}", "note": f"ok {JS_URL}"},
                           headers={"origin": BASE, "sec-fetch-site": "same-origin"})
    assert response.status_code == 303 and response.headers["location"] == f"/release/{rid}?saved=1#labels"
    with open_store(path, readonly=True) as store:
        detail = store.release(rid)
        assert detail is not None and detail.label is not None
        assert (detail.label.label, detail.label.reviewer, detail.label.note, detail.label.created_at) == (
            Label.BENIGN, f"dan{SCRIPT}", f"ok {JS_URL}", now + 5)
    page = client.get(f"/release/{rid}?saved=1").text
    assert 'id="saved"' in page and "dan&lt;script&gt;" in page
    assert 'value="dan&lt;script&gt;' in page  # the reviewer's name is remembered (escaped in the attribute)
    # a flagged release labelled benign: precision of the reviewed queue drops to 1 of 2
    assert 'id="precision">50%<' in client.get("/dashboard").text


def test_cross_site_and_forged_posts_are_refused(client: TestClient, triage_db: Db) -> None:
    path, ids, _ = triage_db
    rid = ids["tiny_lib"]
    token = _csrf(client, rid)
    form = {CSRF_FIELD: token, "label": "malicious", "reviewer": "mallory"}
    # a page elsewhere posting with the browser's cookies (if SameSite did not stop them)
    assert client.post(f"/release/{rid}/label", data=form,
                       headers={"origin": "https://evil.example"}).status_code == 403
    assert client.post(f"/release/{rid}/label", data=form,
                       headers={"sec-fetch-site": "cross-site"}).status_code == 403
    assert client.post(f"/release/{rid}/label", data=form, headers={"origin": "null"}).status_code == 403
    # no token, a wrong token, or a token of another session
    assert client.post(f"/release/{rid}/label", data={**form, CSRF_FIELD: ""}).status_code == 403
    assert client.post(f"/release/{rid}/label", data={**form, CSRF_FIELD: "0" * 64}).status_code == 403
    other = TestClient(client.app, base_url=BASE, follow_redirects=False)
    other.get("/")  # a session of its own
    assert other.post(f"/release/{rid}/label", data=form).status_code == 403
    # no session cookie at all
    bare = TestClient(client.app, base_url=BASE, follow_redirects=False)
    assert bare.post(f"/release/{rid}/label", data=form).status_code == 403
    # labels need a POST
    assert client.get(f"/release/{rid}/label").status_code == 405
    # and valid values
    assert client.post(f"/release/{rid}/label", data={**form, "label": "evil"}).status_code == 400
    assert client.post(f"/release/{rid}/label", data={**form, "reviewer": "  "}).status_code == 400
    assert client.post(f"/release/{rid}/label", data={**form, "note": "x" * 5000}).status_code == 400
    assert client.post(f"/release/{rid}/label", data={**form, "note": "x" * 100_000}).status_code == 413
    assert client.post("/release/99999/label", data=form).status_code == 404
    with open_store(path, readonly=True) as store:
        detail = store.release(rid)
        assert detail is not None and detail.labels == ()  # nothing got through
    assert client.post(f"/release/{rid}/label", data=form).status_code == 303  # the same form, same site
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie


def test_session_and_reviewer_cookies_are_strict(client: TestClient, triage_db: Db) -> None:
    response = client.get("/")
    set_cookie = response.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie


# -- access token ----------------------------------------------------------------------------------


def test_token_is_required_when_bound_elsewhere(triage_db: Db) -> None:
    path, ids, _ = triage_db
    with open_store(path) as store:
        app = create_app(store, token="s3cret-token", loopback_only=False)
        client = TestClient(app, base_url="http://10.1.2.3:8765", follow_redirects=False)
        assert client.get("/").status_code == 401
        assert client.get("/?token=wrong").status_code == 401
        assert client.get("/dashboard", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/dashboard", headers={"authorization": "Bearer s3cret-token"}).status_code == 200
        response = client.get("/?token=s3cret-token&verdict=malicious")
        assert response.status_code == 303
        assert response.headers["location"] == "/?verdict=malicious"  # the token leaves the address bar
        assert "samesite=strict" in response.headers["set-cookie"].lower()
        assert client.get("/?verdict=malicious").status_code == 200  # the cookie carries it now
        assert client.get(f"/release/{ids['hostile_npm']}").status_code == 200
        assert client.post(f"/release/{ids['hostile_npm']}/label", data={}).status_code == 403  # still CSRF
