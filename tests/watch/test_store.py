"""The watch database (malseq.watch.store): queue semantics, claims, results, labels, queries."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from malseq.watch.store import (
    SCHEMA_VERSION,
    Cursor,
    Label,
    NewRelease,
    QueueFilter,
    ReleaseState,
    ScanRecord,
    WatchStoreError,
    open_store,
)

T0 = 1_800_000_000.0  # a fixed clock: 2027-01-15


def record(score: float | None, verdict: str | None, at: float = T0, error: str | None = None) -> ScanRecord:
    return ScanRecord(scanned_at=at, score=score, verdict=verdict, model_version="m1", analysis_key="k1",
                      operating_point="low-fpr", report_json='{"target": "x"}', error_kind=error,
                      error_message="boom" if error else None)


def test_open_creates_wal_schema_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "watch.db"
    with open_store(path) as store:
        store.enqueue(NewRelease("pypi", "Foo_Bar", "1.0", "names"), T0)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()
    with open_store(path) as store:  # opening again migrates nothing and keeps the data
        assert store.find("pypi", "foo-bar", "1.0") is not None
        # foreign keys are on: a label for a release that does not exist is refused
        with pytest.raises(WatchStoreError):
            store.add_label(999, Label.BENIGN, "ann", T0)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "watch.db"
    open_store(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(WatchStoreError, match="schema version"):
        open_store(path)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "watch.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(WatchStoreError, match="cannot open"):
        open_store(path)


def test_enqueue_is_idempotent_per_normalized_name(tmp_path: Path) -> None:
    with open_store(tmp_path / "w.db") as store:
        first = store.enqueue(NewRelease("pypi", "Foo.Bar", "1.0", "names"), T0)
        assert first is not None
        assert store.enqueue(NewRelease("pypi", "foo_bar", "1.0", "pypi-simple"), T0 + 1) is None
        assert store.enqueue(NewRelease("pypi", "foo-bar", "1.1", "names"), T0) is not None
        # npm names are not folded: the registry treats them as distinct
        assert store.enqueue(NewRelease("npm", "Foo.Bar", "1.0", "names"), T0) is not None
        assert store.enqueue(NewRelease("npm", "foo.bar", "1.0", "names"), T0) is not None
        assert store.enqueue_many([NewRelease("npm", "foo.bar", "1.0", "x"), NewRelease("npm", "q", "2", "x")],
                                  T0) != []
        assert store.queue_count() == 5
        release = store.find("pypi", "FOO-bar", "1.0")
        assert release is not None and release.name == "Foo.Bar" and release.source == "names"
        assert release.target == "pypi:Foo.Bar==1.0"
        with pytest.raises(WatchStoreError):
            store.enqueue(NewRelease("cargo", "x", "1", "names"), T0)


def test_claims_are_exclusive_across_threads(tmp_path: Path) -> None:
    with open_store(tmp_path / "w.db") as store:
        store.enqueue_many([NewRelease("npm", f"p{i}", "1.0.0", "names") for i in range(60)], T0)
        claimed: list[int] = []
        lock = threading.Lock()

        def worker(name: str) -> None:
            while (r := store.claim_next(name, T0, 600)) is not None:
                with lock:
                    claimed.append(r.id)

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 60


def test_claims_from_two_connections_are_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    a, b = open_store(path), open_store(path)
    a.enqueue_many([NewRelease("npm", f"p{i}", "1", "names") for i in range(10)], T0)
    ids = set()
    for i in range(10):
        r = (a if i % 2 else b).claim_next(f"w{i % 2}", T0, 600)
        assert r is not None and r.id not in ids
        ids.add(r.id)
    assert a.claim_next("w0", T0, 600) is None
    a.close()
    b.close()


def test_lease_expiry_and_requeue(tmp_path: Path) -> None:
    with open_store(tmp_path / "w.db") as store:
        store.enqueue(NewRelease("npm", "a", "1", "names"), T0)
        first = store.claim_next("dead-worker", T0, 60)
        assert first is not None and first.state is ReleaseState.SCANNING and first.claimed_by == "dead-worker"
        assert store.claim_next("w2", T0 + 59, 60) is None  # lease still held
        second = store.claim_next("w2", T0 + 61, 60)  # lease ran out: claimable again
        assert second is not None and second.id == first.id
        # the dead worker coming back cannot complete: the claim is w2's
        assert not store.complete(first, record(0.1, "benign"))
        assert store.complete(second, record(0.1, "benign"))
        assert not store.complete(second, record(0.9, "malicious"))  # never completed twice
        detail = store.release(first.id)
        assert detail is not None and detail.result is not None and detail.result.score == 0.1
        assert detail.release.state is ReleaseState.DONE and detail.release.claimed_by is None

        store.enqueue(NewRelease("npm", "b", "1", "names"), T0)
        assert store.claim_next("crashed", T0, 3600) is not None
        assert store.claim_next("new", T0 + 1, 3600) is None
        assert store.requeue_claims() == 1
        again = store.claim_next("new", T0 + 1, 3600)
        assert again is not None and again.name == "b"


def test_fail_backs_off_then_parks(tmp_path: Path) -> None:
    with open_store(tmp_path / "w.db") as store:
        store.enqueue(NewRelease("pypi", "flaky", "1.0", "names"), T0)
        now = T0
        for attempt in (1, 2):
            r = store.claim_next("w", now, 60)
            assert r is not None
            assert store.fail(r, f"503 attempt {attempt}", now, 30 * attempt, max_tries=3) is ReleaseState.QUEUED
            assert store.claim_next("w", now + 30 * attempt - 1, 60) is None  # not due before its backoff
            assert store.next_due() == now + 30 * attempt
            now += 30 * attempt
        r = store.claim_next("w", now, 60)
        assert r is not None and r.tries == 2
        assert store.fail(r, "503 again", now, 120, max_tries=3) is ReleaseState.PARKED
        assert store.claim_next("w", now + 10_000, 60) is None
        parked = store.find("pypi", "flaky", "1.0")
        assert parked is not None and parked.state is ReleaseState.PARKED and parked.last_error == "503 again"
        assert parked.tries == 3 and store.pending() == 0
        assert store.unpark(parked.id, now)
        assert store.claim_next("w", now, 60) is not None


def test_cursor_and_poll_are_one_transaction(tmp_path: Path) -> None:
    with open_store(tmp_path / "w.db") as store:
        assert store.cursor("names") is None
        ids = store.record_poll(Cursor("names", serial=7, etag='"abc"', seen=frozenset({"pypi:a==1", "npm:b@2"})),
                                [NewRelease("pypi", "a", "1", "names")], T0)
        assert len(ids) == 1
        c = store.cursor("names")
        assert c is not None and c.serial == 7 and c.etag == '"abc"' and c.updated_at == T0
        assert c.seen == {"pypi:a==1", "npm:b@2"}
        # seen keys only grow; a poll with a bad release rolls back its cursor too
        with pytest.raises(WatchStoreError):
            store.record_poll(Cursor("names", serial=8, seen=frozenset({"pypi:c==1"})),
                              [NewRelease("cargo", "c", "1", "names")], T0 + 5)
        c = store.cursor("names")
        assert c is not None and c.serial == 7 and "pypi:c==1" not in c.seen
        store.record_poll(Cursor("names", serial=9, seen=frozenset({"pypi:c==1"})), [], T0 + 6)
        c = store.cursor("names")
        assert c is not None and c.serial == 9 and c.seen == {"pypi:a==1", "npm:b@2", "pypi:c==1"}


def _scan(store: object, name: str, score: float | None, verdict: str | None, at: float,
          eco: str = "npm", error: str | None = None) -> int:
    from malseq.watch.store import WatchStore

    assert isinstance(store, WatchStore)
    rid = store.enqueue(NewRelease(eco, name, "1.0.0", "names"), at)
    assert rid is not None
    r = store.claim_next("w", at + 10_000, 60)  # far enough in time to be due
    assert r is not None and r.id == rid
    assert store.complete(r, record(score, verdict, at=at, error=error))
    return rid


def test_queue_order_filters_labels_and_stats(tmp_path: Path) -> None:
    hour = 3600.0
    with open_store(tmp_path / "w.db") as store:
        low = _scan(store, "low", 0.05, "benign", T0)
        high = _scan(store, "high", 0.99, "malicious", T0 + 10, eco="pypi")
        mid = _scan(store, "mid", 0.7, "malicious", T0 + hour)
        err = _scan(store, "broken", None, None, T0 + hour, error="CorruptArchiveError")
        pending = store.enqueue(NewRelease("npm", "waiting", "1", "names"), T0 + 2 * hour)

        order = [row.release.id for row in store.queue()]
        assert order == [high, mid, low, pending, err]  # by score; unscored last, newest first
        assert [r.release.id for r in store.queue(QueueFilter(ecosystem="pypi"))] == [high]
        assert [r.release.id for r in store.queue(QueueFilter(verdict="malicious"))] == [high, mid]
        assert [r.release.id for r in store.queue(QueueFilter(verdict="error"))] == [err]
        assert [r.release.id for r in store.queue(QueueFilter(verdict="pending"))] == [pending]
        assert [r.release.id for r in store.queue(QueueFilter(since=T0 + hour, until=T0 + 2 * hour))] == [mid, err]
        assert [r.release.id for r in store.queue(limit=2, offset=1)] == [mid, low]
        assert store.queue_count(QueueFilter(verdict="malicious")) == 2

        # labels: several per release, the latest wins
        store.add_label(high, Label.BENIGN, "ann", T0 + 100, note="looks fine")
        store.add_label(high, Label.MALICIOUS, "bob", T0 + 200, note="exfiltrates env")
        store.add_label(mid, Label.BENIGN, "ann", T0 + 300)
        store.add_label(low, Label.MALICIOUS, "ann", T0 + 300)
        store.add_label(err, Label.UNSURE, "ann", T0 + 300)
        with pytest.raises(WatchStoreError, match="reviewer"):
            store.add_label(low, Label.BENIGN, "  ", T0)
        detail = store.release(high)
        assert detail is not None and [lab.reviewer for lab in detail.labels] == ["ann", "bob"]
        assert detail.label is not None and detail.label.label is Label.MALICIOUS
        assert detail.label.note == "exfiltrates env"
        rows = {r.release.id: r for r in store.queue()}
        assert rows[high].label is Label.MALICIOUS and rows[pending].label is None
        assert [r.release.id for r in store.queue(QueueFilter(label=Label.MALICIOUS))] == [high, low]
        assert [r.release.id for r in store.queue(QueueFilter(unlabelled=True))] == [pending]

        agreement = store.label_agreement()
        assert (agreement.reviewed, agreement.flagged_reviewed, agreement.flagged_confirmed) == (3, 2, 1)
        assert (agreement.missed, agreement.false_alarms) == (1, 1)
        assert agreement.precision == 0.5

        hours = store.hourly()
        base = T0 // hour * hour
        assert [(h.hour, h.scanned, h.flagged, h.errors) for h in hours] == [
            (base, 2, 1, 0), (base + hour, 2, 1, 1)]
        assert [h.hour for h in store.hourly(since=base + hour)] == [base + hour]

        stats = store.stats()
        assert dict(stats.by_state)[ReleaseState.DONE] == 4 and dict(stats.by_state)[ReleaseState.QUEUED] == 1
        assert (stats.results, stats.flagged, stats.labels) == (4, 2, 5)


def test_alerts_are_recorded_once_per_channel(tmp_path: Path) -> None:
    with open_store(tmp_path / "w.db") as store:
        bad = _scan(store, "bad", 0.99, "malicious", T0)
        _scan(store, "good", 0.01, "benign", T0)
        assert [d.release.id for d in store.unalerted("stdout")] == [bad]
        assert store.record_alert(bad, "stdout", T0)
        assert not store.record_alert(bad, "stdout", T0 + 1)
        assert store.unalerted("stdout") == []
        assert [d.release.id for d in store.unalerted("webhook")] == [bad]
        assert store.stats().alerts == 1


def test_readonly_open_reads_and_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    with open_store(path) as store:
        _scan(store, "a", 0.5, "benign", T0)
    with open_store(path, readonly=True) as ro:
        assert ro.queue_count() == 1
        with pytest.raises(sqlite3.OperationalError):
            ro.enqueue(NewRelease("npm", "b", "1", "names"), T0)
    with pytest.raises(WatchStoreError):
        open_store(tmp_path / "fresh.db", readonly=True)
