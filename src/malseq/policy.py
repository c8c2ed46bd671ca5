"""Policy: what fails a run, read from a project's config file and overridden by command-line flags.

A project keeps its policy in `[tool.malseq]` of its pyproject.toml, or at the top level of a
`malseq.toml` (which wins when a folder has both). `load_policy` looks in the working directory
and its parents up to the repository root (the first folder holding `.git`) or the filesystem
root, and takes the first file that has one; `--config FILE` names it, `--no-config` ignores it.
Validation is strict: an unknown key or a value of the wrong type is a `ConfigError` (exit 2)
naming the key and the file, never a silently ignored setting.

Exit codes (`exit_code`, `diff_exit_code`) follow the policy's `fail_on`:

- `malicious`: a target judged malicious and not suppressed, or (audit) a failing integrity
  finding -> 1
- `suspicious`: a target scoring at or above `suspicious_score` (even below the verdict
  threshold) and not suppressed -> 1
- `errors`: a target that could not be scanned, was scanned only in part (a folder holding a
  project) or got no verdict -> 3
- `not-scanned`: entries that were listed but not scanned (git, path, URL entries of a lockfile;
  for audit also private indexes, unread lockfiles) -> 3; `--strict` adds it

1 takes precedence over 3. Without a `fail-on` anywhere the policy is `malicious` + `errors`
(what malseq always did); a `fail-on` without `errors` makes scan errors exit 0, so only choose
that when something else watches for them.
"""

from __future__ import annotations

import enum
import math
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from malseq.errors import ConfigError, UsageError
from malseq.model import OPERATING_POINTS

if TYPE_CHECKING:
    from malseq.diff.types import PackageDiff
    from malseq.intake.package import Package
    from malseq.scan import TargetResult

CONFIG_FILE = "malseq.toml"
PYPROJECT = "pyproject.toml"
IGNORED_REASON = "ignored by config (ignore-paths)"
# What decides how a package installs: never dropped by ignore-paths, so a pattern such as `*.py`
# cannot hide a setup.py or an npm manifest's install script from the verdict.
_INSTALL_MANIFESTS = frozenset({"package.json", "setup.py", "setup.cfg", "pyproject.toml", "PKG-INFO"})
_DOCS = "see docs/config.md"


class FailOn(enum.Enum):
    """What makes a run fail (`fail-on` in the config, `--fail-on` on the command line)."""

    MALICIOUS = "malicious"
    SUSPICIOUS = "suspicious"
    ERRORS = "errors"
    NOT_SCANNED = "not-scanned"


DEFAULT_FAIL_ON = frozenset({FailOn.MALICIOUS, FailOn.ERRORS})


@dataclass(frozen=True)
class Policy:
    """Settings from a config file or the command line; None means "not set here".

    `merge` lays one policy over another; `exit_code` reads the effective values (a None
    `fail_on` is `DEFAULT_FAIL_ON`).
    """

    operating_point: str | None = None
    fail_on: frozenset[FailOn] | None = None
    suspicious_score: float | None = None
    suppressions: Path | None = None  # absolute, or relative to the working directory
    ignore_paths: tuple[str, ...] | None = None  # gitignore-style patterns, relative to a folder target
    timeout: float | None = None
    offline: bool | None = None
    source: Path | None = None  # the config file these settings came from, if any

    @property
    def failing_on(self) -> frozenset[FailOn]:
        return DEFAULT_FAIL_ON if self.fail_on is None else self.fail_on

    def merge(self, override: Policy) -> Policy:
        """This policy with every setting `override` sets replaced (command-line flags over a file)."""
        changes = {f.name: getattr(override, f.name) for f in fields(override)
                   if f.name != "source" and getattr(override, f.name) is not None}
        return replace(self, **changes)

    def check(self) -> Policy:
        """Raise `UsageError` when the settings contradict each other; return self otherwise."""
        where = f" (from {self.source})" if self.source else ""
        if FailOn.SUSPICIOUS in self.failing_on and self.suspicious_score is None:
            raise UsageError(f"fail-on includes suspicious but no suspicious-score is set{where}",
                             hint="add suspicious-score = 0.5 to the config, or --suspicious-score 0.5")
        return self


# --- reading the config -------------------------------------------------------------------------

# key in the file -> (field, what it must be)
_KEYS = {
    "operating-point": ("operating_point", f"one of {', '.join(OPERATING_POINTS)}"),
    "fail-on": ("fail_on", f"a list of {', '.join(f.value for f in FailOn)}"),
    "suspicious-score": ("suspicious_score", "a number from 0 to 1"),
    "suppressions": ("suppressions", "a path (relative to the config file)"),
    "ignore-paths": ("ignore_paths", "a list of gitignore-style patterns"),
    "timeout": ("timeout", "a positive number of seconds"),
    "offline": ("offline", "true or false"),
}
_NOT_HERE = {
    "pypi-index-url": "registry locations come from pip's and npm's configuration (README, Registry locations)",
    "npm-registry": "registry locations come from pip's and npm's configuration (README, Registry locations)",
    "strict": 'add "not-scanned" to fail-on (what --strict does)',
}


