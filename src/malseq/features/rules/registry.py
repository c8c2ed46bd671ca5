"""The rule registry: detection rules registered per behaviour, dispatched by callee name.

A rule is a function over a context, registered with the behaviour it detects, the
languages it applies to, and which callee names can possibly match it:

    @call_rule("read_env", PY, order=60, names=("os.getenv", "os.environ.get"))
    def python_getenv(ctx: CallContext) -> bool:
        return True

Besides call rules there are attribute rules (`os.environ`, `process.env`), import rules
(module families), string rules (what a folded literal names, or how a raw literal is
written) and file rules (a whole file's shape); each kind has its decorator below.

Install hooks are decided by rules as well, over facts a whole-package or whole-file pass
computes (the pass keeps the traversal, the rule holds the decision):
- manifest rules (`manifest_rule`): an npm script run at install or a .pth line
  (`ManifestContext`, built by features/manifest.py), dispatched by the entry's kind;
- setup.py rules: `command_class_rule` over a class that may replace a setuptools command
  (`CommandClassContext`) and `setup_step_rule` over something setup.py does at module level
  (`SetupStepContext`), both built by the Python engine once it has walked setup.py.
These rules return True or False.

The registry indexes call rules by exact name, module (everything before the last dot),
first component, last component and name prefix, so an engine asks only the few rules
that could match a call instead of every rule. A rule returns True (its behaviour fires),
False, or a sequence of behaviour ids when it reports more than its own behaviour (a
process call also reports what its command line does).

`order` fixes the order of events one call site yields: the sequence stage keeps events
at the same position in emission order and the model reads that order, so it must not
depend on which module registered first. Rules with `alone=True` fire only when no other
rule fired at that call (`os_call` is "an os function not covered by anything else").
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from malseq.features.catalogue import IDS
from malseq.features.rules.context import (
    AttributeContext,
    CallContext,
    CommandClassContext,
    FileContext,
    FileFinding,
    ImportContext,
    ManifestContext,
    ManifestEntry,
    SetupStepContext,
    StringContext,
)
from malseq.intake.package import Language

PY = frozenset({Language.PYTHON})
_MEMO_LIMIT = 50_000  # names remembered per lookup table: bounded memory over a long batch
JS = frozenset({Language.JAVASCRIPT})
BOTH = PY | JS

CallCheck = Callable[[CallContext], "bool | Sequence[str]"]
AttributeCheck = Callable[[AttributeContext], bool]
ImportCheck = Callable[[ImportContext], bool]
StringCheck = Callable[[StringContext], "bool | Sequence[str]"]
FileCheck = Callable[[FileContext], "FileFinding | None"]
ManifestCheck = Callable[[ManifestContext], bool]
CommandClassCheck = Callable[[CommandClassContext], bool]
SetupStepCheck = Callable[[SetupStepContext], bool]

# The language each manifest entry belongs to (what `Rule.languages` records).
_ENTRY_LANGUAGES = {ManifestEntry.NPM_SCRIPT: JS, ManifestEntry.PTH_LINE: PY}


class RuleKind(enum.Enum):
    CALL = "call"  # a call site (CallContext)
    ATTRIBUTE = "attribute"  # a resolved attribute/member read (AttributeContext)
    IMPORT = "import"  # an imported/required module (ImportContext)
    STRING = "string"  # a string value after folding (what the literal names)
    RAW_STRING = "raw string"  # a literal as written in source (how it is written)
    FILE = "file"  # a whole file (FileContext), reported once at the rule's finding
    MANIFEST = "manifest"  # an npm install-time script or a .pth line (ManifestContext)
    COMMAND_CLASS = "command class"  # a setup.py class that may replace a setuptools command
    SETUP_STEP = "setup step"  # something setup.py does at module level (SetupStepContext)


@dataclass(frozen=True)
class Rule:
    behaviour: str
    kind: RuleKind
    languages: frozenset[Language]
    check: Callable[..., object]
    order: int
    names: frozenset[str] = frozenset()  # exact callee / attribute names
    modules: frozenset[str] = frozenset()  # CallContext.module
    roots: frozenset[str] = frozenset()  # CallContext.root
    funcs: frozenset[str] = frozenset()  # CallContext.func
    prefixes: tuple[str, ...] = ()  # name prefixes
    every: bool = False  # asked at every call (a pattern over the whole name)
    alone: bool = False
    also: tuple[str, ...] = ()  # further behaviours the rule may report (a command line's findings)
    min_length: int = 0  # string rules: values shorter than this cannot match (skipped without a call)
    entries: frozenset[ManifestEntry] = frozenset()  # manifest rules: the entry kinds they look at
    by_name: bool = False  # call rules: the answer depends on the callee name alone (see may_report_call)

    @property
    def where(self) -> str:
        return f"{getattr(self.check, '__module__', '?')}.{getattr(self.check, '__qualname__', '?')}"


class Registry:
    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self._index: dict[Language, _CallIndex] = {}
        # The index asked for last, by identity (an engine asks for its language at every call).
        self._last_index: tuple[Language | None, _CallIndex | None] = (None, None)
        self._attributes: dict[tuple[Language, str], tuple[Rule, ...]] = {}
        self._imports: dict[tuple[Language, str], tuple[Rule, ...]] = {}
        # Per language: the import rules asked for every import, and the others by root (see _import_rules).
        self._import_index: dict[Language, tuple[tuple[Rule, ...], dict[str, tuple[Rule, ...]]]] = {}
        self._strings: dict[RuleKind, tuple[tuple[Callable[..., object], str, int], ...]] = {}
        self._files: dict[Language, tuple[Rule, ...]] = {}
        self._kinds: dict[RuleKind, tuple[Rule, ...]] = {}
        self._listeners: list[Callable[[], None]] = []

    def add(self, rule: Rule) -> None:
        for behaviour in (rule.behaviour, *rule.also):
            if behaviour not in IDS:
                raise ValueError(f"rule {rule.where} names unknown behaviour {behaviour!r}")
        if rule.kind is RuleKind.CALL and not (rule.names or rule.modules or rule.roots or rule.funcs
                                                 or rule.prefixes or rule.every):
            raise ValueError(f"call rule {rule.where} matches no callee name (give names/modules/funcs/...)")
        if rule.kind is RuleKind.MANIFEST and not rule.entries:
            raise ValueError(f"manifest rule {rule.where} looks at no entry kind (give entries=...)")
        self.rules.append(rule)
        self._index.clear()
        self._last_index = (None, None)
        self._attributes.clear()
        self._imports.clear()
        self._import_index.clear()
        self._files.clear()
        self._strings.clear()
        self._kinds.clear()
        for listener in self._listeners:
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever a rule is added: a memo of what the rules answer is stale then."""
        self._listeners.append(listener)

    # --- lookups the engines use ------------------------------------------------------------
    def _call_index(self, language: Language) -> _CallIndex:
        last_language, last = self._last_index
        if last_language is language and last is not None:
            return last
        index = self._index.get(language)
        if index is None:
            index = self._index[language] = _CallIndex(
                [r for r in self.rules if r.kind is RuleKind.CALL and language in r.languages], language)
        self._last_index = (language, index)
        return index

    def may_report_call(self, language: Language, name: str) -> bool:
        """False when `call_behaviours` is sure to report nothing for a call of this name: no rule is
        indexed under it, or only `by_name` rules, each of which answers no for the name. Engines skip
        the call's context and facts then (a rule asked at every call makes `may_match_call` always true)."""
        return self._call_index(language).may_report(name)

    def may_match_call(self, language: Language, name: str) -> bool:
        """Whether any call rule is indexed under this callee name: engines skip building a context
        for the (many) calls no rule can match."""
        return bool(self._call_index(language).candidates(name))

    def call_behaviours(self, ctx: CallContext) -> list[str]:
        """Behaviour ids the call rules report for one call, in order, without repeats."""
        index = self._call_index(ctx.language)
        found: list[str] = []
        lone: list[Rule] = []
        for rule in index.candidates(ctx.name):
            if rule.alone:
                lone.append(rule)
                continue
            _apply(rule, ctx, found)
        if not found:
            for rule in lone:
                _apply(rule, ctx, found)
        return found

    def attribute_behaviours(self, ctx: AttributeContext) -> list[str]:
        key = (ctx.language, ctx.name)
        rules = self._attributes.get(key)
        if rules is None:
            rules = tuple(sorted(
                (r for r in self.rules if r.kind is RuleKind.ATTRIBUTE and ctx.language in r.languages
                 and (not r.names or ctx.name in r.names)), key=lambda r: r.order))
            if len(self._attributes) < _MEMO_LIMIT:
                self._attributes[key] = rules
        return [r.behaviour for r in rules if r.check(ctx)]

    def import_behaviours(self, ctx: ImportContext) -> list[str]:
        key = (ctx.language, ctx.root)
        rules = self._imports.get(key)
        if rules is None:
            rules = self._import_rules(ctx.language, ctx.root)
            if len(self._imports) < _MEMO_LIMIT:
                self._imports[key] = rules
        found: list[str] = []
        for rule in rules:
            if rule.behaviour not in found and rule.check(ctx):
                found.append(rule.behaviour)
        return found

    def _import_rules(self, language: Language, root: str) -> tuple[Rule, ...]:
        """The import rules of the language that are `every` or list `root`, by order (registration
        order among equal orders). From a per-language index: obfuscators' string arrays ask about
        thousands of distinct would-be module names, and a scan of every rule for each cost more
        than the rules themselves."""
        index = self._import_index.get(language)
        if index is None:
            every: list[Rule] = []
            by_root: dict[str, list[Rule]] = {}
            for r in self.rules:
                if r.kind is RuleKind.IMPORT and language in r.languages:
                    if r.every:
                        every.append(r)
                    else:
                        for root_name in r.roots:
                            by_root.setdefault(root_name, []).append(r)
            position = {id(r): i for i, r in enumerate(self.rules)}
            index = (tuple(sorted(every, key=lambda r: r.order)),
                     {name: tuple(sorted(every + named, key=lambda r: (r.order, position[id(r)])))
                      for name, named in by_root.items()})
            self._import_index[language] = index
        return index[1].get(root, index[0])

    def string_behaviours(self, ctx: StringContext) -> list[str]:
        """Behaviour ids a string value names (or, for a raw literal, how it is written), in order."""
        checks = self._strings.get(RuleKind.RAW_STRING if ctx.raw else RuleKind.STRING)
        if checks is None:
            checks = self._string_checks(RuleKind.RAW_STRING if ctx.raw else RuleKind.STRING)
        # Every literal of every file comes through here: the loop is _apply inlined.
        found: list[str] = []
        length = len(ctx.value)
        for check, behaviour, min_length in checks:
            if length < min_length:
                continue
            result = check(ctx)
            if result is True:
                if behaviour not in found:
                    found.append(behaviour)
            elif result:  # a list of behaviour ids (False and () fall through: the common case)
                for other in cast("Sequence[str]", result):
                    if other not in found:
                        found.append(other)
        return found

    def _string_checks(self, kind: RuleKind) -> tuple[tuple[Callable[..., object], str, int], ...]:
        checks = tuple((r.check, r.behaviour, r.min_length)
                       for r in sorted((r for r in self.rules if r.kind is kind), key=lambda r: r.order))
        self._strings[kind] = checks
        return checks

    def file_behaviours(self, ctx: FileContext) -> list[tuple[str, FileFinding]]:
        """(behaviour, finding) for each file rule of the language that finds something, in order."""
        rules = self._files.get(ctx.language)
        if rules is None:  # asked once per file: a package of a thousand files scanned every rule each time
            rules = self._files[ctx.language] = tuple(sorted(
                (r for r in self.rules if r.kind is RuleKind.FILE and ctx.language in r.languages),
                key=lambda r: r.order))
        out: list[tuple[str, FileFinding]] = []
        for rule in rules:
            finding = rule.check(ctx)
            if isinstance(finding, FileFinding):
                out.append((rule.behaviour, finding))
        return out

    def _of_kind(self, kind: RuleKind) -> tuple[Rule, ...]:
        rules = self._kinds.get(kind)
        if rules is None:
            rules = self._kinds[kind] = tuple(sorted((r for r in self.rules if r.kind is kind), key=lambda r: r.order))
        return rules

    def manifest_behaviours(self, ctx: ManifestContext) -> list[str]:
        """Behaviour ids the manifest rules for this entry's kind report, in order, without repeats."""
        return _decide((r for r in self._of_kind(RuleKind.MANIFEST) if ctx.entry in r.entries), ctx)

    def command_class_behaviours(self, ctx: CommandClassContext) -> list[str]:
        """Behaviour ids the command-class rules report for one setup.py class, in order."""
        return _decide(self._of_kind(RuleKind.COMMAND_CLASS), ctx)

    def setup_step_behaviours(self, ctx: SetupStepContext) -> list[str]:
        """Behaviour ids the setup-step rules report for one module-level step of setup.py, in order."""
        return _decide(self._of_kind(RuleKind.SETUP_STEP), ctx)

    def behaviours(self) -> frozenset[str]:
        """Every behaviour some rule reports (its own, or one it declares in `also`)."""
        return frozenset(b for r in self.rules for b in (r.behaviour, *r.also))


