"""One row of the corpus: an archive (or a release still to download) with its label."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

MALICIOUS = 1
BENIGN = 0

# Strata for false-positive rates; malicious samples carry "malicious".
STRATUM_MALICIOUS = "malicious"


@dataclass(frozen=True)
class Sample:
    """A labelled package.

    `key` identifies the sample across runs: the archive's sha256 when the archive is at
    hand, otherwise `ecosystem:name@version` for a registry release not downloaded yet.
    """

    ecosystem: str  # "pypi" or "npm"
    name: str
    version: str
    label: int  # 1 malicious, 0 benign
    source: str  # dataset the sample came from ("malicious-pypi", "benign-npm", "datadog", ...)
    stratum: str  # "malicious", "popular", "long-tail", or a labels-file value
    path: str = ""  # local archive path ("" until downloaded)
    sha256: str = ""
    added: str = ""  # ISO date the sample entered its collection, "" when unknown
    zip_password: str = ""  # e.g. "infected" for the DataDog layout
    note: str = ""  # why a sample is unusable (download failure...), "" when fine

    @property
    def key(self) -> str:
        return self.sha256 or f"{self.ecosystem}:{self.name}@{self.version}"

    @property
    def registry_target(self) -> str:
        if self.ecosystem == "npm":
            return f"npm:{self.name}@{self.version}"
        return f"pypi:{self.name}=={self.version}"

    def with_archive(self, path: str, sha256: str) -> Sample:
        return replace(self, path=path, sha256=sha256, note="")


_FIELDS = [f.name for f in fields(Sample)]


def write_samples(path: Path, samples: Iterable[Sample]) -> None:
    """Write samples as TSV (atomic rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=_FIELDS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for s in samples:
            writer.writerow({k: _clean(v) for k, v in asdict(s).items()})
    tmp.replace(path)


def _clean(value: object) -> object:
    if isinstance(value, str):
        return value.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return value


def read_samples(path: Path) -> list[Sample]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        out = []
        for row in reader:
            values = {k: row.get(k) or "" for k in _FIELDS}
            out.append(Sample(**{**values, "label": int(values["label"] or 0)}))  # type: ignore[arg-type]
        return out
