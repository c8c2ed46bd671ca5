"""Typed errors raised by the library; only `_cli.py` turns them into exit codes.

Every error carries a message saying what went wrong and, where there is one, a
hint saying what the user can do about it (sigstore-python style).
"""

from __future__ import annotations


class MalseqError(Exception):
    """Base class of every error malseq raises on purpose."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(MalseqError):
    """The user asked for something malformed (exit code 2)."""


class TargetSyntaxError(UsageError):
    """A target string could not be understood."""


class LockfileSyntaxError(UsageError):
    """A lockfile its format's parser rejects; `line` (1-based) is where, when the parser says."""

    def __init__(self, message: str, hint: str | None = None, line: int | None = None) -> None:
        super().__init__(message, hint)
        self.line = line


class IntakeError(MalseqError):
    """A target could not be turned into a package (exit code 3)."""


class ArchiveFormatError(IntakeError):
    """The bytes are not an archive format malseq reads."""


class CorruptArchiveError(IntakeError):
    """The archive is truncated or damaged."""


class ArchiveLimitError(IntakeError):
    """The archive exceeds a safety limit (size, count, ratio, nesting): a possible bomb."""


class ArchivePasswordError(IntakeError):
    """The archive is encrypted and no password, or a wrong one, was given."""


class NothingToScanError(IntakeError):
    """The target holds no package: no manifest and no source file malseq analyses (never judged benign)."""


class TimeBudgetExceeded(IntakeError):
    """A package used up its time budget."""


class RegistryError(IntakeError):
    """A registry could not be reached or answered something unusable."""


class NotFoundError(RegistryError):
    """The package or the requested version does not exist on the registry."""


class HashMismatchError(RegistryError):
    """A downloaded file does not match the hash the registry published."""


class ConfigurationError(MalseqError):
    """malseq could not work out a setting (for example a registry URL)."""


class ModelNotAvailableError(MalseqError):
    """No trained model is installed, or its files are incomplete; scans go on without a score."""


class ConfigError(UsageError):
    """A malseq config file (`[tool.malseq]` or malseq.toml) is malformed: an unknown key or a wrong type (exit 2)."""


class ExtraNotInstalledError(UsageError):
    """An option needs an optional extra of malseq that is not installed (exit 2); the hint names it."""