def _decide(rules: Iterable[Rule], ctx: object) -> list[str]:
    found: list[str] = []
    for rule in rules:
        if rule.behaviour not in found and rule.check(ctx):
            found.append(rule.behaviour)
    return found


def _apply(rule: Rule, ctx: CallContext | StringContext, found: list[str]) -> None:
    result = rule.check(ctx)
    if result is True:
        if rule.behaviour not in found:
            found.append(rule.behaviour)
    elif result:
        for behaviour in cast("Sequence[str]", result):
            if behaviour not in found:
                found.append(behaviour)


class _CallIndex:
    """Call rules of one language, by the name parts they can match."""

    def __init__(self, rules: list[Rule], language: Language) -> None:
        self.language = language
        self.reports: dict[str, bool] = {}
        self.names: dict[str, list[Rule]] = {}
        self.modules: dict[str, list[Rule]] = {}
        self.roots: dict[str, list[Rule]] = {}
        self.funcs: dict[str, list[Rule]] = {}
        self.prefixed: list[Rule] = [r for r in rules if r.prefixes]
        self.prefixes: tuple[str, ...] = tuple(p for r in self.prefixed for p in r.prefixes)
        self.every: list[Rule] = [r for r in rules if r.every]
        for rule in rules:
            for table, keys in ((self.names, rule.names), (self.modules, rule.modules),
                                (self.roots, rule.roots), (self.funcs, rule.funcs)):
                for key in keys:
                    table.setdefault(key, []).append(rule)
        # Names repeat a lot in one file (and across files): keep the candidate list per
        # (name, module, root, func). Deterministic: it depends on the name only.
        self.memo: dict[str, tuple[Rule, ...]] = {}

    def candidates(self, name: str) -> tuple[Rule, ...]:
        found = self.memo.get(name)
        if found is not None:
            return found
        module, _, func = name.rpartition(".")
        root = name.split(".", 1)[0]
        picked: dict[int, Rule] = {}
        for rule in (*self.names.get(name, ()), *self.modules.get(module, ()),
                     *self.roots.get(root, ()), *self.funcs.get(func, ()), *self.every):
            picked[id(rule)] = rule
        if self.prefixes and name.startswith(self.prefixes):
            for rule in self.prefixed:
                if name.startswith(rule.prefixes):
                    picked[id(rule)] = rule
        found = tuple(sorted(picked.values(), key=lambda r: r.order))
        if len(self.memo) < _MEMO_LIMIT:
            self.memo[name] = found
        return found

    def may_report(self, name: str) -> bool:
        answer = self.reports.get(name)
        if answer is None:
            bare = CallContext(self.language, name)
            answer = any(not rule.by_name or rule.check(bare) for rule in self.candidates(name))
            if len(self.reports) < _MEMO_LIMIT:
                self.reports[name] = answer
        return answer


