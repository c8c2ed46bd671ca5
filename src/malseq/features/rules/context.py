"""What a detection rule sees: one call (or attribute read), language-neutral.

An engine (features/python.py, features/javascript.py) builds a `CallContext` at every call
it resolves and hands it to the registry. The context carries what every rule needs up
front (the resolved dotted callee, the argument count, whether the callee is a method
access) and a `CallFacts` object through which a rule asks for anything else: folded
argument values, keyword values, the receiver. Facts are computed on demand because most
calls match no rule, and folding every argument of every call would cost more than the
whole rule pass.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property

from malseq.intake.package import Language


class ArgKind(enum.Enum):
    """Syntax of an argument, as far as rules care (both grammars map onto these)."""

    STRING = "string"  # a plain string literal
    TEMPLATE = "template"  # JS template string
    CONCAT = "concat"  # `a + b`
    NUMBER = "number"  # an integer (Python) or number (JS) literal
    ARRAY = "array"  # list / tuple / JS array literal
    OBJECT = "object"  # JS object literal
    IDENTIFIER = "identifier"
    CALL = "call"
    SPREAD = "spread"  # JS `...x`
    OTHER = "other"
    MISSING = "missing"  # no such argument


class CallFacts:
    """On-demand facts about one call site; every answer defaults to "unknown".

    The defaults are what a rule sees when the engine only has the callee's name (the
    Python token pass over text the parser could not structure): no arguments, nothing
    foldable, nothing imported. Engines subclass this and answer from the syntax tree.
    """

    def arg_kind(self, index: int) -> ArgKind:
        return ArgKind.MISSING

    def arg_text(self, index: int) -> str | None:
        """The folded string value of positional argument `index`, or None."""
        return None

    def arg_loose(self, index: int) -> str | None:
        """Folded with a placeholder for unknown parts (`curl ${u} | sh` -> "curl x | sh")."""
        return None

    def arg_source(self, index: int, limit: int | None = 400) -> str:
        """The argument's source text (at most `limit` characters; None: all of it)."""
        return ""

    def arg_name(self, index: int) -> str | None:
        """The dotted name an argument refers to after name resolution (`os` for `getattr(os, x)`)."""
        return None

    def arg_number(self, index: int) -> int | None:
        """The integer value of a number literal argument, or None."""
        return None

    def arg_items(self, index: int) -> tuple[str | None, ...] | None:
        """Folded elements of a list/array literal argument (None for an unfoldable element)."""
        return None

    def arg_numbers(self, index: int) -> int:
        """How many elements of an array literal argument are number literals."""
        return 0

    def char_codes(self) -> str | None:
        """The text the arguments spell as character codes (`String.fromCharCode(104, 105)`), or None."""
        return None

    def keyword_text(self, name: str) -> str | None:
        """Folded value of keyword argument `name` (Python), or None."""
        return None

    def keyword_source(self, name: str, limit: int = 400) -> str | None:
        """Source text of keyword argument `name`, or None when the call does not pass it."""
        return None

    def call_source(self, limit: int) -> str:
        """The call's own source text (at most `limit` characters)."""
        return ""

    def receiver_kind(self) -> ArgKind:
        """Syntax of the object a method is called on (`x` in `x.f()`)."""
        return ArgKind.MISSING

    def receiver_source(self, limit: int | None = 300) -> str:
        return ""

    def receiver_numbers(self) -> int:
        """How many elements of an array literal receiver are number literals (`[104, 105].map(...)`)."""
        return 0

    def receiver_callee(self) -> str | None:
        """Resolved callee when the receiver is itself a call (`spawn(...).unref()`), else None."""
        return None

    def receiver_method(self) -> str | None:
        """Method name when the receiver is a method call (`s.split('').reverse()` -> "reverse")."""
        return None

    def receiver_method_object(self) -> tuple[ArgKind, str]:  # full source text
        """Kind and source of the object that receiver method is called on (`s.split('')` above)."""
        return ArgKind.MISSING, ""

    def receiver_holds(self, what: str) -> bool:
        """The receiver is a name the engine saw bound to `what`: "sender" (request/socket) or "child"."""
        return False

    def callee_source(self) -> str:
        """The callee expression as written (`process.mainModule.require` for a resolved `require`)."""
        return ""

    def required_module(self) -> str | None:
        """The module a require()/import() names, folded (`path.join(__dirname, 'x')` -> "./x"), or None."""
        return None

    def command_line(self) -> str | None:
        """The command a process-starting call runs, folded (list arguments joined), or None."""
        return None

    def imported(self, root: str) -> bool:
        """The file imports a module whose first component is `root`."""
        return False

    def upload_method_in_file(self) -> bool:
        """The file names an upload HTTP method (`method: 'POST'`) somewhere."""
        return False


UNKNOWN = CallFacts()


