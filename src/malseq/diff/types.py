"""Types of `malseq diff`: what one release adds to another, as frozen values (no dicts)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from malseq.features.types import BehaviourEvent, FileAnalysis
from malseq.intake.package import Ecosystem
from malseq.scan import ScanError, TargetResult
from malseq.sequence.types import Stage


class FileChange(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"  # same path, different content
    RENAMED = "renamed"  # same content (similarity 1.0) or near-identical content under a new path


class Side(enum.Enum):
    OLD = "old"
    NEW = "new"


@dataclass(frozen=True)
class FileFacts:
    """One file of a side, without its bytes: what the comparison needs."""

    path: str
    sha256: str
    size: int
    is_binary: bool
    language: str | None
    # hashes of the file's distinct non-blank lines (text files up to a size bound), for near renames
    line_hashes: frozenset[int]
    # this side's analysis of the file stopped early (its work budget ran out, or the parse read only a
    # head and a tail): behaviours in the part not analysed are missing from this side
    analysis_cut: bool = False
    # when `analysis_cut`: hashes of all the file's lines (and of the `;`-separated pieces of long lines),
    # so the other side can tell code this side holds but did not analyse from code it does not hold
    cut_line_hashes: frozenset[int] = frozenset()
    # (line, column, hash of the line or, on a long line, of the piece) for each place an event of this
    # side's analysis of the file sits; what `cut_line_hashes` of the other side is looked up with
    event_lines: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True)
class Dependency:
    name: str  # normalised: npm names as written, PyPI names canonicalised (PEP 503)
    spec: str  # the version range as declared ("^1.2.0", ">=2,<3", "" when none)
    source: str  # the file it was read from ("package.json", "PKG-INFO", "pyproject.toml", ...)


@dataclass(frozen=True)
class Destination:
    """A network destination named in a source file: a URL's host, a host name or an IP address."""

    kind: str  # "url", "host" or "ip"
    host: str  # what destinations are compared by: the host name (lower case) or the address
    value: str  # as found (a URL is cut at 200 characters)
    file: str
    line: int


@dataclass(frozen=True)
class SideScan:
    """One side of a diff, scanned: the normal scan result plus the facts the comparison needs."""

    result: TargetResult
    ecosystem: Ecosystem
    files: tuple[FileFacts, ...]
    lifecycle_scripts: tuple[tuple[str, str], ...]  # npm scripts a package manager runs by itself
    dependencies: tuple[Dependency, ...]
    destinations: tuple[Destination, ...]
    reused_analyses: int = 0  # source files whose analysis came from the other side (same path and content)

    @property
    def ok(self) -> bool:
        return self.result.error is None


@dataclass(frozen=True)
class ReusableAnalysis:
    """A file analysis the other side may reuse: valid for exactly this path and content and, for a
    Python file, this set of package paths (`context`; "" for other languages)."""

    path: str
    sha256: str
    analysis: FileAnalysis
    context: str = ""


@dataclass(frozen=True)
class AnalysisSeed:
    """A scan's per-file analyses of one archive, for a diff that reads the same archive again
    (`scan --against-previous`, `--lookalikes`): used only when the archive's sha256 is the same."""

    archive_sha256: str
    files: tuple[FileAnalysis, ...]


@dataclass(frozen=True)
class FileDelta:
    path: str  # the path in NEW (in OLD for a removed file)
    change: FileChange
    old_path: str | None  # the path in OLD (renamed, changed, removed)
    old_sha256: str | None
    new_sha256: str | None
    size: int  # bytes in NEW (in OLD for a removed file)
    is_binary: bool
    similarity: float = 1.0  # for renames: 1.0 when the content is identical, else the share of shared lines


@dataclass(frozen=True)
class BehaviourDelta:
    """A behaviour NEW has and OLD has not (or the reverse), with its place in that side's sequence."""

    event: BehaviourEvent
    dimension: str
    stage: Stage | None  # the stage of the first sequence step holding it; None when no step does
    step: int | None  # 1-based position of that step in the side's execution-ordered sequence
    entry: str | None  # the entry point label of that step
    # an added behaviour OLD had too, but at a later stage or unreached: `old_stage` is where OLD ran it
    # (None: no OLD step held it)
    old_stage: Stage | None = None
    moved: bool = False


@dataclass(frozen=True)
class CutFile:
    """A changed, renamed, added or removed file whose analysis was cut on at least one side.

    Behaviours in the part of a file a side did not analyse are unseen there. A behaviour of NEW whose
    line OLD's file holds, where OLD's analysis was cut, is not counted as added (`in_old_bytes` says
    how many were left out); likewise for removed behaviours and NEW's cut (`in_new_bytes`)."""

    path: str  # in NEW (in OLD for a removed file)
    old_path: str | None  # in OLD (None for an added file)
    old_cut: bool
    new_cut: bool
    in_old_bytes: int = 0  # NEW's behaviours not counted as added: their line is in OLD's file
    in_new_bytes: int = 0  # OLD's behaviours not counted as removed: their line is in NEW's file