REGISTRY = Registry()


def js_parts(name: str) -> tuple[str, str]:
    """(module, member) the way the JavaScript API table reads a path: a bare name is a module
    with no member (`axios` -> ("axios", ""), `fs.readFile` -> ("fs", "readFile"))."""
    module, _, attr = name.rpartition(".")
    return (module, attr) if module else (name, "")


def call_rule(behaviour: str, languages: frozenset[Language], *, order: int, names: Collection[str] = (),
              modules: Collection[str] = (), roots: Collection[str] = (), funcs: Collection[str] = (),
              prefixes: Sequence[str] = (), every: bool = False, alone: bool = False,
              also: Sequence[str] = (), by_name: bool = False) -> Callable[[CallCheck], CallCheck]:
    """Register a call rule for `behaviour` (see the module docstring). `by_name=True` promises that
    the rule reads nothing of its context but `language` and `name`."""

    def register(check: CallCheck) -> CallCheck:
        REGISTRY.add(Rule(behaviour, RuleKind.CALL, languages, check, order, frozenset(names),
                          frozenset(modules), frozenset(roots), frozenset(funcs), tuple(prefixes), every, alone,
                          tuple(also), by_name=by_name))
        return check

    return register


def attribute_rule(behaviour: str, languages: frozenset[Language], *, names: Collection[str],
                   order: int = 0) -> Callable[[AttributeCheck], AttributeCheck]:
    """Register a rule over attribute/member reads with these resolved names."""

    def register(check: AttributeCheck) -> AttributeCheck:
        REGISTRY.add(Rule(behaviour, RuleKind.ATTRIBUTE, languages, check, order, frozenset(names)))
        return check

    return register


