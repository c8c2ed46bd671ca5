"""The watch database: one SQLite file (WAL mode) holding releases, scan results, labels,
source cursors and the alerts sent. `malseq watch` writes it; `malseq serve` reads it and adds labels.

Everything crossing this module's boundary is a frozen dataclass; times are unix seconds (UTC),
passed in by the caller so tests control the clock.

Crash safety rests on three things:
- every state change is one `BEGIN IMMEDIATE` transaction (a poll's new releases and its cursor
  together; a claim; a result with the release's move to `done`);
- `results.release_id` is the primary key, and `complete` only succeeds for the worker that holds
  the claim, so a release is never scanned twice to completion;
- a claim is a lease: a release left `scanning` by a process that died is claimable again once its
  lease runs out, or at once after `requeue_claims` (called by a watch process holding the
  single-runner lock, when it knows no other worker of this database is alive).

Schema changes: bump `SCHEMA_VERSION` and add a step to `_MIGRATIONS` (the file's
`PRAGMA user_version` says which steps it has had).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from malseq.errors import MalseqError

SCHEMA_VERSION = 1


class WatchStoreError(MalseqError):
    """The watch database cannot be opened or is from a newer malseq."""


class ReleaseState(StrEnum):
    QUEUED = "queued"
    SCANNING = "scanning"
    DONE = "done"
    PARKED = "parked"  # failed `max_tries` times; kept with its last error, not retried


class Label(StrEnum):
    MALICIOUS = "malicious"
    BENIGN = "benign"
    UNSURE = "unsure"


@dataclass(frozen=True)
class NewRelease:
    """A release a source found: what `enqueue` takes."""

    ecosystem: str  # "pypi" or "npm"
    name: str  # as the registry spells it
    version: str
    source: str  # the source that found it, e.g. "names", "pypi-simple"


@dataclass(frozen=True)
class Release:
    id: int
    ecosystem: str
    name: str
    version: str
    first_seen: float
    source: str
    state: ReleaseState
    tries: int  # failed attempts so far
    last_error: str | None
    next_attempt_at: float
    claimed_by: str | None
    lease_until: float | None

    @property
    def target(self) -> str:
        """The scanner target for this release (`pypi:NAME==VERSION` / `npm:NAME@VERSION`)."""
        return f"pypi:{self.name}=={self.version}" if self.ecosystem == "pypi" else f"npm:{self.name}@{self.version}"


@dataclass(frozen=True)
class ScanRecord:
    """The outcome of scanning one release: what `complete` takes and queries return."""

    scanned_at: float
    score: float | None  # None when the scan failed or no model was available
    verdict: str | None  # "malicious" / "benign" / None
    model_version: str | None
    analysis_key: str | None
    operating_point: str
    report_json: str  # the release's JSON report object (malseq.report.json_report.result_to_dict)
    error_kind: str | None = None  # a scan that ended in an error the scanner reports (ScanError.kind)
    error_message: str | None = None


@dataclass(frozen=True)
class LabelRecord:
    id: int
    release_id: int
    label: Label
    note: str
    reviewer: str
    created_at: float


@dataclass(frozen=True)
class Cursor:
    """Where a source stopped: its last serial (changelog, npm changes), the ETag of its last
    document, and the keys it has seen (names, or `name==version` / `name@version`)."""

    source: str
    serial: int | None = None
    etag: str | None = None
    seen: frozenset[str] = frozenset()
    updated_at: float | None = None


@dataclass(frozen=True)
class QueueFilter:
    ecosystem: str | None = None
    verdict: str | None = None  # "malicious" / "benign" / "error" (scanned with an error) / "pending" (no result)
    label: Label | None = None  # the latest label; "unlabelled" is `unlabelled=True`
    unlabelled: bool = False
    since: float | None = None  # first_seen >= since
    until: float | None = None  # first_seen < until
    state: ReleaseState | None = None


@dataclass(frozen=True)
class QueueRow:
    release: Release
    score: float | None
    verdict: str | None
    error_kind: str | None
    scanned_at: float | None
    label: Label | None  # the latest label, if any


@dataclass(frozen=True)
class ReleaseDetail:
    release: Release
    result: ScanRecord | None
    labels: tuple[LabelRecord, ...]  # oldest first; the last one is the release's label

    @property
    def label(self) -> LabelRecord | None:
        return self.labels[-1] if self.labels else None


@dataclass(frozen=True)
class HourStats:
    hour: float  # unix seconds at the start of the hour (UTC)
    scanned: int
    flagged: int
    errors: int


@dataclass(frozen=True)
class LabelAgreement:
    """How the reviewers' latest labels agree with the model (unsure labels left out)."""

    reviewed: int  # releases with a result and a malicious/benign latest label
    flagged_reviewed: int  # of those, flagged by the model
    flagged_confirmed: int  # flagged and labelled malicious
    missed: int  # not flagged, labelled malicious
    false_alarms: int  # flagged, labelled benign

    @property
    def precision(self) -> float | None:
        """Precision of the reviewed queue: the share of reviewed flagged releases labelled malicious."""
        return self.flagged_confirmed / self.flagged_reviewed if self.flagged_reviewed else None


