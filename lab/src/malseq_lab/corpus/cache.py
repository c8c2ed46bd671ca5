"""The analysis cache: behaviours, sequences and fingerprints per archive, in SQLite.

Rows are keyed by (archive sha256, extractor version), so training and evaluation never
re-parse a package the current code has already seen. The extractor version includes
`malseq.analysis.analysis_key()`, a digest of the source that produces the model input, so any
change there misses the cache (without deleting the old rows) and nobody has to bump a constant.
`sequence_text` is the model input exactly as a scan scores it (`malseq.analysis.Analysed.text`).
"""

from __future__ import annotations

import json
import sqlite3
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from malseq_lab.corpus.grouping import FINGERPRINT_VERSION, Fingerprint

SCHEMA_VERSION = 1


def extractor_version() -> str:
    import malseq
    from malseq.analysis import analysis_key

    return f"{malseq.__version__}+analysis.{analysis_key()}+fp.{FINGERPRINT_VERSION}"


@dataclass(frozen=True)
class CachedAnalysis:
    sha256: str
    extractor_version: str
    status: str  # "ok" or "error"
    error_kind: str = ""
    error_message: str = ""
    ecosystem: str = ""
    name: str = ""
    version: str = ""
    files: int = 0
    total_bytes: int = 0
    partial: bool = False  # some file's analysis ran out of budget
    events: tuple[dict[str, object], ...] = ()  # {"behaviour", "file", "line", "scope"}
    sequence_ids: tuple[str, ...] = ()
    sequence_text: str = ""
    sequencer: str = ""  # what made the sequence (`malseq.analysis.analyse` for every row this code writes)
    fingerprint: Fingerprint | None = None
    seconds: float = 0.0
    created: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def behaviour_ids(self) -> list[str]:
        return [str(e["behaviour"]) for e in self.events]


_COLUMNS = (
    "sha256",
    "extractor_version",
    "status",
    "error_kind",
    "error_message",
    "ecosystem",
    "name",
    "version",
    "files",
    "total_bytes",
    "partial",
    "events",
    "sequence_ids",
    "sequence_text",
    "sequencer",
    "fp_exact",
    "fp_minhash",
    "fp_tokens",
    "seconds",
    "created",
)


def _pack_minhash(values: tuple[int, ...]) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def _unpack_minhash(blob: bytes | None) -> tuple[int, ...]:
    if not blob:
        return ()
    return struct.unpack(f"<{len(blob) // 4}I", blob)


class AnalysisCache:
    """A SQLite file; safe to open from several processes (writes are short transactions)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        """`readonly`: open an existing cache for reading only (an export from a work dir another
        process may be building: no row, table or meta value is written; SQLite may still create
        the -wal/-shm sidecar files, as any reader of a WAL database does)."""
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise FileNotFoundError(f"no analysis cache at {self.path}")
            self._db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=60)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS analyses (
                sha256 TEXT NOT NULL, extractor_version TEXT NOT NULL, status TEXT NOT NULL,
                error_kind TEXT, error_message TEXT, ecosystem TEXT, name TEXT, version TEXT,
                files INTEGER, total_bytes INTEGER, partial INTEGER, events TEXT,
                sequence_ids TEXT, sequence_text TEXT, sequencer TEXT,
                fp_exact TEXT, fp_minhash BLOB, fp_tokens INTEGER, seconds REAL, created REAL,
                PRIMARY KEY (sha256, extractor_version))"""
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AnalysisCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put_many(self, rows: Iterable[CachedAnalysis]) -> None:
        values = [
            (
                r.sha256,
                r.extractor_version,
                r.status,
                r.error_kind,
                r.error_message,
                r.ecosystem,
                r.name,
                r.version,
                r.files,
                r.total_bytes,
                int(r.partial),
                json.dumps(list(r.events), separators=(",", ":")),
                json.dumps(list(r.sequence_ids)),
                r.sequence_text,
                r.sequencer,
                r.fingerprint.exact if r.fingerprint else None,
                _pack_minhash(r.fingerprint.minhash) if r.fingerprint else None,
                r.fingerprint.tokens if r.fingerprint else None,
                r.seconds,
                r.created,
            )
            for r in rows
        ]
        placeholders = ",".join("?" * len(_COLUMNS))
        self._db.executemany(f"INSERT OR REPLACE INTO analyses ({','.join(_COLUMNS)}) VALUES ({placeholders})", values)
        self._db.commit()

    def put(self, row: CachedAnalysis) -> None:
        self.put_many([row])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        self._db.commit()

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _row(values: tuple[Any, ...]) -> CachedAnalysis:
        d: dict[str, Any] = dict(zip(_COLUMNS, values, strict=True))
        fp = None
        if d["fp_exact"] is not None:
            fp = Fingerprint(str(d["fp_exact"]), _unpack_minhash(d["fp_minhash"]), int(d["fp_tokens"] or 0))
        return CachedAnalysis(
            sha256=str(d["sha256"]),
            extractor_version=str(d["extractor_version"]),
            status=str(d["status"]),
            error_kind=str(d["error_kind"] or ""),
            error_message=str(d["error_message"] or ""),
            ecosystem=str(d["ecosystem"] or ""),
            name=str(d["name"] or ""),
            version=str(d["version"] or ""),
            files=int(d["files"] or 0),
            total_bytes=int(d["total_bytes"] or 0),
            partial=bool(d["partial"]),
            events=tuple(json.loads(str(d["events"] or "[]"))),
            sequence_ids=tuple(json.loads(str(d["sequence_ids"] or "[]"))),
            sequence_text=str(d["sequence_text"] or ""),
            sequencer=str(d["sequencer"] or ""),
            fingerprint=fp,
            seconds=float(d["seconds"] or 0.0),
            created=float(d["created"] or 0.0),
        )

    def get(self, sha256: str, version: str | None = None) -> CachedAnalysis | None:
        version = version or extractor_version()
        cur = self._db.execute(
            f"SELECT {','.join(_COLUMNS)} FROM analyses WHERE sha256=? AND extractor_version=?", (sha256, version)
        )
        row = cur.fetchone()
        return self._row(row) if row else None

    def get_many(self, sha256s: Iterable[str], version: str | None = None) -> dict[str, CachedAnalysis]:
        version = version or extractor_version()
        wanted = list(dict.fromkeys(sha256s))
        out: dict[str, CachedAnalysis] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            cur = self._db.execute(
                f"SELECT {','.join(_COLUMNS)} FROM analyses WHERE extractor_version=? AND sha256 IN "
                f"({','.join('?' * len(chunk))})",
                (version, *chunk),
            )
            for row in cur:
                r = self._row(row)
                out[r.sha256] = r
        return out

    def keys(self, version: str | None = None) -> set[str]:
        version = version or extractor_version()
        return {r[0] for r in self._db.execute("SELECT sha256 FROM analyses WHERE extractor_version=?", (version,))}

    def iter_all(self, version: str | None = None) -> Iterator[CachedAnalysis]:
        version = version or extractor_version()
        cur = self._db.execute(f"SELECT {','.join(_COLUMNS)} FROM analyses WHERE extractor_version=?", (version,))
        for row in cur:
            yield self._row(row)

    def count(self, version: str | None = None) -> int:
        version = version or extractor_version()
        return int(
            self._db.execute("SELECT COUNT(*) FROM analyses WHERE extractor_version=?", (version,)).fetchone()[0]
        )
