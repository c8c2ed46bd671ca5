"""The watch loop end to end against a local registry: queue, scans, retries, parking, alerts, CLI."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from watch_registry import FakeRegistry, Route, exfil_npm

import malseq
from malseq.intake import IntakeOptions
from malseq.scan import ScanOptions
from malseq.watch.runner import Watch, WatchSettings, default_db_path, runner_lock
from malseq.watch.sources import RateLimiter, RegistryClient, WatchListSource, parse_watch_list
from malseq.watch.store import ReleaseState, WatchStore, open_store

SRC = Path(malseq.__file__).resolve().parent.parent


def scan_options(fake: FakeRegistry, tmp_path: Path, isolate: bool = False) -> ScanOptions:
    intake = IntakeOptions(pypi_index_url=fake.index_url, npm_registry_url=fake.npm_url,
                           cache_dir=tmp_path / "cache", http_timeout=10)
    return ScanOptions(intake=intake, isolate=isolate)


def make_watch(fake: FakeRegistry, tmp_path: Path, names: str, store: WatchStore, out: io.StringIO,
               **settings: Any) -> Watch:
    options = scan_options(fake, tmp_path)
    client = RegistryClient(options.intake, RateLimiter(0))
    source = WatchListSource(parse_watch_list(names), client)
    return Watch(store, [source], WatchSettings(scan_options=options, **settings), RateLimiter(0), out=out,
                 log=io.StringIO())


def publish_demo(fake: FakeRegistry) -> None:
    fake.add_npm("tiny-add", "1.0.0")
    fake.add_pypi("tiny_lib", "0.3")
    fake.add_npm("colorz-utils", "1.0.3", exfil_npm("colorz-utils", "1.0.3"))


NAMES = "npm:tiny-add\npypi:tiny-lib\nnpm:colorz-utils\n"


def alerts(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_once_scans_new_releases_stores_reports_and_alerts_once(registry: FakeRegistry, tmp_path: Path) -> None:
    publish_demo(registry)
    out = io.StringIO()
    with open_store(tmp_path / "w.db") as store:
        report = make_watch(registry, tmp_path, NAMES, store, out, jobs=2, batch=2).run(once=True, interval=0)
        assert (report.scanned, report.flagged, report.failed, report.alerts) == (3, 1, 0, 1)
        assert report.polled == (("names", 3),)
        [alert] = alerts(out)
        assert (alert["ecosystem"], alert["name"], alert["version"], alert["verdict"]) == (
            "npm", "colorz-utils", "1.0.3", "malicious")
        assert alert["score"] > 0.5 and alert["target"] == "npm:colorz-utils@1.0.3"
        # with the threshold that decided, so a reader of the alert can tell how clear the verdict is
        assert isinstance(alert["threshold"], float) and alert["score"] >= alert["threshold"]
        # the reasons point at the code: the install hook and what collect.js does, with file:line
        assert alert["reasons"] and all(r["file"] and r["line"] >= 0 for r in alert["reasons"])
        assert any(r["file"] == "collect.js" and r["line"] > 0 for r in alert["reasons"])
        detail = store.release(alert["id"])
        assert detail is not None and detail.result is not None
        assert detail.release.state is ReleaseState.DONE
        saved = json.loads(detail.result.report_json)
        assert saved["target"] == "npm:colorz-utils@1.0.3" and saved["verdict"] == "malicious"
        assert saved["package"]["origin"]["sha256"] == alert["sha256"]
        assert detail.result.model_version is not None and detail.result.model_version.startswith("shipped@")
        assert detail.result.analysis_key
        benign = store.find("pypi", "tiny-lib", "0.3")
        assert benign is not None and benign.state is ReleaseState.DONE

        # a second round finds nothing new and repeats no alert
        out2 = io.StringIO()
        again = make_watch(registry, tmp_path, NAMES, store, out2).run(once=True, interval=0)
        assert (again.scanned, again.alerts) == (0, 0) and out2.getvalue() == ""
        # a new version is scanned; old results stay as they were
        registry.add_npm("tiny-add", "1.0.1")
        third = make_watch(registry, tmp_path, NAMES, store, io.StringIO()).run(once=True, interval=0)
        assert (third.polled, third.scanned, third.alerts) == ((("names", 1),), 1, 0)
        assert store.stats().results == 4


def test_registry_errors_back_off_then_park(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.add_npm("flaky", "1.0.0")
    tarball = "/tarballs/flaky/-/flaky-1.0.0.tgz"
    registry.routes[tarball] = Route(b"busy", 503, "text/plain")
    with open_store(tmp_path / "w.db") as store:
        report = make_watch(registry, tmp_path, "npm:flaky\n", store, io.StringIO(), max_tries=3,
                            backoff_seconds=0.05).run(once=True, interval=0)
        assert (report.scanned, report.failed, report.parked) == (0, 3, 1)
        assert registry.requests(tarball) == [tarball] * 3  # three tries, then it stopped asking
        parked = store.find("npm", "flaky", "1.0.0")
        assert parked is not None and parked.state is ReleaseState.PARKED and parked.tries == 3
        assert parked.last_error is not None and "HTTP 503" in parked.last_error
        # a later round does not retry a parked release
        later = make_watch(registry, tmp_path, "npm:flaky\n", store, io.StringIO()).run(once=True, interval=0)
        assert later.failed == 0 and registry.requests(tarball) == [tarball] * 3


def test_a_failure_that_recovers_completes(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.add_npm("wobbly", "1.0.0")
    tarball = "/tarballs/wobbly/-/wobbly-1.0.0.tgz"
    registry.routes[tarball] = Route(b"busy", 503, "text/plain")
    with open_store(tmp_path / "w.db") as store:
        watch = make_watch(registry, tmp_path, "npm:wobbly\n", store, io.StringIO(), max_tries=3,
                           backoff_seconds=0.05)
        watch.poll()
        watch.drain(wait_for_backoff=False)  # one try, then back in the queue with a backoff
        release = store.find("npm", "wobbly", "1.0.0")
        assert release is not None and release.state is ReleaseState.QUEUED and release.tries == 1
        del registry.routes[tarball]
        watch.drain(wait_for_backoff=True)
        done = store.release(release.id)
        assert done is not None and done.release.state is ReleaseState.DONE and done.result is not None
        assert done.result.verdict == "benign"


def test_a_hostile_archive_is_a_result_not_a_retry(registry: FakeRegistry, tmp_path: Path) -> None:
    junk = b"\x1f\x8b\x08\x00" + os.urandom(64)  # gzip magic, then garbage: a corrupt archive
    registry.add_npm("broken-tgz", "1.0.0", junk)
    with open_store(tmp_path / "w.db") as store:
        report = make_watch(registry, tmp_path, "npm:broken-tgz\n", store, io.StringIO()).run(once=True, interval=0)
        assert (report.scanned, report.failed) == (1, 0)
        release = store.find("npm", "broken-tgz", "1.0.0")
        assert release is not None and release.tries == 0
        detail = store.release(release.id)
        assert detail is not None and detail.result is not None
        assert detail.result.error_kind in ("CorruptArchiveError", "ArchiveFormatError")
        assert detail.result.score is None and json.loads(detail.result.report_json)["error"]["message"]


class Hook:
    """A webhook receiver on 127.0.0.1 that fails its first `failures` requests."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[dict[str, Any]] = []
        self.attempts = 0


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    state = Hook(failures=1)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.attempts += 1
            if state.attempts <= state.failures:
                self.send_response(500)
                self.end_headers()
                return
            assert self.headers["Content-Type"] == "application/json"
            state.received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_gets_each_alert_once_with_retries(registry: FakeRegistry, tmp_path: Path,
                                                   hook: tuple[Hook, str]) -> None:
    state, url = hook
    publish_demo(registry)
    with open_store(tmp_path / "w.db") as store:
        watch = make_watch(registry, tmp_path, NAMES, store, io.StringIO(), webhook=url, webhook_tries=3)
        watch.run(once=True, interval=0)
        assert state.attempts == 2  # a 500, then delivered
        [payload] = state.received
        assert (payload["name"], payload["verdict"]) == ("colorz-utils", "malicious") and payload["reasons"]
        make_watch(registry, tmp_path, NAMES, store, io.StringIO(), webhook=url).run(once=True, interval=0)
        assert state.attempts == 2 and store.stats().alerts == 2  # stdout + webhook, each once


