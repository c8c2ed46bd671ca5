"""Loaders for the corpus layouts malseq knows.

- the shared layout: `<folder>/manifest.tsv` (path, name, version, sha256, and `added` or
  `source`) with archives at `<folder>/<path>`;
- DataDog's malicious-software-packages-dataset:
  `samples/<ecosystem>/<malicious_intent|compromised_lib>/<name>/<version>/*.zip`,
  ZipCrypto-encrypted with the password `infected`;
- benign lists: TSV with `ecosystem, name, version, stratum`, releases to download;
- a plain folder of archives with a labels file (TSV: `path`, `label`, and optionally
  `ecosystem`, `name`, `version`, `stratum`, `added`).

Loaders only list files and read manifests; they never open the archives' contents.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

from malseq_lab.corpus.records import BENIGN, MALICIOUS, STRATUM_MALICIOUS, Sample

DATADOG_PASSWORD = "infected"
_DATE_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2})")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            {(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(fh, delimiter="\t")
        ]


def _ecosystem_from_name(text: str) -> str:
    low = text.lower()
    if "npm" in low:
        return "npm"
    if "pypi" in low or "python" in low:
        return "pypi"
    return ""


def load_shared_manifest(folder: Path, ecosystem: str | None = None, label: int = MALICIOUS) -> list[Sample]:
    """The shared layout: `manifest.tsv` plus archives. Missing archives are skipped."""
    folder = Path(folder)
    eco = ecosystem or _ecosystem_from_name(folder.name)
    out: list[Sample] = []
    for row in _read_tsv(folder / "manifest.tsv"):
        rel = row.get("path", "")
        if not rel:
            continue
        archive = folder / rel
        if not archive.is_file():
            continue
        out.append(
            Sample(
                ecosystem=eco,
                name=row.get("name", ""),
                version=row.get("version", ""),
                label=label,
                source=row.get("source") or folder.name,
                stratum=STRATUM_MALICIOUS if label == MALICIOUS else row.get("stratum", "unknown"),
                path=str(archive),
                sha256=(row.get("sha256") or "").lower() or sha256_file(archive),
                added=row.get("added", ""),
            )
        )
    return out


def load_datadog(root: Path, password: str = DATADOG_PASSWORD) -> list[Sample]:
    """DataDog's layout. `root` is the repository root or its `samples/` folder."""
    root = Path(root)
    samples_dir = root / "samples" if (root / "samples").is_dir() else root
    out: list[Sample] = []
    for eco_dir in sorted(p for p in samples_dir.iterdir() if p.is_dir()):
        eco = _ecosystem_from_name(eco_dir.name) or eco_dir.name.lower()
        for kind_dir in sorted(p for p in eco_dir.iterdir() if p.is_dir()):
            for archive in sorted(kind_dir.rglob("*.zip")):
                parts = archive.relative_to(kind_dir).parts
                if len(parts) < 3:
                    continue
                version = parts[-2]
                name = "/".join(parts[:-2])
                match = _DATE_PREFIX.match(archive.name)
                out.append(
                    Sample(
                        ecosystem=eco,
                        name=name,
                        version=version,
                        label=MALICIOUS,
                        source=f"datadog:{kind_dir.name}",
                        stratum=STRATUM_MALICIOUS,
                        path=str(archive),
                        sha256=sha256_file(archive),
                        added=match.group(1) if match else "",
                        zip_password=password,
                    )
                )
    return out


def load_benign_list(tsv: Path) -> list[Sample]:
    """`ecosystem, name, version, stratum` rows: releases to download (no archive yet)."""
    tsv = Path(tsv)
    out = []
    for row in _read_tsv(tsv):
        if not row.get("name") or not row.get("version"):
            continue
        eco = (row.get("ecosystem") or _ecosystem_from_name(tsv.name)).lower()
        out.append(
            Sample(
                ecosystem=eco,
                name=row["name"],
                version=row["version"],
                label=BENIGN,
                source=tsv.stem,
                stratum=row.get("stratum") or "unknown",
            )
        )
    return out


_LABELS = {"1": MALICIOUS, "malicious": MALICIOUS, "mal": MALICIOUS, "0": BENIGN, "benign": BENIGN}


def load_labelled_folder(folder: Path, labels: Path | None = None, ecosystem: str = "") -> list[Sample]:
    """A folder of archives with a labels file (default `<folder>/labels.tsv`).

    Columns: `path` (relative to the folder) and `label` (1/0 or malicious/benign); optional
    `ecosystem`, `name`, `version`, `stratum`, `added`, `zip_password`.
    """
    folder = Path(folder)
    labels = Path(labels) if labels else folder / "labels.tsv"
    out = []
    for row in _read_tsv(labels):
        archive = folder / row.get("path", "")
        label_text = row.get("label", "").lower()
        if not row.get("path") or not archive.is_file() or label_text not in _LABELS:
            continue
        label = _LABELS[label_text]
        out.append(
            Sample(
                ecosystem=(row.get("ecosystem") or ecosystem).lower(),
                name=row.get("name") or archive.name,
                version=row.get("version", ""),
                label=label,
                source=row.get("source") or folder.name,
                stratum=row.get("stratum") or (STRATUM_MALICIOUS if label == MALICIOUS else "unknown"),
                path=str(archive),
                sha256=sha256_file(archive),
                added=row.get("added", ""),
                zip_password=row.get("zip_password", ""),
            )
        )
    return out
