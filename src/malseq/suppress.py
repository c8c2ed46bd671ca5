"""Suppressions: a reviewed verdict that should not fail the next CI run.

A suppression names the exact archive (its sha256, as in the JSON report's `package.origin.sha256`
and the SARIF `archiveSha256/v1` fingerprint) and says why. A new upload under the same name
and version is a different archive and is judged afresh; that is the point of binding to the
hash rather than to a name.

File format (TOML)::

    [[suppress]]
    sha256 = "9f2c...e1"            # required: 64 hex digits
    reason = "reviewed 2026-11-20: the install hook only compiles a C extension"   # required
    package = "pypi:example==1.2.3"  # optional, for the reader; not used for matching

A suppressed target keeps its score and verdict; the reports mark it suppressed (SARIF:
`suppressions` with kind "external") and it no longer makes the exit code 1.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from malseq.errors import UsageError

if TYPE_CHECKING:
    from malseq.scan import TargetResult

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Suppression:
    sha256: str
    reason: str
    package: str = ""


def load_suppressions(path: Path) -> dict[str, Suppression]:
    """The suppressions in a TOML file, by archive sha256. Raises `UsageError` on any malformed entry."""
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"suppressions file {str(path)!r} does not exist") from exc
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"cannot read suppressions file {str(path)!r}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"suppressions file {str(path)!r} is not valid TOML: {exc}",
                         hint="see the format in docs/output.md (Suppressions)") from exc
    entries = doc.get("suppress", [])
    unknown = set(doc) - {"suppress"}
    if unknown or not isinstance(entries, list):
        raise UsageError(f"suppressions file {str(path)!r}: expected only [[suppress]] tables",
                         hint="see the format in docs/output.md (Suppressions)")
    out: dict[str, Suppression] = {}
    for n, entry in enumerate(entries, 1):
        out_entry = _entry(entry, f"{path}, entry {n}")
        out[out_entry.sha256] = out_entry
    return out


def _entry(entry: object, where: str) -> Suppression:
    if not isinstance(entry, Mapping):
        raise UsageError(f"{where}: expected a table")
    extra = set(entry) - {"sha256", "reason", "package"}
    if extra:
        raise UsageError(f"{where}: unknown keys {', '.join(sorted(extra))}",
                         hint="a suppression has sha256, reason and optionally package")
    sha = str(entry.get("sha256", "")).strip().lower()
    if not _SHA256.match(sha):
        raise UsageError(f"{where}: sha256 must be the archive's 64-hex-digit SHA-256",
                         hint="copy package.origin.sha256 from `malseq scan --format json`")
    reason = str(entry.get("reason", "")).strip()
    if not reason:
        raise UsageError(f"{where}: a suppression needs a reason", hint="say who reviewed it and why it is benign")
    return Suppression(sha, reason, str(entry.get("package", "")))


def apply_suppressions(
    results: Sequence[TargetResult], suppressions: Mapping[str, Suppression]
) -> list[TargetResult]:
    """The results with `suppressed` set (to the reason) where the scanned archive's sha256 is listed."""
    out = []
    for r in results:
        sha = r.package.origin.sha256 if r.package is not None else None
        hit = suppressions.get(sha) if sha else None
        out.append(replace(r, suppressed=hit.reason) if hit else r)
    return out


def flagged(results: Sequence[TargetResult]) -> list[TargetResult]:
    """Targets whose verdict is malicious and that are not suppressed: what makes exit code 1."""
    return [r for r in results if r.verdict == "malicious" and r.suppressed is None]