def import_rule(behaviour: str, languages: frozenset[Language], *, order: int, roots: Collection[str] = (),
                every: bool = False) -> Callable[[ImportCheck], ImportCheck]:
    """Register a rule over imported modules, keyed by `ImportContext.root` (or asked for every import)."""

    def register(check: ImportCheck) -> ImportCheck:
        REGISTRY.add(Rule(behaviour, RuleKind.IMPORT, languages, check, order, roots=frozenset(roots), every=every))
        return check

    return register


def string_rule(behaviour: str, *, order: int, raw: bool = False, also: Sequence[str] = (),
                min_length: int = 0) -> Callable[[StringCheck], StringCheck]:
    """Register a rule over string values (both languages: data names the same things in each).

    `raw=True` rules see the literal as written in source instead of its value. `min_length`:
    a length below which the rule can never match (every literal of a file is asked, so the
    registry skips the call for short ones).
    """

    def register(check: StringCheck) -> StringCheck:
        REGISTRY.add(Rule(behaviour, RuleKind.RAW_STRING if raw else RuleKind.STRING, BOTH, check, order,
                          also=tuple(also), min_length=min_length))
        return check

    return register


def file_rule(behaviour: str, languages: frozenset[Language], *, order: int) -> Callable[[FileCheck], FileCheck]:
    """Register a rule over a whole file; it returns where it found the behaviour, or None."""

    def register(check: FileCheck) -> FileCheck:
        REGISTRY.add(Rule(behaviour, RuleKind.FILE, languages, check, order))
        return check

    return register