@dataclass(frozen=True)
class StoreStats:
    by_state: tuple[tuple[ReleaseState, int], ...]
    results: int
    flagged: int
    labels: int
    alerts: int


_SCHEMA_V1 = """
CREATE TABLE releases (
    id INTEGER PRIMARY KEY,
    ecosystem TEXT NOT NULL CHECK (ecosystem IN ('pypi', 'npm')),
    name TEXT NOT NULL,
    normalized_name TEXT NOT NULL,
    version TEXT NOT NULL,
    first_seen REAL NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'scanning', 'done', 'parked')),
    tries INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at REAL NOT NULL,
    claimed_by TEXT,
    lease_until REAL,
    UNIQUE (ecosystem, normalized_name, version)
);
CREATE INDEX releases_claimable ON releases (state, next_attempt_at, id);
CREATE INDEX releases_first_seen ON releases (first_seen);

CREATE TABLE results (
    release_id INTEGER PRIMARY KEY REFERENCES releases (id) ON DELETE CASCADE,
    scanned_at REAL NOT NULL,
    score REAL,
    verdict TEXT CHECK (verdict IN ('malicious', 'benign')),
    model_version TEXT,
    analysis_key TEXT,
    operating_point TEXT NOT NULL,
    report_json TEXT NOT NULL,
    error_kind TEXT,
    error_message TEXT
);
CREATE INDEX results_score ON results (score DESC);
CREATE INDEX results_scanned_at ON results (scanned_at);

CREATE TABLE labels (
    id INTEGER PRIMARY KEY,
    release_id INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    label TEXT NOT NULL CHECK (label IN ('malicious', 'benign', 'unsure')),
    note TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX labels_release ON labels (release_id, created_at, id);

CREATE TABLE cursors (
    source TEXT PRIMARY KEY,
    serial INTEGER,
    etag TEXT,
    updated_at REAL
);

CREATE TABLE seen (
    source TEXT NOT NULL REFERENCES cursors (source) ON DELETE CASCADE,
    key TEXT NOT NULL,
    PRIMARY KEY (source, key)
) WITHOUT ROWID;

CREATE TABLE alerts (
    release_id INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (release_id, channel)
);
"""

# user_version N -> the SQL that takes a database to N + 1
_MIGRATIONS: dict[int, str] = {0: _SCHEMA_V1}

_RELEASE_COLUMNS = ("r.id, r.ecosystem, r.name, r.version, r.first_seen, r.source, r.state, r.tries, r.last_error, "
                    "r.next_attempt_at, r.claimed_by, r.lease_until")
_RESULT_COLUMNS = ("s.scanned_at, s.score, s.verdict, s.model_version, s.analysis_key, s.operating_point, "
                   "s.report_json, s.error_kind, s.error_message")
# the latest label of release r (latest created_at wins; the later insert breaks a tie)
_LATEST_LABEL = ("(SELECT l.label FROM labels l WHERE l.release_id = r.id "
                 "ORDER BY l.created_at DESC, l.id DESC LIMIT 1)")


def normalized_name(ecosystem: str, name: str) -> str:
    """The name under which a registry treats two spellings as one project (PEP 503 on PyPI)."""
    return str(canonicalize_name(name)) if ecosystem == "pypi" else name