@dataclass(frozen=True)
class AddedStep:
    """A step of NEW's sequence that holds at least one added behaviour."""

    index: int  # 1-based position in NEW's sequence
    stage: Stage
    behaviour: str
    entry: str
    file: str
    line: int
    count: int


@dataclass(frozen=True)
class HookChange:
    kind: str  # "npm_script", "setup_command_override" or "pth_file"
    name: str  # the script name, the override's snippet, or the .pth path
    change: str  # "added", "changed" or "removed"
    old: str | None  # the script command / the file's sha256 in OLD
    new: str | None
    file: str
    line: int


@dataclass(frozen=True)
class DependencyChange:
    name: str
    change: str  # "added", "changed" or "removed"
    old_spec: str | None
    new_spec: str | None
    source: str


@dataclass(frozen=True)
class DiffError:
    side: Side
    error: ScanError


# a package copies another when at least this share of its compared files is byte-identical to files of the other
COPY_SHARE = 0.5


@dataclass(frozen=True)
class NameMatch:
    """A package name that imitates a popular one (`malseq.diff.lookalike.close_names`)."""

    popular: str  # the imitated name, normalised
    reason: str  # "edit distance 1", "separators swapped or dropped", "prefix 'py' added", ...
    distance: int  # edits, 1 for the rule-based matches
    rank: int  # the popular name's place in the shipped list (1: the most downloaded; 0: not from the list)


@dataclass(frozen=True)
class CopyShare:
    """How much of a package copies another: files compared by content (metadata files left out)."""

    files: int  # the package's compared files
    identical: int  # of those, byte-identical to a file of the other package
    same_path: int  # of those, at a path the other package has (its own name replaced by the other's)
    original_files: int  # the other package's compared files

    @property
    def share(self) -> float:
        return self.identical / self.files if self.files else 0.0

    @property
    def is_copy(self) -> bool:
        return self.identical > 0 and self.share >= COPY_SHARE


@dataclass(frozen=True)
class Lookalike:
    """In a diff whose two sides have different names: NEW named like OLD, and how much it copies."""

    match: NameMatch | None  # None: the names differ but by none of the look-alike rules
    share: CopyShare


@dataclass(frozen=True)
class DeltaVerdict:
    """The verdict on the added steps: the delta model's (`malseq.diff.delta_model`, trained on deltas) when the
    model folder has one, else the sequence model's score of the delta text (`malseq.diff.delta`)."""

    text: str  # the model input: the marker word and the added steps, rendered like a package's sequence
    steps: int  # steps of NEW's sequence that hold an added behaviour
    score: float | None  # None: nothing added, or no usable model (`note` says which)
    verdict: str | None  # "malicious" or "benign" at the operating point's threshold for whole packages
    components: tuple[tuple[str, float], ...] = ()
    note: str | None = None
    threshold: float | None = None  # what `score` was compared with (NEW's ecosystem, the operating point)
    operating_point: str | None = None
    sequence_score: float | None = None  # the sequence model's score of `text` (also `score` when it decides)
    decided_by: str = "sequence model"  # which model's score `score` is: "sequence model" or "delta model"
    model: str | None = None  # the delta model's file when it decided


@dataclass(frozen=True)
class PackageDiff:
    """What NEW adds to OLD. When a side could not be scanned, `error` says which and the lists are empty."""

    old: TargetResult
    new: TargetResult
    error: DiffError | None
    files: tuple[FileDelta, ...] = ()  # added, removed, changed and renamed files, by path
    unchanged_files: int = 0
    added_behaviours: tuple[BehaviourDelta, ...] = ()  # in NEW's execution order: install first
    removed_behaviours: tuple[BehaviourDelta, ...] = ()  # in OLD's execution order
    added_steps: tuple[AddedStep, ...] = ()
    install_hooks: tuple[HookChange, ...] = ()
    dependencies: tuple[DependencyChange, ...] = ()
    binaries_added: tuple[str, ...] = ()
    destinations_added: tuple[Destination, ...] = ()
    # the added behaviours that make the verdict: install- or import-time transmission or execution
    decisive: tuple[BehaviourDelta, ...] = ()
    malicious: bool = False  # NEW flagged by the model and `decisive` not empty (see `judge`)
    reused_analyses: int = 0
    seconds: float = 0.0
    delta: DeltaVerdict | None = None  # the added steps scored alone (None when the diff was not scored)
    lookalike: Lookalike | None = None  # set when OLD and NEW have different package names
    # files whose analysis was cut by its work budget on a side: what added/removed may not see
    cut_files: tuple[CutFile, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.files or self.added_behaviours or self.removed_behaviours or self.install_hooks
                    or self.dependencies or self.binaries_added or self.destinations_added)
