"""Package + feature analysis -> behaviour sequence in execution order.

The walk starts at the entry points, in the order a package manager runs them (npm: lifecycle
scripts then main/exports/bin; PyPI: setup.py body, setup command overrides, .pth imports, then the
top-level packages' __init__ and console scripts). A scope is walked in (line, column) order:
its events, its bindings (an import of a local module runs that module's body once per process,
like Python's and Node's module caches; each npm script, the setup.py run, the .pth files and the
importing program are separate processes), Python class bodies defined in it, and its call sites;
a call resolved to a function of the package expands that function there (depth first), unless
the function is already on the current path (recursion) or the depth/step/work budgets are hit;
a function's later calls in the same process replay the events of its first expansion (at most
16 times per function and process: further calls would only add repeats).
Library calls add nothing themselves: the extractor already put their events at that position.
Events never reached from an entry point close the sequence as UNREACHED, in (file, line) order.

Within a statement, arguments run before the call that receives them and callbacks after it
(`order.execution_order`). A module that is imported rather than run as the program skips its
`if __name__ == "__main__":` / `if (require.main === module)` block.

Known approximations: every branch and loop body is taken once; a call on an object of unknown
class resolves only through distinctive method names (`index._methods_by_name`); dynamic
dispatch, `getattr`/computed property calls and functions passed around in data are not followed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from malseq._deadline import Deadline
from malseq.features.commands import (
    FILE,
    INLINE_REQUIRE,
    MAX_SCRIPT_NESTING,
    PRELOAD,
    SCRIPT,
    CommandTarget,
    parse_command,
    scripts_started,
)
from malseq.features.types import MODULE_SCOPE, BehaviourEvent, Binding, CallSite, FunctionDef, PackageAnalysis
from malseq.intake.package import Package
from malseq.sanitize import clean
from malseq.sequence.index import FileIndex, ModuleRef, PackageIndex, Target
from malseq.sequence.order import BINDING, CALL, CLASS_BODY, EVENT, Item
from malseq.sequence.public import fallback_public_api, js_public_api, python_public_api
from malseq.sequence.types import BehaviourSequence, EntryPointRef, SequenceStep, Stage

__all__ = ["build_sequence"]

# setuptools calls a command's methods in this order; overriding any of them runs code at install.
_COMMAND_METHODS = ("initialize_options", "finalize_options", "run")
_ENTRY_POINT_GROUPS = ("console_scripts", "gui_scripts")
_MAX_EVENTS_PER_STEP = 16
_MAX_FOLD_PERIOD = 4
_MAX_NESTING = 64  # module bodies and calls nested in the walk's own recursion
_MAX_REPLAYS_PER_FUNCTION = 16  # per process
_MAX_REPLAY = 256  # behaviour runs kept to replay a function's later calls
_DEADLINE_CHECK_EVERY = 256
_LABEL_LENGTH = 120
_MAX_SCRIPT_ENTRY_POINTS = 256
_MAX_USE_ENTRY_POINTS = 256  # public functions recorded as entry points; later ones are walked all the same


@dataclass
class _Step:
    behaviour: str
    stage: Stage
    entry: str
    events: list[BehaviourEvent]
    depth: int
    count: int = 1


@dataclass
class _Run:
    behaviour: str
    events: list[BehaviourEvent]
    relative_depth: int
    count: int


@dataclass
class _Recorder:
    """What a function's expansion produced, flattened into runs of one behaviour with depths
    relative to it: the runs it emitted itself and copies of its callees' records (each call adds
    its callee's record once, which is cheap because consecutive runs of a behaviour merge).
    `cut` is set when something inside was not expanded because of the depth bound: such a record
    is only replayed at the same call depth or deeper, where the bound cuts at least as much."""

    depth: int
    call_depth: int
    runs: list[_Run] = field(default_factory=list)
    cut: bool = False
    replays: int = 0

    def add(self, behaviour: str, events: Sequence[BehaviourEvent], depth: int, count: int) -> None:
        last = self.runs[-1] if self.runs else None
        if last is not None and last.behaviour == behaviour:
            last.count += count
            room = _MAX_EVENTS_PER_STEP - len(last.events)
            if room > 0:
                last.events.extend(events[:room])
        elif len(self.runs) < _MAX_REPLAY:
            self.runs.append(_Run(behaviour, list(events[:_MAX_EVENTS_PER_STEP]), depth - self.depth, count))

    def add_child(self, child: _Recorder, depth: int) -> None:
        for run in child.runs:
            self.add(run.behaviour, run.events, depth + run.relative_depth, run.count)
        self.cut = self.cut or child.cut


@dataclass
class _Budget:
    """Counted budgets of the walk (steps, depth, work). The package deadline is not one of them: it
    is checked every `_DEADLINE_CHECK_EVERY` units and raises `TimeBudgetExceeded`, so a walk is
    either complete up to its counted budgets or the target fails; load never shortens it."""

    max_steps: int
    max_depth: int
    max_work: int
    deadline: Deadline
    work: int = 0
    exhausted: bool = False
    reasons: list[str] = field(default_factory=list)

    def tick(self) -> bool:
        """Count one unit of work; False once any budget is used up."""
        if self.exhausted:
            return False
        self.work += 1
        if self.work > self.max_work:
            self._stop("work")
        elif self.work % _DEADLINE_CHECK_EVERY == 0:
            self.deadline.check("ordering behaviours")
        return not self.exhausted

    def _stop(self, reason: str) -> None:
        self.exhausted = True
        self.reasons.append(reason)


class _Walker:
    def __init__(self, package: Package, analysis: PackageAnalysis, budget: _Budget) -> None:
        self.package = package
        self.analysis = analysis
        self.index = PackageIndex(package, analysis.files)
        self.budget = budget
        self.steps: list[_Step] = []
        self.entry_points: list[EntryPointRef] = []
        self.visited: set[int] = set()
        self.modules_run: set[str] = set()
        self.on_path: set[Target] = set()
        self.expanded: dict[Target, _Recorder] = {}  # replay records, per process
        self.recording: list[_Recorder] = []
        self.deferred: list[str] = []  # module runs past the depth bound, run when the walk unwinds
        self.nesting = 0
        self.module_base: list[int] = []  # depth at which each module body on the walk's stack started
        self.walked_code = False  # did any entry point reach a source file?
        self.stage = Stage.INSTALL
        self.entry = ""
        self._emits: dict[Target, bool] = {}
        self._script_events: dict[str, list[BehaviourEvent]] = {}
        self._script_targets: dict[str, list[CommandTarget]] = {}  # parsed once per command line
        self._script_refs = 0  # entry points npm scripts recorded, with those past the cap
        self._scripts: dict[str, str] = {}
        for script_name, script_command in package.npm.scripts if package.npm is not None else ():
            self._scripts.setdefault(script_name, script_command)  # the first, as NpmManifest.script
        for event in analysis.manifest_events:
            if event.script is not None:
                self._script_events.setdefault(event.script, []).append(event)

    # --- output -----------------------------------------------------------------------------

    def emit(self, event: BehaviourEvent, depth: int) -> None:
        self.visited.add(id(event))
        self.emit_run(event.behaviour, (event,), depth, 1)

    def emit_run(self, behaviour: str, events: Sequence[BehaviourEvent], depth: int, count: int) -> None:
        """Append `count` consecutive occurrences of one behaviour (first `events` kept as evidence)."""
        if self.recording:
            self.recording[-1].add(behaviour, events, depth, count)
        self._append_step(behaviour, events, depth, count)

    def _append_step(self, behaviour: str, events: Sequence[BehaviourEvent], depth: int, count: int) -> None:
        last = self.steps[-1] if self.steps else None
        if last is not None and last.behaviour == behaviour and last.stage is self.stage \
                and last.entry == self.entry:
            last.count += count
            room = _MAX_EVENTS_PER_STEP - len(last.events)
            if room > 0:
                last.events.extend(events[:room])
            return
        self.steps.append(_Step(behaviour, self.stage, self.entry, list(events[:_MAX_EVENTS_PER_STEP]), depth,
                                count))
        self._fold_cycle()
        if len(self.steps) > self.budget.max_steps:
            self.steps.pop()
            self.budget._stop("steps")

    def _fold_cycle(self) -> None:
        """Fold a short repeated pattern ("A B A B" -> "A B", counts added): many small functions
        calling the same helpers (an obfuscator's string decoders) would otherwise fill the step
        budget with one pattern. Consecutive repeats of one step are merged in `_append_step`."""
        steps = self.steps
        n = len(steps)
        for period in range(2, _MAX_FOLD_PERIOD + 1):
            if n < 2 * period:
                return
            first, second = steps[n - 2 * period:n - period], steps[n - period:]
            if all(a.behaviour == b.behaviour and a.stage is b.stage and a.entry == b.entry
                   for a, b in zip(first, second, strict=True)):
                for a, b in zip(first, second, strict=True):
                    a.count += b.count
                    room = _MAX_EVENTS_PER_STEP - len(a.events)
                    if room > 0:
                        a.events.extend(b.events[:room])
                del steps[n - period:]
                return

    def new_process(self) -> None:
        """Module caches live per process: each npm script, pip's setup.py run and the importing
        program load the package's modules afresh, so a module run at install runs again at import."""
        self.modules_run = set()
        self.expanded = {}
        self.deferred = []

    def begin(self, stage: Stage, label: str, file: str | None, scope: str = MODULE_SCOPE) -> None:
        label = clean(label, _LABEL_LENGTH)
        self.stage = stage
        self.entry = label
        self.entry_points.append(EntryPointRef(stage, label, file, scope))

    # --- walking ----------------------------------------------------------------------------

    def run_module(self, path: str, depth: int, as_main: bool = False) -> None:
        """Run a module body once per process (module cache).

        Import chains can be far deeper than call chains (a bundle of hundreds of modules each
        requiring the next). The call-depth bound counts from the innermost module body, and an
        import nested too deep for the walk's own recursion is not dropped but deferred until the
        current entry point's walk unwinds."""
        if path in self.modules_run or self.budget.exhausted or path not in self.index.files:
            return
        if self.nesting >= _MAX_NESTING:
            if path not in self.deferred:
                self.deferred.append(path)
            return
        fi = self.index.files[path]
        self.modules_run.add(path)
        self.walked_code = True
        # A module body runs once per process, so it is not part of the replay of a function that
        # happened to import it first.
        saved, self.recording = self.recording, []
        self.nesting += 1
        self.module_base.append(depth)
        try:
            self.walk_scope(fi, MODULE_SCOPE, depth, skip_main_guard=not as_main)
        finally:
            self.recording = saved
            self.nesting -= 1
            self.module_base.pop()
        if self.nesting == 0:
            self.run_deferred()

    def run_deferred(self) -> None:
        while self.deferred and not self.budget.exhausted:
            self.run_module(self.deferred.pop(0), 0)

    def expand(self, target: Target, depth: int) -> None:
        """Run a function of the package at a call site.

        The first call in a process walks the function (depth first) and records the events it
        produced; later calls replay that record instead of walking again. Same steps, but the cost
        is linear in the call sites instead of exponential in the depth of the call graph."""
        if target in self.on_path or self.budget.exhausted:
            return
        call_depth = depth - (self.module_base[-1] if self.module_base else 0)
        if call_depth > self.budget.max_depth:
            if self.recording:
                self.recording[-1].cut = True
            return
        record = self.expanded.get(target)
        if record is not None and (not record.cut or call_depth >= record.call_depth):
            record.replays += 1
            if record.replays <= _MAX_REPLAYS_PER_FUNCTION:
                # Past the cap a call adds only repeats (an obfuscator's string decoder is called
                # thousands of times), which the model text would drop anyway.
                self.replay(record, depth)
                if self.recording:
                    self.recording[-1].add_child(record, depth)
            return
        if not self.can_emit(target):
            return
        fi = self.index.files[target[0]]
        self.walked_code = True
        self.on_path.add(target)
        recorder = _Recorder(depth, call_depth)
        self.recording.append(recorder)
        self.nesting += 1
        try:
            self.walk_scope(fi, target[1], depth)
        finally:
            self.on_path.discard(target)
            self.recording.pop()
            self.nesting -= 1
        if self.recording:
            self.recording[-1].add_child(recorder, depth)
        if not self.budget.exhausted:
            self.expanded[target] = recorder
        if self.nesting == 0:
            self.run_deferred()

    def replay(self, record: _Recorder, depth: int) -> None:
        for run in record.runs:
            self._append_step(run.behaviour, run.events, depth + run.relative_depth, run.count)

    def walk_scope(self, fi: FileIndex, scope: str, depth: int, skip_main_guard: bool = False) -> None:
        """Walk a scope's items in evaluation order. A module imported (not run as the program)
        skips its `if __name__ == "__main__":` / `if (require.main === module)` block."""
        guarded = skip_main_guard and bool(fi.source is not None and fi.source.main_guards())
        self.walk_items(fi, fi.scope_items(scope), depth, guarded)

    def walk_items(self, fi: FileIndex, items: Sequence[Item], depth: int, guarded: bool) -> None:
        for line, _col, kind, _seq, payload in items:
            if not self.budget.tick():
                return
            if guarded and fi.main_guarded(line):
                continue
            if kind == EVENT:
                assert isinstance(payload, BehaviourEvent)
                self.emit(payload, depth)
            elif kind == CALL:
                assert isinstance(payload, CallSite)
                for target in self.index.resolve_call(fi, payload):
                    self.expand(target, depth + 1)
            elif kind == BINDING:
                assert isinstance(payload, Binding)
                _ref, runs = self.index.binding_effect(fi, payload)
                for path in runs:
                    self.run_module(path, depth + 1)
            elif kind == CLASS_BODY:
                assert isinstance(payload, FunctionDef)
                key = (fi.path, payload.qualname)
                if key not in self.on_path:
                    self.on_path.add(key)
                    try:
                        self.walk_scope(fi, payload.qualname, depth)
                    finally:
                        self.on_path.discard(key)
            if self.budget.exhausted:
                return

    def can_emit(self, root: Target) -> bool:
        """Could walking this scope produce any step? Lets the walk skip the (usually many) functions
        that lead to no behaviour at all, which keeps big benign packages cheap.

        Reachability in the package's call graph (Tarjan's strongly connected components, iterative,
        memoized for every function it visits): a scope can emit if it holds an event or an import of
        a local module (whether that module still has to run depends on the path, so assume it
        may), or calls, directly or not, a scope that can. Depth bounds are ignored: a True that the
        walk then cuts short costs a little time, never a step."""
        memo = self._emits
        known = memo.get(root)
        if known is not None:
            return known
        index: dict[Target, int] = {}
        low: dict[Target, int] = {}
        value: dict[Target, bool] = {}
        stack: list[Target] = []
        on_stack: set[Target] = set()

        def enter(node: Target) -> Iterator[Target]:
            index[node] = low[node] = len(index)
            stack.append(node)
            on_stack.add(node)
            direct, successors = self._scope_facts(node)
            value[node] = direct
            return iter(successors)

        frames: list[tuple[Target, Iterator[Target]]] = [(root, enter(root))]
        while frames:
            node, successors = frames[-1]
            descended = False
            for succ in successors:
                done = memo.get(succ)
                if done is not None:
                    value[node] = value[node] or done
                elif succ not in index:
                    frames.append((succ, enter(succ)))
                    descended = True
                    break
                elif succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if descended:
                continue
            frames.pop()
            if low[node] == index[node]:
                component: list[Target] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result = any(value[m] for m in component)
                for member in component:
                    memo[member] = result
            if frames:
                parent = frames[-1][0]
                low[parent] = min(low[parent], low[node])
                value[parent] = value[parent] or memo.get(node, value[node])
        return memo[root]

    def _scope_facts(self, target: Target) -> tuple[bool, list[Target]]:
        """(holds an event or a local import, the scopes it calls or defines-and-runs)."""
        self.budget.tick()
        fi = self.index.files[target[0]]
        successors: list[Target] = []
        for _line, _col, kind, _seq, payload in fi.source_items(target[1]):
            if kind == EVENT:
                return True, []
            if kind == CALL:
                assert isinstance(payload, CallSite)
                successors.extend(self.index.resolve_call(fi, payload))
            elif kind == CLASS_BODY:
                assert isinstance(payload, FunctionDef)
                successors.append((fi.path, payload.qualname))
            elif kind == BINDING:
                assert isinstance(payload, Binding)
                if self.index.binding_effect(fi, payload)[1]:
                    return True, []
        return False, successors

    # --- npm --------------------------------------------------------------------------------

    def npm_entry_points(self) -> None:
        npm = self.package.npm
        assert npm is not None
        for name, command in npm.lifecycle_scripts:
            if self.budget.exhausted:
                return
            self.new_process()
            self.npm_script(name, command, [name], Stage.INSTALL)
        self.new_process()
        starts: list[tuple[str, str]] = []
        if npm.main:
            starts.append((f"main {npm.main}", npm.main))
        elif self.index.js_file("index") is not None:
            starts.append(("main index.js", "index.js"))
        starts.extend((f"exports {x}", x) for x in npm.exports if _is_code_path(x))
        started: list[str] = []
        for label, spec in starts:
            if self.budget.exhausted:
                return
            path = self.index.js_file(spec.lstrip("/"))
            if path is None:
                self.begin(Stage.IMPORT, f"{label} (missing file {spec})", None)
            elif path not in started:
                started.append(path)
                self.begin(Stage.IMPORT, label, path)
                self.run_module(path, 0)
        imported = list(started)
        # Use: the commands the package installs, then the API `require(pkg)` hands out.
        for name, spec in npm.bin:
            if self.budget.exhausted:
                return
            label = f"bin {name} {spec}"
            path = self.index.js_file(spec.lstrip("/"))
            if path is None:
                self.begin(Stage.USE, f"{label} (missing file {spec})", None)
            elif path not in started:
                started.append(path)
                self.begin(Stage.USE, label, path)
                self.run_module(path, 0, as_main=True)  # a bin file is the program
        self.use_public_api(js_public_api(self.index, imported))

    def npm_script(self, name: str, command: str, stack: list[str], stage: Stage) -> None:
        if not self.budget.tick():  # a hostile web of scripts running each other costs work too
            return
        label = clean(f"{name}: {command}", _LABEL_LENGTH)
        self.stage, self.entry = stage, label
        refs_before = self._script_refs
        # The manifest stage analysed this script (lifecycle, or reached through `npm run X` within
        # MAX_SCRIPT_NESTING hops, as here) and named it on each of its events.
        for event in self._script_events.get(name, ()):
            self.emit(event, len(stack) - 1)
        targets = self._script_targets.get(command)
        if targets is None:
            targets = self._script_targets[command] = parse_command(command)
        for target in targets:
            if not self.budget.tick():  # each `npm run X` of a web of scripts running each other is work
                break
            if target.kind == SCRIPT:
                for script in scripts_started(target):  # `npm run X` runs preX, X, postX
                    other = self._scripts.get(script)
                    if other is not None and script not in stack and len(stack) < MAX_SCRIPT_NESTING:
                        self.npm_script(script, other, [*stack, script], stage)
                        self.stage, self.entry = stage, label
                continue
            if target.kind in (PRELOAD, INLINE_REQUIRE):
                path = self.index.js_module("package.json", target.value)
            elif target.value in self.index.files:
                path = target.value
            else:
                path = self.index.js_file(target.value)
            segment = f"{' > '.join(stack)}: {target.segment}"
            if path is None:
                if target.kind == FILE:
                    why = "missing file" if target.value not in self.index.all_paths else "not analysed"
                    self._script_entry(EntryPointRef(
                        stage, clean(f"{segment} ({why} {target.value})", _LABEL_LENGTH), None, MODULE_SCOPE))
                continue
            self._script_entry(EntryPointRef(stage, clean(segment, _LABEL_LENGTH), path, MODULE_SCOPE))
            self.run_module(path, len(stack) - 1, as_main=target.kind == FILE)
        if self._script_refs == refs_before:
            # Inline code or an external command only: the script's own events stand for it.
            self._script_entry(EntryPointRef(stage, clean(f"{' > '.join(stack)}: {command}", _LABEL_LENGTH),
                                             None, MODULE_SCOPE))

    def _script_entry(self, ref: EntryPointRef) -> None:
        """Record what an npm script starts; past a cap only counted (a web of scripts running each
        other has thousands of paths, each its own label)."""
        self._script_refs += 1
        if self._script_refs <= _MAX_SCRIPT_ENTRY_POINTS:
            self.entry_points.append(ref)

    # --- PyPI -------------------------------------------------------------------------------

    def pypi_entry_points(self) -> None:
        pypi = self.package.pypi
        assert pypi is not None
        setup = self.index.files.get("setup.py")
        self.new_process()
        if setup is not None:
            self.begin(Stage.INSTALL, "setup.py", "setup.py")
            self.run_module("setup.py", 0, as_main=True)
            for cls in sorted((f for f in setup.analysis.functions if f.is_class), key=lambda f: f.line):
                methods = [setup.children.get((cls.qualname, m)) for m in _COMMAND_METHODS]
                if methods[-1] is None:
                    continue  # not a command class: setuptools only calls commands that define run()
                for method in methods:
                    if method is None or self.budget.exhausted:
                        continue
                    self.begin(Stage.INSTALL, f"setup.py {method.qualname}", "setup.py", method.qualname)
                    self.expand(("setup.py", method.qualname), 0)
        self.new_process()
        for pth in pypi.pth_files:
            self.pth_entry(pth)
        self.new_process()
        top_files: list[str] = []
        for name in pypi.top_level_packages:
            if self.budget.exhausted:
                return
            path = self._top_level_file(name)
            if path is None:
                continue
            top_files.append(path)
            self.begin(Stage.IMPORT, f"import {path}", path)
            self.run_module(path, 0)
        # Use: the commands and plugins the package declares, then its public API.
        for ep in pypi.entry_points:
            if not self.budget.exhausted:
                self.console_script(ep.group, ep.name, ep.target)
        self.use_public_api(python_public_api(self.index, top_files))

    def _top_level_file(self, name: str) -> str | None:
        for candidate in (f"{name}/__init__.py", f"src/{name}/__init__.py", f"{name}.py", f"src/{name}.py"):
            if candidate in self.index.files:
                return candidate
        return self.index.py_modules.get(name)

    def pth_entry(self, pth: str) -> None:
        """A `.pth` file runs its executable lines in order at interpreter start: each line's
        manifest events (`run code from pth file`), then what its code does (the features stage
        analysed the lines as Python source, file `pth`), imports of package modules included."""
        self.begin(Stage.INSTALL, f".pth {pth}", pth)
        events = sorted((e for e in self.analysis.manifest_events if e.file == pth), key=lambda e: e.line)
        items = self.index.files[pth].scope_items(MODULE_SCOPE) if pth in self.index.files else []
        if items:
            self.modules_run.add(pth)
            self.walked_code = True
        by_line: dict[int, list[Item]] = {}
        for item in items:
            by_line.setdefault(item[0], []).append(item)
        for line in sorted({e.line for e in events} | set(by_line)):
            for event in events:
                if event.line == line:
                    self.emit(event, 0)
            if line in by_line and not self.budget.exhausted:
                self.nesting += 1
                self.module_base.append(0)
                try:
                    self.walk_items(self.index.files[pth], by_line[line], 0, guarded=False)
                finally:
                    self.nesting -= 1
                    self.module_base.pop()
                if self.nesting == 0:
                    self.run_deferred()

    def console_script(self, group: str, name: str, target: str) -> None:
        """A declared entry point: a console/GUI script the user runs, or a plugin (any other group)
        that a host program loads and calls."""
        spec = target.split("[", 1)[0].strip()
        module, _, attr = spec.partition(":")
        kind = group[:-1] if group in _ENTRY_POINT_GROUPS else f"entry_point {group}"
        label = f"{kind} {name} = {spec}"
        chain = self.index.python_package_chain(module.strip())
        if not chain:
            self.begin(Stage.USE, f"{label} (not in package)", None)
            return
        path = chain[-1]
        func = self.index.callable_target(
            self.index.resolve_member(ModuleRef(path, ()), [p for p in attr.strip().split(".") if p]))
        self.begin(Stage.USE, label, path, func[1] if func else MODULE_SCOPE)
        for module_path in chain:
            self.run_module(module_path, 0)
        if func is not None and func[1] != MODULE_SCOPE:
            self.expand(func, 0)

    # --- use: the public API ------------------------------------------------------------------

    def use_public_api(self, entries: Sequence[tuple[str, Target]]) -> None:
        """Walk each public function, class method or module of the package that the import
        did not already run, in the order given (file path, then position), in the importing
        process: the victim's program calls them after `import pkg` / `require(pkg)`. A function
        that leads to no behaviour gets no entry point; one the walk already expanded (called at
        import or by an earlier public function) is not walked again."""
        recorded = 0
        for label, target in entries:
            if self.budget.exhausted or not self.budget.tick():
                return
            path, scope = target
            if scope == MODULE_SCOPE:
                if path in self.modules_run or not self.can_emit(target):
                    continue
            elif target in self.expanded or not self.can_emit(target):
                continue
            recorded += 1
            if recorded <= _MAX_USE_ENTRY_POINTS:
                self.begin(Stage.USE, label, path, scope)
            else:  # past the cap the steps still say where they come from, without an entry point each
                self.stage, self.entry = Stage.USE, clean(label, _LABEL_LENGTH)
            if scope == MODULE_SCOPE:
                self.run_module(path, 0)
            else:
                self.expand(target, 0)

    # --- fallback and unreached -------------------------------------------------------------

    def fallback(self) -> None:
        self.new_process()
        self.begin(Stage.IMPORT, "fallback all files", None)
        for path in sorted(self.index.files):
            if self.budget.exhausted:
                return
            self.run_module(path, 0, as_main=True)  # a lone file is most likely run as a program
        self.use_public_api(fallback_public_api(self.index, sorted(self.index.files)))

    def unreached(self) -> None:
        """Events no entry point reached, file by file; within a file, scope by scope (by first
        position), each scope's events in evaluation order. Callees are not expanded: each dead
        function lists its own events. After a budget stop, plain (file, line, column) order."""
        self.stage = Stage.UNREACHED
        remaining = [e for e in self.analysis.all_events() if id(e) not in self.visited]
        remaining.sort(key=lambda e: (e.file, e.line, e.column))
        if not self.budget.exhausted:
            remaining = self._evaluation_order(remaining)
        cap = len(self.steps) + self.budget.max_steps
        for event in remaining:
            self.entry = f"unreached {event.file}"
            last = self.steps[-1] if self.steps else None
            if last is not None and last.behaviour == event.behaviour and last.stage is Stage.UNREACHED \
                    and last.entry == self.entry:
                last.count += 1
                if len(last.events) < _MAX_EVENTS_PER_STEP:
                    last.events.append(event)
                continue
            if len(self.steps) >= cap:
                break
            self.steps.append(_Step(event.behaviour, Stage.UNREACHED, self.entry, [event], 0))

    def _evaluation_order(self, events: list[BehaviourEvent]) -> list[BehaviourEvent]:
        """Reorder position-sorted events scope by scope into evaluation order."""
        out: list[BehaviourEvent] = []
        by_file: dict[str, dict[str, list[BehaviourEvent]]] = {}
        for e in events:
            by_file.setdefault(e.file, {}).setdefault(e.scope, []).append(e)
        for path, scopes in by_file.items():  # insertion order follows the sorted events
            fi = self.index.files.get(path)
            for scope, scope_events in scopes.items():
                if fi is None:
                    out.extend(scope_events)
                    continue
                wanted = {id(e) for e in scope_events}
                ordered = [p for _l, _c, kind, _s, p in fi.scope_items(scope) if kind == EVENT and id(p) in wanted]
                if len(ordered) != len(scope_events):  # events the index does not hold (not expected)
                    out.extend(scope_events)
                else:
                    out.extend(e for e in ordered if isinstance(e, BehaviourEvent))
        return out


def _is_code_path(spec: str) -> bool:
    """An `exports` value that names a JavaScript file or folder (not a pattern, JSON or types file)."""
    if spec.startswith("#") or "*" in spec:
        return False
    last = spec.rsplit("/", 1)[-1]
    return "." not in last or last.endswith((".js", ".cjs", ".mjs"))


def build_sequence(
    package: Package,
    analysis: PackageAnalysis,
    deadline: Deadline | None = None,
    max_steps: int = 4000,
    max_depth: int = 24,
    max_work: int = 400_000,
) -> BehaviourSequence:
    """The package's behaviours in the order its code would run, from its entry points.

    When a counted budget (steps, depth, work) runs out, the walk stops, `budget_exhausted` is
    set, and every event not yet placed is listed as UNREACHED: the same for the same package on
    any machine. Raises `TimeBudgetExceeded` when the deadline (a safety net) passes, checked at
    the start and every few hundred units of work; it never shortens the sequence.
    """
    start = time.monotonic()
    deadline = deadline or Deadline.unlimited()
    deadline.check("ordering behaviours")
    budget = _Budget(max_steps, max_depth, max_work, deadline)
    walker = _Walker(package, analysis, budget)
    if package.npm is not None:
        walker.npm_entry_points()
    if package.pypi is not None and not budget.exhausted:
        walker.pypi_entry_points()
    if not walker.walked_code and not budget.exhausted and walker.index.files:
        walker.fallback()
    walker.unreached()
    steps = tuple(
        SequenceStep(s.behaviour, s.stage, s.entry, tuple(s.events), s.depth, s.count) for s in walker.steps
    )
    return BehaviourSequence(steps, tuple(walker.entry_points), budget.exhausted, time.monotonic() - start)