def test_webhook_down_keeps_the_alert_pending(registry: FakeRegistry, tmp_path: Path,
                                              hook: tuple[Hook, str]) -> None:
    state, url = hook
    state.failures = 2
    publish_demo(registry)
    with open_store(tmp_path / "w.db") as store:
        make_watch(registry, tmp_path, NAMES, store, io.StringIO(), webhook=url, webhook_tries=2).run(
            once=True, interval=0)
        assert state.received == [] and len(store.unalerted("webhook")) == 1
        make_watch(registry, tmp_path, NAMES, store, io.StringIO(), webhook=url, webhook_tries=2).run(
            once=True, interval=0)
        assert len(state.received) == 1 and store.unalerted("webhook") == []


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_db_path() == tmp_path / "data" / "malseq" / "watch.db"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_db_path() == Path.home() / ".local" / "share" / "malseq" / "watch.db"


def cli_env(fake: FakeRegistry, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
            "MALSEQ_PYPI_INDEX_URL": fake.index_url, "MALSEQ_NPM_REGISTRY": fake.npm_url,
            "MALSEQ_CACHE_DIR": str(tmp_path / "cache")}


def test_cli_once_isolated_then_nothing_new(registry: FakeRegistry, tmp_path: Path) -> None:
    publish_demo(registry)
    names = tmp_path / "names.txt"
    names.write_text(NAMES)
    db = tmp_path / "watch.db"
    cmd = [sys.executable, "-m", "malseq", "watch", "--names", str(names), "--db", str(db), "--once",
           "--jobs", "2", "--batch", "2"]
    first = subprocess.run(cmd, env=cli_env(registry, tmp_path), capture_output=True, text=True, timeout=600)
    assert first.returncode == 1, first.stderr  # flagged
    [line] = first.stdout.splitlines()
    assert json.loads(line)["name"] == "colorz-utils"
    assert "round done" in first.stderr and "scanned 3, flagged 1" in first.stderr
    # stderr says what was queued, by name, and each release as it finishes with its verdict;
    # stdout holds the alert alone
    queued = sorted(line.split("queued ", 1)[1] for line in first.stderr.splitlines() if "  queued " in line)
    finished = [line for line in first.stderr.splitlines() if line.startswith("[") and "/3] " in line]
    assert len(queued) == 3 and len(finished) == 3, first.stderr
    assert sorted(line.split("] ", 1)[1].split(": ", 1)[0] for line in finished) == queued
    assert any("colorz-utils" in line and ": MALICIOUS " in line for line in finished)
    assert first.stderr.rstrip().splitlines()[-1].startswith("malseq watch: round done")
    second = subprocess.run(cmd, env=cli_env(registry, tmp_path), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "" and "new releases: names 0; scanned 0" in second.stderr


def test_cli_refuses_a_database_in_use_and_bad_options(registry: FakeRegistry, tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("npm:x\n")
    db = tmp_path / "watch.db"
    base = [sys.executable, "-m", "malseq", "watch", "--names", str(names), "--db", str(db), "--once"]
    with runner_lock(db):
        busy = subprocess.run(base, env=cli_env(registry, tmp_path), capture_output=True, text=True, timeout=300)
    assert busy.returncode == 2 and "another malseq watch is using" in busy.stderr
    for extra, message in ((["--jobs", "0"], "--jobs must be at least 1"),
                           (["--webhook", "ftp://x"], "not an http(s) URL")):
        bad = subprocess.run(base + extra, env=cli_env(registry, tmp_path), capture_output=True, text=True,
                             timeout=300)
        assert bad.returncode == 2 and message in bad.stderr
    nothing = subprocess.run([sys.executable, "-m", "malseq", "watch", "--db", str(db), "--once"],
                             env=cli_env(registry, tmp_path), capture_output=True, text=True, timeout=300)
    assert nothing.returncode == 2 and "nothing to watch" in nothing.stderr


def test_integrity_of_served_packages_is_checked(registry: FakeRegistry, tmp_path: Path) -> None:
    """A tarball that does not match its published sha512 is retried (a mirror may be mid-sync), then parked."""
    registry.add_npm("swapped", "1.0.0")
    good = registry.npm["swapped"]["1.0.0"]
    assert base64.b64encode(hashlib.sha512(good).digest())  # the packument publishes this
    registry.routes["/tarballs/swapped/-/swapped-1.0.0.tgz"] = Route(good + b"tampered")
    with open_store(tmp_path / "w.db") as store:
        report = make_watch(registry, tmp_path, "npm:swapped\n", store, io.StringIO(), max_tries=2,
                            backoff_seconds=0.01).run(once=True, interval=0)
        assert report.parked == 1
        parked = store.find("npm", "swapped", "1.0.0")
        assert parked is not None and parked.last_error is not None
        assert parked.last_error.startswith("HashMismatchError")


def test_feed_sources_in_one_watch(registry: FakeRegistry, tmp_path: Path) -> None:
    """The three feed sources together, as `--source pypi-simple --source pypi-rss --source npm-changes` builds them."""
    from malseq.watch.sources import build_sources

    registry.add_pypi("old-py", "1.0")
    registry.add_npm("old-npm", "1.0.0")
    options = scan_options(registry, tmp_path)
    client = RegistryClient(options.intake, RateLimiter(0))
    sources = build_sources(["npm-changes", "pypi-simple", "pypi-rss"], client)
    assert [s.name for s in sources] == ["pypi-simple", "pypi-rss", "npm-changes"]
    with open_store(tmp_path / "w.db") as store:
        def round_() -> list[tuple[str, int]]:
            watch = Watch(store, sources, WatchSettings(scan_options=options), RateLimiter(0), out=io.StringIO(),
                          log=io.StringIO())
            return list(watch.run(once=True, interval=0).polled)

        # first round: the index and the changes feed are recorded; the RSS feed's items are queued
        assert round_() == [("pypi-simple", 0), ("pypi-rss", 1), ("npm-changes", 0)]
        registry.add_pypi("new-py", "0.1")
        registry.add_npm("new-npm", "2.0.0")
        registry.add_npm("old-npm", "1.1.0")
        # the new project shows in the index and in both RSS feeds, but is queued once
        assert round_() == [("pypi-simple", 1), ("pypi-rss", 0), ("npm-changes", 2)]
        assert round_() == [("pypi-simple", 0), ("pypi-rss", 0), ("npm-changes", 0)]
        done = {(r.release.ecosystem, r.release.name, r.release.version, r.release.source) for r in store.queue()}
        assert done == {("pypi", "old-py", "1.0", "pypi-rss"), ("pypi", "new-py", "0.1", "pypi-simple"),
                        ("npm", "new-npm", "2.0.0", "npm-changes"), ("npm", "old-npm", "1.1.0", "npm-changes")}
        assert store.stats().results == 4


def test_model_version_names_a_threshold_revision(tmp_path: Path) -> None:
    """Verdicts move when a card's thresholds are chosen again: the stored model identity must move too."""
    import shutil

    from malseq.model import DATA_DIR
    from malseq.scan import ScanOptions
    from malseq.watch.runner import model_version

    shipped = json.loads((DATA_DIR / "model_card.json").read_text())
    version = model_version(ScanOptions())
    assert version is not None and version.startswith(f"shipped@{shipped['created']}+thresholds.")
    folder = tmp_path / "mine"
    shutil.copytree(DATA_DIR, folder, ignore=shutil.ignore_patterns("*.gz"))
    same = model_version(ScanOptions(model_dir=folder))
    assert same is not None and same.startswith("mine@") and same.split("+")[1] == version.split("+")[1]
    other = tmp_path / "mine-2"  # a loaded model is kept per folder: the changed card goes in another one
    shutil.copytree(folder, other)
    card = {**shipped, "thresholds_by_ecosystem": {**shipped["thresholds_by_ecosystem"], "npm": 0.9}}
    (other / "model_card.json").write_text(json.dumps(card))
    moved = model_version(ScanOptions(model_dir=other))
    assert moved is not None and moved.split("+")[1] != version.split("+")[1]