def manifest_rule(behaviour: str, *, order: int, entries: Collection[ManifestEntry]
                  ) -> Callable[[ManifestCheck], ManifestCheck]:
    """Register a rule over package-level entries of these kinds (an npm install-time script, a .pth line)."""

    def register(check: ManifestCheck) -> ManifestCheck:
        languages = frozenset(language for entry in entries for language in _ENTRY_LANGUAGES[entry])
        REGISTRY.add(Rule(behaviour, RuleKind.MANIFEST, languages, check, order, entries=frozenset(entries)))
        return check

    return register


def command_class_rule(behaviour: str, *, order: int) -> Callable[[CommandClassCheck], CommandClassCheck]:
    """Register a rule over the classes of setup.py that may replace a setuptools command."""

    def register(check: CommandClassCheck) -> CommandClassCheck:
        REGISTRY.add(Rule(behaviour, RuleKind.COMMAND_CLASS, PY, check, order))
        return check

    return register


def setup_step_rule(behaviour: str, *, order: int) -> Callable[[SetupStepCheck], SetupStepCheck]:
    """Register a rule over what setup.py does at module level (one event, or one call of its own code)."""

    def register(check: SetupStepCheck) -> SetupStepCheck:
        REGISTRY.add(Rule(behaviour, RuleKind.SETUP_STEP, PY, check, order))
        return check

    return register