def _release(row: Sequence[Any]) -> Release:
    return Release(
        id=int(row[0]),
        ecosystem=str(row[1]), name=str(row[2]), version=str(row[3]), first_seen=float(row[4]),
        source=str(row[5]), state=ReleaseState(row[6]), tries=int(row[7]),
        last_error=None if row[8] is None else str(row[8]),
        next_attempt_at=float(row[9]),
        claimed_by=None if row[10] is None else str(row[10]),
        lease_until=None if row[11] is None else float(row[11]),
    )


def _record(row: Sequence[Any]) -> ScanRecord:
    return ScanRecord(
        scanned_at=float(row[0]),
        score=None if row[1] is None else float(row[1]),
        verdict=None if row[2] is None else str(row[2]),
        model_version=None if row[3] is None else str(row[3]),
        analysis_key=None if row[4] is None else str(row[4]),
        operating_point=str(row[5]), report_json=str(row[6]),
        error_kind=None if row[7] is None else str(row[7]),
        error_message=None if row[8] is None else str(row[8]),
    )


class WatchStore:
    """A connection to the watch database, safe to share between threads (one lock serialises them).

    Other processes (a second watch, `malseq serve`) open their own; WAL lets readers run while
    one writer commits, and `busy_timeout` makes writers wait for each other instead of failing.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> WatchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: taken at once (BEGIN IMMEDIATE), committed whole or rolled back."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())

    # -- the queue -------------------------------------------------------------------------------

    def enqueue(self, release: NewRelease, now: float) -> int | None:
        """Add a release to the queue; None if it is already known (in any state). Idempotent."""
        ids = self.enqueue_many([release], now)
        return ids[0] if ids else None

    def enqueue_many(self, releases: Iterable[NewRelease], now: float) -> list[int]:
        """Enqueue several releases in one transaction; the ids of those that were new."""
        with self._write() as db:
            return _insert_releases(db, releases, now)

    def claim_next(self, worker: str, now: float, lease_seconds: float) -> Release | None:
        """Atomically take the next release due for a scan (queued and due, or a claim whose lease ran out)."""
        with self._write() as db:
            row = db.execute(
                f"SELECT {_RELEASE_COLUMNS} FROM releases r "
                "WHERE (r.state = 'queued' AND r.next_attempt_at <= ?) OR (r.state = 'scanning' AND r.lease_until < ?) "
                "ORDER BY r.next_attempt_at, r.id LIMIT 1", (now, now)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE releases SET state = 'scanning', claimed_by = ?, lease_until = ? WHERE id = ?",
                       (worker, now + lease_seconds, row[0]))
        return replace(_release(row), state=ReleaseState.SCANNING, claimed_by=worker, lease_until=now + lease_seconds)

    def requeue_claims(self) -> int:
        """Put every `scanning` release back in the queue (its worker is known dead); how many."""
        with self._write() as db:
            return db.execute("UPDATE releases SET state = 'queued', claimed_by = NULL, lease_until = NULL "
                              "WHERE state = 'scanning'").rowcount

    def complete(self, release: Release, record: ScanRecord) -> bool:
        """Store the result and mark the release done, in one transaction.

        False (and nothing written) when this worker no longer holds the claim, or a result
        exists already: the release is then someone else's, and is never completed twice.
        """
        with self._write() as db:
            if db.execute("SELECT 1 FROM results WHERE release_id = ?", (release.id,)).fetchone() is not None:
                return False
            held = db.execute("UPDATE releases SET state = 'done', claimed_by = NULL, lease_until = NULL, "
                              "last_error = NULL WHERE id = ? AND state = 'scanning' AND claimed_by = ?",
                              (release.id, release.claimed_by)).rowcount
            if not held:
                return False
            db.execute(f"INSERT INTO results (release_id, {_RESULT_COLUMNS.replace('s.', '')}) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (release.id, record.scanned_at, record.score, record.verdict, record.model_version,
                        record.analysis_key, record.operating_point, record.report_json, record.error_kind,
                        record.error_message))
            return True

    def fail(self, release: Release, error: str, now: float, backoff_seconds: float, max_tries: int) -> ReleaseState:
        """Record a failed attempt: back to the queue after `backoff_seconds`, or parked after `max_tries`.

        Returns the release's new state (unchanged if this worker no longer holds the claim).
        """
        with self._write() as db:
            row = db.execute("SELECT tries FROM releases WHERE id = ? AND state = 'scanning' AND claimed_by = ?",
                             (release.id, release.claimed_by)).fetchone()
            if row is None:
                current = db.execute("SELECT state FROM releases WHERE id = ?", (release.id,)).fetchone()
                return ReleaseState(current[0]) if current else ReleaseState.PARKED
            tries = int(row[0]) + 1
            state = ReleaseState.PARKED if tries >= max_tries else ReleaseState.QUEUED
            db.execute("UPDATE releases SET state = ?, tries = ?, last_error = ?, next_attempt_at = ?, "
                       "claimed_by = NULL, lease_until = NULL WHERE id = ?",
                       (state.value, tries, error, now + backoff_seconds, release.id))
            return state

    def unpark(self, release_id: int, now: float) -> bool:
        """Give a parked release another round of tries (a reviewer's decision)."""
        with self._write() as db:
            return bool(db.execute("UPDATE releases SET state = 'queued', tries = 0, next_attempt_at = ? "
                                   "WHERE id = ? AND state = 'parked'", (now, release_id)).rowcount)

    def pending(self) -> int:
        """Releases still to scan: queued (due or not) or being scanned."""
        return int(self._read("SELECT COUNT(*) FROM releases WHERE state IN ('queued', 'scanning')")[0][0])

    def next_due(self) -> float | None:
        """When the earliest queued release becomes due (None if none is queued)."""
        value = self._read("SELECT MIN(next_attempt_at) FROM releases WHERE state = 'queued'")[0][0]
        return None if value is None else float(value)

    # -- sources ---------------------------------------------------------------------------------

    def cursor(self, source: str) -> Cursor | None:
        """The source's cursor, or None before its first poll."""
        rows = self._read("SELECT serial, etag, updated_at FROM cursors WHERE source = ?", (source,))
        if not rows:
            return None
        serial, etag, updated_at = rows[0]
        seen = frozenset(str(r[0]) for r in self._read("SELECT key FROM seen WHERE source = ?", (source,)))
        return Cursor(source, None if serial is None else int(serial),
                      None if etag is None else str(etag), seen,
                      None if updated_at is None else float(updated_at))

    def record_poll(self, cursor: Cursor, releases: Iterable[NewRelease], now: float) -> list[int]:
        """A poll's outcome in one transaction: its new releases enqueued and its cursor saved.

        A crash before the commit loses neither (the next poll finds the same releases again);
        after it, both are kept. Seen keys only grow. Returns the ids of the releases that were new.
        """
        with self._write() as db:
            db.execute("INSERT INTO cursors (source, serial, etag, updated_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (source) DO UPDATE SET serial = excluded.serial, etag = excluded.etag, "
                       "updated_at = excluded.updated_at", (cursor.source, cursor.serial, cursor.etag, now))
            db.executemany("INSERT OR IGNORE INTO seen (source, key) VALUES (?, ?)",
                           ((cursor.source, key) for key in cursor.seen))
            return _insert_releases(db, releases, now)

    # -- results, alerts, labels -----------------------------------------------------------------

    def unalerted(self, channel: str, since: float | None = None) -> list[ReleaseDetail]:
        """Flagged releases with no alert recorded on `channel` (oldest result first)."""
        rows = self._read(
            f"SELECT r.id FROM releases r JOIN results s ON s.release_id = r.id "
            "WHERE s.verdict = 'malicious' AND NOT EXISTS "
            "(SELECT 1 FROM alerts a WHERE a.release_id = r.id AND a.channel = ?) "
            f"{'AND s.scanned_at >= ? ' if since is not None else ''}ORDER BY s.scanned_at, r.id",
            (channel,) if since is None else (channel, since))
        return [d for d in (self.release(int(r[0])) for r in rows) if d is not None]

    def record_alert(self, release_id: int, channel: str, now: float) -> bool:
        """Note that the release's alert went out on `channel`; False if it was noted already."""
        with self._write() as db:
            return bool(db.execute("INSERT OR IGNORE INTO alerts (release_id, channel, sent_at) VALUES (?, ?, ?)",
                                   (release_id, channel, now)).rowcount)

    def add_label(self, release_id: int, label: Label, reviewer: str, now: float, note: str = "") -> LabelRecord:
        """A reviewer's decision; several per release are kept, the latest is the release's label."""
        if not reviewer.strip():
            raise WatchStoreError("a label needs the reviewer's name")
        with self._write() as db:
            if db.execute("SELECT 1 FROM releases WHERE id = ?", (release_id,)).fetchone() is None:
                raise WatchStoreError(f"no release with id {release_id} in {self.path}")
            cur = db.execute("INSERT INTO labels (release_id, label, note, reviewer, created_at) "
                             "VALUES (?, ?, ?, ?, ?)", (release_id, Label(label).value, note, reviewer, now))
            assert cur.lastrowid is not None
            return LabelRecord(cur.lastrowid, release_id, Label(label), note, reviewer, now)

    # -- queries (the triage app) ----------------------------------------------------------------

    def release(self, release_id: int) -> ReleaseDetail | None:
        """One release with its result and every label (oldest first)."""
        rows = self._read(f"SELECT {_RELEASE_COLUMNS}, {_RESULT_COLUMNS} FROM releases r "
                          "LEFT JOIN results s ON s.release_id = r.id WHERE r.id = ?", (release_id,))
        if not rows:
            return None
        row = rows[0]
        release = _release(row[:12])
        result = _record(row[12:]) if row[12] is not None else None
        labels = tuple(
            LabelRecord(int(l[0]), release_id, Label(l[1]), str(l[2]), str(l[3]), float(l[4]))
            for l in self._read("SELECT id, label, note, reviewer, created_at FROM labels WHERE release_id = ? "  # noqa: E741
                                "ORDER BY created_at, id", (release_id,)))
        return ReleaseDetail(release, result, labels)

    def find(self, ecosystem: str, name: str, version: str) -> Release | None:
        rows = self._read(f"SELECT {_RELEASE_COLUMNS} FROM releases r WHERE r.ecosystem = ? "
                          "AND r.normalized_name = ? AND r.version = ?",
                          (ecosystem, normalized_name(ecosystem, name), version))
        return _release(rows[0]) if rows else None

    def queue(self, filters: QueueFilter = QueueFilter(), limit: int = 100, offset: int = 0) -> list[QueueRow]:
        """Releases ordered by score, highest first (unscored last, then newest first), filtered."""
        where, params = _queue_where(filters)
        rows = self._read(
            f"SELECT {_RELEASE_COLUMNS}, s.score, s.verdict, s.error_kind, s.scanned_at, {_LATEST_LABEL} "
            f"FROM releases r LEFT JOIN results s ON s.release_id = r.id {where} "
            "ORDER BY s.score IS NULL, s.score DESC, r.first_seen DESC, r.id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset))
        return [QueueRow(_release(row[:12]), None if row[12] is None else float(row[12]),
                         None if row[13] is None else str(row[13]), None if row[14] is None else str(row[14]),
                         None if row[15] is None else float(row[15]),
                         None if row[16] is None else Label(row[16])) for row in rows]

    def queue_count(self, filters: QueueFilter = QueueFilter()) -> int:
        where, params = _queue_where(filters)
        return int(self._read(f"SELECT COUNT(*) FROM releases r LEFT JOIN results s ON s.release_id = r.id {where}",
                              params)[0][0])

    def hourly(self, since: float | None = None, until: float | None = None) -> list[HourStats]:
        """Releases scanned per hour (by result time), with how many were flagged or ended in an error."""
        clauses, params = [], []
        if since is not None:
            clauses.append("scanned_at >= ?")
            params.append(since)
        if until is not None:
            clauses.append("scanned_at < ?")
            params.append(until)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(
            "SELECT CAST(scanned_at / 3600 AS INTEGER) * 3600 AS hour, COUNT(*), "
            "SUM(verdict = 'malicious'), SUM(error_kind IS NOT NULL) "
            f"FROM results {where} GROUP BY hour ORDER BY hour", params)
        return [HourStats(float(r[0]), int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in rows]

    def label_agreement(self) -> LabelAgreement:
        rows = self._read(
            f"SELECT s.verdict, {_LATEST_LABEL} AS label FROM releases r JOIN results s ON s.release_id = r.id "
            "WHERE s.verdict IS NOT NULL")
        reviewed = flagged = confirmed = missed = false_alarms = 0
        for verdict, label in rows:
            if label not in (Label.MALICIOUS.value, Label.BENIGN.value):
                continue
            reviewed += 1
            if verdict == "malicious":
                flagged += 1
                confirmed += label == Label.MALICIOUS.value
                false_alarms += label == Label.BENIGN.value
            else:
                missed += label == Label.MALICIOUS.value
        return LabelAgreement(reviewed, flagged, confirmed, missed, false_alarms)

    def stats(self) -> StoreStats:
        by_state = {ReleaseState(str(s)): int(n)
                    for s, n in self._read("SELECT state, COUNT(*) FROM releases GROUP BY state")}
        results, flagged = self._read("SELECT COUNT(*), COALESCE(SUM(verdict = 'malicious'), 0) FROM results")[0]
        labels = self._read("SELECT COUNT(*) FROM labels")[0][0]
        alerts = self._read("SELECT COUNT(*) FROM alerts")[0][0]
        return StoreStats(tuple((s, by_state.get(s, 0)) for s in ReleaseState), int(results),
                          int(flagged), int(labels), int(alerts))


def _insert_releases(db: sqlite3.Connection, releases: Iterable[NewRelease], now: float) -> list[int]:
    ids = []
    for r in releases:
        if r.ecosystem not in ("pypi", "npm"):
            raise WatchStoreError(f"unknown ecosystem {r.ecosystem!r}", hint="use pypi or npm")
        cur = db.execute(
            "INSERT INTO releases (ecosystem, name, normalized_name, version, first_seen, source, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ecosystem, normalized_name, version) DO NOTHING",
            (r.ecosystem, r.name, normalized_name(r.ecosystem, r.name), r.version, now, r.source, now))
        if cur.rowcount and cur.lastrowid is not None:
            ids.append(cur.lastrowid)
    return ids


def _queue_where(f: QueueFilter) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if f.ecosystem is not None:
        clauses.append("r.ecosystem = ?")
        params.append(f.ecosystem)
    if f.verdict == "error":
        clauses.append("s.error_kind IS NOT NULL")
    elif f.verdict == "pending":
        clauses.append("s.release_id IS NULL")
    elif f.verdict is not None:
        clauses.append("s.verdict = ?")
        params.append(f.verdict)
    if f.label is not None:
        clauses.append(f"{_LATEST_LABEL} = ?")
        params.append(Label(f.label).value)
    if f.unlabelled:
        clauses.append("NOT EXISTS (SELECT 1 FROM labels l WHERE l.release_id = r.id)")
    if f.since is not None:
        clauses.append("r.first_seen >= ?")
        params.append(f.since)
    if f.until is not None:
        clauses.append("r.first_seen < ?")
        params.append(f.until)
    if f.state is not None:
        clauses.append("r.state = ?")
        params.append(ReleaseState(f.state).value)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def open_store(path: Path, *, readonly: bool = False) -> WatchStore:
    """Open (creating and migrating as needed) the watch database at `path`."""
    path = Path(path)
    if not readonly:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if readonly:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                 check_same_thread=False, timeout=30)
        else:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across a process kill
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise WatchStoreError(f"cannot open the watch database {path}: {exc}",
                              hint="check the path, or move the damaged file away and start a new one") from exc
    if version > SCHEMA_VERSION:
        db.close()
        raise WatchStoreError(f"{path} has schema version {version}; this malseq knows up to {SCHEMA_VERSION}",
                              hint="upgrade malseq, or use another --db")
    if version < SCHEMA_VERSION and readonly:
        db.close()
        raise WatchStoreError(f"{path} is not a current watch database (schema {version})",
                              hint="run malseq watch on it once to create or migrate it")
    while version < SCHEMA_VERSION:
        db.execute("BEGIN IMMEDIATE")
        try:
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
            if current == version:  # another process may have migrated meanwhile
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            db.close()
            raise
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
    return WatchStore(path, db)