@dataclass(frozen=True)
class CallContext:
    """One call site as the rules see it.

    `name` is the callee after the engine's name resolution: `subprocess.Popen` for
    `sp.Popen` after `import subprocess as sp`, `child_process.exec` for a destructured
    require, `?.method` for a method on something the engine cannot name.
    """

    language: Language
    name: str
    arg_count: int = 0
    member: bool = False  # the callee is `receiver.method` (the receiver's facts are meaningful)
    facts: CallFacts = field(default=UNKNOWN, compare=False, repr=False)

    # Derived on first use (most calls match no rule and never need them).
    @cached_property
    def module(self) -> str:
        """Everything before the last dot ("" for a bare name)."""
        return self.name.rpartition(".")[0]

    @cached_property
    def func(self) -> str:
        """The last component."""
        return self.name.rpartition(".")[2]

    @cached_property
    def root(self) -> str:
        """The first component."""
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class AttributeContext:
    """A resolved attribute or member read that is not called: `os.environ`, `process.env`."""

    language: Language
    name: str


@dataclass(frozen=True)
class ImportContext:
    """A module a file imports or requires, as the engine canonicalised it.

    `root` is what module tables are keyed by: the first component for Python (`os` for
    `os.path`), the module without a `node:` prefix or `/promises` suffix for JavaScript.
    """

    language: Language
    module: str
    root: str


@dataclass(frozen=True)
class StringContext:
    """One string value after the engine folded it (concatenation, decoding, char codes...)."""

    value: str
    sample: str  # the first 20,000 characters: what the patterns look at
    raw: bool = False  # `value` is the literal as written in source, quotes and escapes included


@dataclass(frozen=True)
class FileFinding:
    """Where a file rule found its behaviour: an offset into the file and the text to show."""

    offset: int  # into FileContext.text (Python) or FileContext.data (JavaScript): the engine's unit
    snippet: str


class FileFacts:
    """What a file rule may ask about the parsed file; defaults to "unknown"."""

    def identifier_span(self, start: int, end: int) -> tuple[int, int] | None:
        """The (start, end) byte span of the identifier node covering this byte range, or None
        when the range is not (part of) an identifier in code (a comment or a string)."""
        return None


NO_FILE_FACTS = FileFacts()


@dataclass(frozen=True)
class FileContext:
    """A whole source file, for rules over its shape (long lines, machine-generated names)."""

    language: Language
    data: bytes
    text: str = ""  # the decoded text, for engines that position by characters (Python)
    facts: FileFacts = field(default=NO_FILE_FACTS, compare=False, repr=False)


class ManifestEntry(enum.Enum):
    """What a manifest rule looks at: package-level facts, outside any source file."""

    NPM_SCRIPT = "npm script"  # a package.json script npm runs on install, itself or through `npm run` chains
    PTH_LINE = "pth line"  # one line of a .pth file a Python package installs


@dataclass(frozen=True)
class ManifestContext:
    """One npm script or one .pth line, as the manifest stage (features/manifest.py) found it.

    For `NPM_SCRIPT`, the stage has already followed the lifecycle scripts through the scripts
    they run, so every script a rule sees runs at install time one way or another; `name` says
    which script it is (npm runs `preinstall`, `install` and `postinstall` by itself).
    """

    entry: ManifestEntry
    file: str  # "package.json", or the .pth file's path in the package
    name: str  # the script's name ("" for a .pth line)
    text: str  # the script's command line, or the .pth line as written (unstripped)
    # commands.shipped_program_names of the package: a build command of one of these names runs the
    # package's own file (cmd looks in the current folder first), so it is not a build step.
    shipped: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CommandClassContext:
    """A class of setup.py that may replace a setuptools command, as the engine found it.

    The engine offers each class registered under a string key in a dict or a keyword argument
    (`cmdclass={'install': PostInstall}`, `dict(develop=PostDevelop)`), then, with
    `command=None`, each top-level class it did not report that way (`cmdclass` built in
    ways the engine does not follow).
    """

    command: str | None  # the key the class is registered under, or None (see above)
    name: str  # the class's name
    bases: str  # its base list as written (`(install)`, `(setuptools.command.develop.develop)`)
    methods: frozenset[str]  # names of the methods it defines
    does: frozenset[str]  # behaviours its methods report, or the functions of the file they call
    cmdclass_in_file: bool  # the file mentions `cmdclass` at all


@dataclass(frozen=True)
class SetupStepContext:
    """Something setup.py does at module level, so whenever pip runs it: one event at module level,
    or one call of a function or class of the file made at module level.

    The engine groups steps by top-level statement and reports, for each statement, the first step
    (by position) a rule accepts. Positions the engine recognised as ordinary setup.py idioms (a
    version file read through `exec(open(...).read())`, a `git`/`twine` command) are `ordinary`,
    and leave nothing in the `does` of the functions they occur in.
    """

    does: frozenset[str]  # the event's behaviour; for a call, what the callee (and what it calls) reports
    call: bool  # a call of a function or class of the file (not an event)
    ordinary: bool = False  # an event at a position the engine recognised as an ordinary idiom