def find_config(start_dir: Path) -> tuple[Path, Mapping[str, object]] | None:
    """The first config with malseq settings from `start_dir` upwards, and its table.

    Stops after the repository root (a folder holding `.git`) so a checkout never picks up a
    config from the folders around it.
    """
    folder = Path(os.path.abspath(start_dir))
    while True:
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate, _read_toml(candidate)
        candidate = folder / PYPROJECT
        if candidate.is_file():
            table = _tool_table(candidate, _read_toml(candidate))
            if table is not None:
                return candidate, table
        if (folder / ".git").exists() or folder.parent == folder:
            return None
        folder = folder.parent


def load_policy(start_dir: Path, explicit: Path | None = None) -> Policy:
    """The policy of the config file `explicit`, or of the first one found from `start_dir` upwards.

    No config anywhere gives the empty `Policy()` (every setting at its default). An explicit
    pyproject.toml must have a `[tool.malseq]` table. Raises `ConfigError` for anything malformed.
    """
    if explicit is not None:
        doc = _read_toml(explicit)
        if explicit.name != PYPROJECT:  # malseq.toml, or any file named with --config: settings at the top
            return parse_policy(doc, explicit)
        table = _tool_table(explicit, doc)
        if table is None:
            raise ConfigError(f"{explicit}: no [tool.malseq] table", hint=_DOCS)
        return parse_policy(table, explicit)
    found = find_config(start_dir)
    return parse_policy(found[1], found[0]) if found else Policy()


def parse_policy(table: Mapping[str, object], source: Path) -> Policy:
    """Validate a config table (strictly: unknown keys and wrong types are errors) into a `Policy`."""
    values: dict[str, object] = {}
    for key, value in table.items():
        if key not in _KEYS:
            hint = _NOT_HERE.get(key, f"known keys: {', '.join(_KEYS)}; {_DOCS}")
            raise ConfigError(f"{source}: unknown key {key!r} in the malseq config", hint=hint)
        name, expected = _KEYS[key]
        values[name] = _value(key, value, source, expected)
    return Policy(source=source, **values)  # type: ignore[arg-type]  # each value's type checked by _value


def _value(key: str, value: object, source: Path, expected: str) -> object:
    def bad() -> ConfigError:
        return ConfigError(f"{source}: {key} must be {expected}, not {value!r}", hint=_DOCS)

    if key == "operating-point":
        if value not in OPERATING_POINTS:
            raise bad()
        return value
    if key == "fail-on":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad()
        try:
            return parse_fail_on(value)
        except UsageError as exc:
            raise ConfigError(f"{source}: {key}: {exc.message}", hint=exc.hint) from exc
    if key in ("suspicious-score", "timeout"):
        # TOML booleans are not numbers here, even though Python's bool is an int
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise bad()
        if key == "timeout" and value <= 0 or key == "suspicious-score" and not 0 <= value <= 1:
            raise bad()
        return float(value)
    if key == "offline":
        if not isinstance(value, bool):
            raise bad()
        return value
    if key == "suppressions":
        if not isinstance(value, str) or not value:
            raise bad()
        return source.parent / value
    assert key == "ignore-paths"
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad()
    try:
        _spec(value)
    except ValueError as exc:
        raise ConfigError(f"{source}: {key}: {exc}", hint="patterns are gitignore-style: tests/fixtures/**") from exc
    return tuple(value)


def parse_fail_on(items: Iterable[str]) -> frozenset[FailOn]:
    """`malicious,suspicious` as a set; `none` (alone) is the empty set: never fail on findings."""
    words = [w.strip() for w in items if w.strip()]
    if words == ["none"]:
        return frozenset()
    out = set()
    for word in words:
        try:
            out.add(FailOn(word))
        except ValueError:
            raise UsageError(f"unknown fail-on value {word!r}",
                             hint=f"choose from {', '.join(f.value for f in FailOn)}, or none") from None
    return frozenset(out)


def _read_toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {str(path)!r} does not exist") from exc
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}", hint=_DOCS) from exc


def _tool_table(path: Path, doc: Mapping[str, object]) -> Mapping[str, object] | None:
    tool = doc.get("tool")
    if not isinstance(tool, Mapping) or "malseq" not in tool:
        return None
    table = tool["malseq"]
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path}: tool.malseq must be a table", hint=_DOCS)
    return table


# --- exit codes ---------------------------------------------------------------------------------

EXIT_CLEAN = 0
EXIT_FAILED = 1  # flagged
EXIT_NOT_JUDGED = 3  # errors, incomplete scans, no verdict, or (strict) entries not scanned


def failing(results: Sequence[TargetResult], policy: Policy) -> list[TargetResult]:
    """The results that make the run exit 1 under `policy`: flagged or (if asked) suspicious, not suppressed."""
    fail_on = policy.failing_on
    threshold = policy.suspicious_score if FailOn.SUSPICIOUS in fail_on else None

    def fails(r: TargetResult) -> bool:
        if FailOn.MALICIOUS in fail_on and r.verdict == "malicious":
            return True
        return threshold is not None and r.score is not None and r.score >= threshold

    return [r for r in results if r.suppressed is None and fails(r)]


def suspicious_reasons(results: Sequence[TargetResult], policy: Policy) -> list[str]:
    """One line per target that fails the run only through `suspicious` (scored at or above the
    suspicious score, below the verdict threshold): the report says BENIGN, so the exit code
    must be explained."""
    return [f"{r.target}: score {r.score:.4f} >= suspicious-score {policy.suspicious_score:g} (fail-on suspicious)"
            for r in failing(results, policy) if r.verdict != "malicious" and r.score is not None
            and policy.suspicious_score is not None]


def not_judged(results: Sequence[TargetResult]) -> list[TargetResult]:
    """Results without a complete judgement: scan errors, project folders scanned in part, no verdict."""
    return [r for r in results if r.error is not None or r.notices or r.unscored is not None]


def exit_code(results: Sequence[TargetResult], policy: Policy, not_scanned: int = 0, findings: int = 0,
              unread: int = 0) -> int:
    """The exit code of `malseq scan` and `malseq audit` for `results` under `policy`.

    `not_scanned` counts the listed entries that were not scanned (a lockfile's git, path and URL
    entries; for audit also private indexes and unread lockfiles); they fail the run only with
    `not-scanned` in fail-on. `findings` counts audit's failing integrity findings (a lockfile hash
    mismatch, an installed package that differs from its release): tampering, failed under `malicious`.
    `unread` counts audit's lockfiles that were found but could not be parsed (malformed, truncated, merge
    conflict markers): nothing they pin was audited, so they fail under `errors` like a target that could
    not be scanned (a pre-commit hook given a broken lockfile must not pass).
    """
    fail_on = policy.failing_on
    if failing(results, policy) or findings and FailOn.MALICIOUS in fail_on:
        return EXIT_FAILED
    if FailOn.ERRORS in fail_on and (not_judged(results) or unread):
        return EXIT_NOT_JUDGED
    if FailOn.NOT_SCANNED in fail_on and not_scanned:
        return EXIT_NOT_JUDGED
    return EXIT_CLEAN


def diff_exit_code(diff: PackageDiff, policy: Policy) -> int:
    """The exit code of `malseq diff` under `policy`.

    `malicious`: the change is judged malicious (`PackageDiff.malicious`). `suspicious`: NEW scores at
    or above `suspicious_score` and the change adds install- or import-time transmission or
    execution (the same added steps the malicious judgement needs). `errors`: a side could not be
    scanned or got no verdict.
    """
    fail_on = policy.failing_on
    if FailOn.MALICIOUS in fail_on and diff.malicious:
        return EXIT_FAILED
    score = diff.new.score
    if (FailOn.SUSPICIOUS in fail_on and diff.error is None and diff.decisive and score is not None
            and policy.suspicious_score is not None and score >= policy.suspicious_score):
        return EXIT_FAILED
    unjudged = diff.error is not None or any(r.unscored for r in (diff.old, diff.new))
    if FailOn.ERRORS in fail_on and unjudged:
        return EXIT_NOT_JUDGED
    return EXIT_CLEAN


# --- ignore-paths -------------------------------------------------------------------------------

def _spec(patterns: Sequence[str]) -> object:
    import pathspec

    try:
        return pathspec.GitIgnoreSpec.from_lines(patterns)
    except Exception as exc:  # noqa: BLE001  # pathspec's pattern errors share no public base class
        raise ValueError(f"invalid pattern: {exc}") from exc


def _install_manifest(path: str) -> bool:
    top = path.split("/", 1)[0]
    return (path in _INSTALL_MANIFESTS or path.endswith(".pth") or "/" in path and (
        top.endswith(".dist-info") or top.endswith(".egg-info")))


def drop_ignored(package: Package, patterns: Sequence[str]) -> Package:
    """`package` (read from a folder) without the files `patterns` match, each listed as skipped.

    The files that decide how a package installs (package.json, setup.py, setup.cfg,
    pyproject.toml, PKG-INFO, .pth files, *.dist-info / *.egg-info metadata) are always kept.
    """
    import pathspec

    from malseq.intake.package import SkippedMember

    spec = _spec(patterns)
    assert isinstance(spec, pathspec.GitIgnoreSpec)
    kept = []
    ignored = []
    for f in package.files:
        if spec.match_file(f.path) and not _install_manifest(f.path):
            ignored.append(SkippedMember(f.path, IGNORED_REASON))
        else:
            kept.append(f)
    if not ignored:
        return package
    return replace(package, files=tuple(kept), skipped=package.skipped + tuple(ignored))
