"""Per-package indexes for the sequence walk: what each scope does, in source order, and name resolution.

Built once per package. Resolution follows the extractors' conventions (see the extractor spec):
function qualnames join nested names with ".", anonymous functions are "<arrow@L:C>"-style, every
event/call/binding carries the qualname of its innermost enclosing function (or MODULE_SCOPE).
A resolved target is a `(file path, qualname)` pair; qualname MODULE_SCOPE means the module body.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from malseq.features.types import MODULE_SCOPE, Binding, CallKind, CallSite, FileAnalysis, FunctionDef
from malseq.intake.package import Language, Package
from malseq.sequence.order import BINDING, CALL, CLASS_BODY, EVENT, Item, SourceText, execution_order

Target = tuple[str, str]  # (file path, qualname or MODULE_SCOPE)


_JS_EXTENSIONS = (".js", ".cjs", ".mjs")
_SELF_NAMES = frozenset({"self", "this", "cls"})
# Method names too common to guess a receiver's class from (library objects have them too).
_COMMON_METHODS = frozenset((
    "get", "set", "run", "send", "write", "read", "on", "once", "off", "emit", "end", "close", "open", "push", "pop",
    "shift", "map", "filter", "forEach", "reduce", "then", "catch", "finally", "call", "apply", "bind", "toString",
    "valueOf", "join", "split", "replace", "start", "stop", "init", "update", "add", "remove", "delete", "execute",
    "exec", "format", "log", "info", "error", "warn", "debug", "render", "load", "save", "parse", "stringify",
    "connect", "request", "post", "put", "patch", "fetch", "next", "keys", "values", "items", "append", "extend",
    "copy", "encode", "decode", "match", "test", "find", "sort", "slice", "splice", "indexOf", "includes", "has",
    "clear", "reset", "listen", "pipe", "resolve", "reject", "main", "handle", "process", "setup", "__init__",
    "constructor", "__call__", "__enter__", "__exit__", "create", "destroy", "dispose", "subscribe", "publish",
    "trigger", "fire", "dispatch", "wait", "sleep", "flush", "sync", "digest", "hash",
))
_MAX_METHOD_CANDIDATES = 3
_CHAINED = "<expr>."  # the JavaScript extractor's receiver for a call on a call's result
# `name()` or `a.b()` followed by members: a call on what a package function returns
_DOTTED_NAME = r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*"
_RETURNED_MEMBER = re.compile(rf"({_DOTTED_NAME})\(\)\.({_DOTTED_NAME})")
_CONSTRUCTORS = ("__init__", "constructor")
# A callee we can look up: dotted identifiers (JS `$` allowed) or one anonymous-function name.
_DOTTED = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$")
_ANONYMOUS = re.compile(r"^<[a-z_]+@\d+:\d+>$")
_STDLIB = frozenset(sys.stdlib_module_names)
# Receivers that are never a package's own object.
_JS_GLOBALS = frozenset({"console", "process", "JSON", "Math", "Object", "Array", "Promise", "Buffer", "window",
                         "document", "globalThis", "global", "require", "module", "exports", "String", "Number",
                         "Reflect", "Date", "RegExp", "Symbol", "Error", "Intl", "navigator", "location"})
# Folders Python puts on sys.path for a project laid out that way; a module under them is also
# importable by the rest of its path.
_SOURCE_ROOTS = ("src", "lib")


@dataclass(frozen=True)
class ModuleRef:
    """What a bound name refers to: a local module file, and an attribute path inside it."""

    path: str
    attributes: tuple[str, ...]


def _position(item: Item) -> tuple[int, int, int, int]:
    return (item[0], item[1], item[2], item[3])


class FileIndex:
    """One analysed file: its definitions by name and each scope's items pre-sorted."""

    def __init__(self, analysis: FileAnalysis, data: bytes | None = None) -> None:
        self.analysis = analysis
        self.source = SourceText(data, analysis.language is Language.PYTHON) if data is not None else None
        self.path = analysis.path
        self.language = analysis.language
        self.is_python = analysis.language is Language.PYTHON
        self.by_qualname: dict[str, FunctionDef] = {}
        self.children: dict[tuple[str, str], FunctionDef] = {}
        self.by_last_component: dict[str, list[FunctionDef]] = {}
        for fn in analysis.functions:
            self.by_qualname.setdefault(fn.qualname, fn)
            # Anonymous names hold no ".", so the last component of "outer.<arrow@3:4>" is the arrow.
            last = fn.qualname.rsplit(".", 1)[-1]
            name = fn.name or last
            self.children.setdefault((fn.parent, name), fn)
            if last != name:
                self.children.setdefault((fn.parent, last), fn)
            self.by_last_component.setdefault(last, []).append(fn)
        self.star_bindings = [b for b in analysis.bindings if b.attribute == "*"]
        self.bindings_by_name: dict[str, list[Binding]] = {}
        for b in analysis.bindings:
            if b.name:
                self.bindings_by_name.setdefault(b.name, []).append(b)
        items: dict[str, list[Item]] = {}
        seq = 0
        scope_list = items.get
        for e in analysis.events:
            found = scope_list(e.scope)
            if found is None:
                found = items[e.scope] = []
            found.append((e.line, e.column, EVENT, seq, e))
            seq += 1
        for c in analysis.calls:  # the most items: a big file has tens of thousands of call sites
            found = scope_list(c.scope)
            if found is None:
                found = items[c.scope] = []
            found.append((c.line, c.column, CALL, seq, c))
            seq += 1
        for b in analysis.bindings:
            found = scope_list(b.scope)
            if found is None:
                found = items[b.scope] = []
            found.append((b.line, 0, BINDING, seq, b))
            seq += 1
        if self.is_python:
            # A Python class body runs when the class statement runs. The extractor may say so itself
            # with an INLINE call site naming the class; then that call site is the class body item.
            inline = {(c.scope, c.callee, c.line) for c in analysis.calls if c.kind is CallKind.INLINE}
            for fn in analysis.functions:
                if fn.is_class and (fn.parent, fn.name, fn.line) not in inline \
                        and (fn.parent, fn.qualname, fn.line) not in inline:
                    items.setdefault(fn.parent, []).append((fn.line, 0, CLASS_BODY, seq, fn))
                    seq += 1
        self._source_order = items  # sorted per scope on first use
        self._sorted: set[str] = set()
        self._execution_order: dict[str, list[Item]] = {}

    def main_guarded(self, line: int) -> bool:
        """Is this module-level line inside an `if __name__ == "__main__"`-style block?"""
        if self.source is None:
            return False
        return any(start <= line <= end for start, end in self.source.main_guards())

    def call_before(self, call: CallSite) -> CallSite | None:
        """The call site just before `call` in its scope, if it is on the same line."""
        previous: CallSite | None = None
        for _line, _col, kind, _seq, payload in self.source_items(call.scope):
            if payload is call:
                return previous if previous is not None and previous.line == call.line else None
            if kind == CALL:
                assert isinstance(payload, CallSite)
                previous = payload
        return None

    def source_items(self, scope: str) -> list[Item]:
        """The scope's items in source order."""
        items = self._source_order.get(scope)
        if items is None:
            return []
        if scope not in self._sorted:
            items.sort(key=_position)
            self._sorted.add(scope)
        return items

    def scope_items(self, scope: str) -> list[Item]:
        """The scope's items in evaluation order (see `order.execution_order`), computed on first use."""
        done = self._execution_order.get(scope)
        if done is None:
            done = execution_order(self.source_items(scope), self.source)
            self._execution_order[scope] = done
        return done

    def parent_of(self, scope: str) -> str | None:
        if scope == MODULE_SCOPE:
            return None
        fn = self.by_qualname.get(scope)
        if fn is not None:
            return fn.parent
        return scope.rsplit(".", 1)[0] if "." in scope else MODULE_SCOPE

    def scope_chain(self, scope: str) -> Iterable[str]:
        """The scope and its enclosing scopes up to the module, innermost first."""
        seen: set[str] = set()
        current: str | None = scope
        while current is not None and current not in seen:
            seen.add(current)
            yield current
            current = self.parent_of(current)
        if MODULE_SCOPE not in seen:
            yield MODULE_SCOPE

    def enclosing_class(self, scope: str) -> FunctionDef | None:
        for s in self.scope_chain(scope):
            fn = self.by_qualname.get(s)
            if fn is not None and fn.is_class:
                return fn
        return None

    def member_chain(self, start: FunctionDef, rest: Iterable[str]) -> FunctionDef | None:
        fn = start
        for part in rest:
            nxt = self.children.get((fn.qualname, part)) or self.by_qualname.get(f"{fn.qualname}.{part}")
            if nxt is None:
                return None
            fn = nxt
        return fn

    def binding_for(self, name: str, scope: str) -> Binding | None:
        found = self.bindings_for(name, scope)
        return found[0] if found else None

    def bindings_for(self, name: str, scope: str) -> list[Binding]:
        """Imports binding `name`, those visible from `scope` first (a name bound in both branches
        of `try: from a import x` / `except ImportError: from .a import x` has several)."""
        candidates = self.bindings_by_name.get(name)
        if not candidates:
            return []
        chain = set(self.scope_chain(scope))
        visible = [b for b in candidates if b.scope in chain]
        return visible + [b for b in candidates if b.scope not in chain]

    def anonymous(self, name: str) -> FunctionDef | None:
        fn = self.by_qualname.get(name)
        if fn is not None:
            return fn
        found = self.by_last_component.get(name)
        return found[0] if found else None


# Callee texts repeat across calls and files (`console.log`, `os.path.join`): their parts are
# remembered per process (a pure function of the text; emptied when full, which bounds its memory).
_CALLEE_PARTS_MEMO: dict[str, tuple[str, ...] | None] = {}
_CALLEE_PARTS_MEMO_MAX = 50_000


def _callee_parts(callee: str) -> list[str] | None:
    if callee in _CALLEE_PARTS_MEMO:
        known = _CALLEE_PARTS_MEMO[callee]
        return list(known) if known is not None else None
    parts = _split_callee(callee)
    if len(_CALLEE_PARTS_MEMO) >= _CALLEE_PARTS_MEMO_MAX:
        _CALLEE_PARTS_MEMO.clear()
    _CALLEE_PARTS_MEMO[callee] = tuple(parts) if parts is not None else None
    return parts


def _split_callee(callee: str) -> list[str] | None:
    text = callee.strip()
    if text.startswith(".") and text.lstrip(".") and _DOTTED.match(text.lstrip(".")):
        return [text[: len(text) - len(text.lstrip("."))] + text.lstrip(".").split(".")[0],
                *text.lstrip(".").split(".")[1:]]
    if text.startswith("new "):
        text = text[4:].strip()
    if _ANONYMOUS.match(text):
        return [text]
    if "." in text and _ANONYMOUS.match(text.rsplit(".", 1)[-1]):
        return [text.rsplit(".", 1)[-1]]
    if not _DOTTED.match(text):
        return None
    return text.split(".")


class _LazyFiles(Mapping[str, FileIndex]):
    """Path -> FileIndex, each built on first use: most files of a big package are never walked."""

    def __init__(self, files: Iterable[FileAnalysis], data: dict[str, bytes]) -> None:
        self._analyses: dict[str, FileAnalysis] = {}
        for fa in files:
            self._analyses.setdefault(fa.path, fa)
        self._data = data
        self._built: dict[str, FileIndex] = {}

    def __getitem__(self, path: str) -> FileIndex:
        fi = self._built.get(path)
        if fi is None:
            fi = FileIndex(self._analyses[path], self._data.get(path))
            self._built[path] = fi
        return fi

    def __contains__(self, path: object) -> bool:
        return path in self._analyses

    def __iter__(self) -> Iterator[str]:
        return iter(self._analyses)

    def __len__(self) -> int:
        return len(self._analyses)

    def is_python(self, path: str) -> bool:
        return self._analyses[path].language is Language.PYTHON

    def analysis(self, path: str) -> FileAnalysis:
        """The file's analysis, without building its index."""
        return self._analyses[path]


class PackageIndex:
    """All analysed files of a package, module lookup and call resolution (cached)."""

    def __init__(self, package: Package, files: Iterable[FileAnalysis]) -> None:
        self.package = package
        self.files = _LazyFiles(files, {f.path: f.data for f in package.files})
        self.all_paths = frozenset(f.path for f in package.files)
        self.bundles_node_modules = any(p.startswith("node_modules/") for p in self.files)
        self.py_modules = self._python_module_index()
        self._resolve_cache: dict[tuple[str, str, str], tuple[Target, ...]] = {}
        self._binding_cache: dict[tuple[str, int, str, str, str | None], tuple[ModuleRef | None, tuple[str, ...]]] = {}
        self._imported_cache: dict[str, list[FileIndex]] = {}

    # --- Python modules -------------------------------------------------------------------------

    def _python_module_index(self) -> dict[str, str]:
        """Dotted module name -> file, for every path suffix (`src/helperlib/fetch.py` is also
        `helperlib.fetch` and `fetch`). A name several files answer to goes to the one reached by
        dropping the fewest leading folders, then the first path. A stdlib name is only taken by a
        file at the package root or a source root, where Python would really find it first."""
        best: dict[str, tuple[int, str]] = {}
        for path in self.files:
            if not self.files.is_python(path) or not path.endswith(".py"):
                continue
            parts = path[:-3].split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if not parts or not parts[-1].isidentifier():
                continue
            for drop in range(len(parts)):
                name = ".".join(parts[drop:])
                dropped = parts[:drop]
                if name.split(".")[0] in _STDLIB and not (drop == 0 or dropped in (["src"], ["lib"])):
                    continue
                rank = 0 if drop == 0 or dropped in (["src"], ["lib"]) else drop
                current = best.get(name)
                if current is None or (rank, path) < current:
                    best[name] = (rank, path)
        return {name: path for name, (_, path) in best.items()}

    def _python_file_for(self, folder_path: str) -> str | None:
        """`a/b` -> `a/b.py` or `a/b/__init__.py` if analysed."""
        if not folder_path:
            return "__init__.py" if "__init__.py" in self.files else None
        for candidate in (folder_path + ".py", folder_path + "/__init__.py"):
            if candidate in self.files:
                return candidate
        return None

    def python_module(self, from_file: str, dotted: str) -> str | None:
        """The local file a Python import of `dotted` in `from_file` loads, or None (library/stdlib)."""
        if not dotted:
            return None
        if dotted.startswith("."):
            dots = len(dotted) - len(dotted.lstrip("."))
            base = posixpath.dirname(from_file)
            for _ in range(dots - 1):
                if not base:
                    return None
                base = posixpath.dirname(base)
            rest = [p for p in dotted[dots:].split(".") if p]
            return self._python_file_for("/".join(([base] if base else []) + rest))
        found = self.py_modules.get(dotted)
        if found is not None:
            return found
        # Python 2 style implicit relative import, common in old setup.py droppers: a sibling module.
        sibling = posixpath.join(posixpath.dirname(from_file), *dotted.split("."))
        return self._python_file_for(sibling)

    def python_package_chain(self, dotted: str) -> list[str]:
        """Files an absolute `import a.b.c` runs, outermost package first (a, a.b, a.b.c), local ones only."""
        out: list[str] = []
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):
            path = self.py_modules.get(".".join(parts[:i]))
            if path is not None and path not in out:
                out.append(path)
        return out

    # --- JavaScript modules ---------------------------------------------------------------------

    def js_file(self, base: str) -> str | None:
        """Node's file/folder resolution of a root-relative path, limited to analysed files."""
        base = posixpath.normpath(base) if base else "."
        if base.startswith("../") or base == "..":
            return None
        if base == ".":
            base = ""
        for suffix in ("", *_JS_EXTENSIONS):
            candidate = base + suffix
            if candidate in self.files:
                return candidate
        folder = base + "/" if base else ""
        manifest = self.package.file(folder + "package.json") if folder else None
        if manifest is not None:
            main = _package_json_main(manifest.data)
            if main:
                target = posixpath.normpath(posixpath.join(base, main))
                for suffix in ("", *_JS_EXTENSIONS):
                    if target + suffix in self.files:
                        return target + suffix
                for ext in _JS_EXTENSIONS:
                    if f"{target}/index{ext}" in self.files:
                        return f"{target}/index{ext}"
        for ext in _JS_EXTENSIONS:
            if f"{folder}index{ext}" in self.files:
                return f"{folder}index{ext}"
        return None

    def js_module(self, from_file: str, spec: str) -> str | None:
        """The local file `require(spec)` / `import ... from spec` in `from_file` loads, or None."""
        if not spec or spec.startswith(("node:", "http:", "https:", "data:")):
            return None
        if spec.startswith(("./", "../")) or spec in (".", ".."):
            return self.js_file(posixpath.join(posixpath.dirname(from_file), spec))
        if spec.startswith("/"):
            return None
        own = self.package.npm.name if self.package.npm is not None else ""
        if own and (spec == own or spec.startswith(own + "/")):
            return self.js_file(spec[len(own):].lstrip("/"))
        # A dependency bundled inside the package (some malicious samples ship their own node_modules).
        return self.js_file(posixpath.join("node_modules", spec)) if self.bundles_node_modules else None

    # --- bindings and calls ---------------------------------------------------------------------

    def binding_effect(self, fi: FileIndex, binding: Binding) -> tuple[ModuleRef | None, tuple[str, ...]]:
        """What a binding refers to (if local) and which local module files it runs, in order."""
        key = (fi.path, binding.line, binding.name, binding.module, binding.attribute)
        cached = self._binding_cache.get(key)
        if cached is not None:
            return cached
        result = self._binding_effect(fi, binding)
        self._binding_cache[key] = result
        return result

    def _binding_effect(self, fi: FileIndex, binding: Binding) -> tuple[ModuleRef | None, tuple[str, ...]]:
        module = binding.module
        attribute = binding.attribute
        if fi.is_python:
            path = self.python_module(fi.path, module)
            if path is None:
                return None, ()
            runs = [] if module.startswith(".") else self.python_package_chain(module)
            if path not in runs:
                runs.append(path)
            if attribute and attribute != "*":
                sub_name = (module + attribute) if module.endswith(".") else f"{module}.{attribute}"
                sub = self.python_module(fi.path, sub_name)
                if sub is not None and sub != path:
                    runs.append(sub)
                    return ModuleRef(sub, ()), tuple(runs)
                return ModuleRef(path, (attribute,)), tuple(runs)
            if not module.startswith(".") and "." in module and binding.name == module.split(".")[0]:
                # `import a.b` binds `a`: calls through it name the path from the top package.
                top = self.py_modules.get(binding.name)
                if top is not None:
                    return ModuleRef(top, ()), tuple(runs)
            return ModuleRef(path, ()), tuple(runs)
        if fi.language is Language.JAVASCRIPT:
            path = self.js_module(fi.path, module)
            if path is None:
                return None, ()
            attrs = (attribute,) if attribute and attribute not in ("default", "*") else ()
            return ModuleRef(path, attrs), (path,)
        return None, ()

    def resolve_member(self, ref: ModuleRef, extra: Iterable[str], hops: int = 0) -> Target | None:
        """A name inside a local module: a function/class, a re-export, or (Python) a submodule."""
        parts = [*ref.attributes, *extra]
        fi = self.files.get(ref.path)
        if fi is None or hops > 6:
            return None
        if not parts:
            return (fi.path, MODULE_SCOPE)
        start = fi.children.get((MODULE_SCOPE, parts[0]))
        if start is not None:
            fn = fi.member_chain(start, parts[1:])
            return (fi.path, fn.qualname) if fn is not None else None
        joined = ".".join(parts)
        if joined in fi.by_qualname:
            return (fi.path, joined)
        for binding in fi.bindings_for(parts[0], MODULE_SCOPE):
            inner, _ = self.binding_effect(fi, binding)
            if inner is not None:
                member = self.resolve_member(inner, parts[1:], hops + 1)
                if member is not None:
                    return member
        if fi.is_python and fi.path.endswith("__init__.py"):
            sub = self._python_file_for(posixpath.join(posixpath.dirname(fi.path), parts[0]))
            if sub is not None:
                return self.resolve_member(ModuleRef(sub, ()), parts[1:], hops + 1)
        return None

    def callable_target(self, target: Target | None) -> Target | None:
        """Calling a class runs its constructor; calling a module (a JS default export) runs its
        exported function if the extractor named one, else nothing more (its body ran at import)."""
        if target is None:
            return None
        path, qualname = target
        fi = self.files[path]
        if qualname == MODULE_SCOPE:
            for name in ("module.exports", "exports", "default"):
                fn = fi.by_qualname.get(name)
                if fn is not None:
                    return (path, fn.qualname)
            return None
        fn = fi.by_qualname.get(qualname)
        if fn is not None and fn.is_class:
            for name in _CONSTRUCTORS:
                ctor = fi.children.get((fn.qualname, name))
                if ctor is not None:
                    return (path, ctor.qualname)
            return None
        return target

    def resolve_call(self, fi: FileIndex, call: CallSite) -> tuple[Target, ...]:
        """The package scopes a call site runs: usually none (a library call) or one; several for a
        method called on an object whose class is not known (see `_methods_by_name`)."""
        if call.callee.startswith(_CHAINED):
            chained = self._resolve_chained(fi, call)
            return (chained,) if chained is not None else ()
        if "()." in call.callee:
            returned = self._resolve_returned_member(fi, call)
            if returned is not None:
                return (returned,)
        key = (fi.path, call.scope, call.callee)
        cached = self._resolve_cache.get(key)
        if cached is not None:
            return cached
        found = self._resolve(fi, call.scope, call.callee)
        targets: tuple[Target, ...]
        if call.kind is CallKind.INLINE:
            # An inline function or class definition runs its own body there, not a constructor.
            targets = (found,) if found is not None and found[1] != MODULE_SCOPE else ()
        else:
            target = self.callable_target(found)
            targets = (target,) if target is not None else ()
            if found is None:
                parts = _callee_parts(call.callee)
                # `this.m()` lands here when m is inherited from a class in another module.
                if parts is not None and len(parts) == 2 and parts[0] not in _JS_GLOBALS \
                        and parts[1] not in _COMMON_METHODS and fi.binding_for(parts[0], call.scope) is None:
                    targets = self._methods_by_name(fi, parts[1])
        self._resolve_cache[key] = targets
        return targets

    def _methods_by_name(self, fi: FileIndex, name: str) -> tuple[Target, ...]:
        """`service.getTokens()` on an object of unknown class: the methods of that name of classes
        defined in this file or in the package modules it imports (class hierarchy analysis, only
        for distinctive names and at most a few candidates, which all count as run there)."""
        key = (fi.path, "<method>", name)
        cached = self._resolve_cache.get(key)
        if cached is not None:
            return cached
        files = self._imported_files(fi)
        candidates: list[tuple[str, int, str]] = []
        for f in files:
            for fn in f.by_last_component.get(name, []):
                owner = f.by_qualname.get(fn.parent)
                if fn.name == name and owner is not None and owner.is_class:
                    candidates.append((f.path, fn.line, fn.qualname))
        found: tuple[Target, ...] = ()
        if len(candidates) <= _MAX_METHOD_CANDIDATES:
            found = tuple((path, qualname) for path, _line, qualname in sorted(candidates))
        self._resolve_cache[key] = found
        return found

    def _imported_files(self, fi: FileIndex) -> list[FileIndex]:
        """`fi` and the package modules it imports, in binding order; once per file (a bundle with
        thousands of method names and bindings made this quadratic, 170 s on a 3.5 MB bundle)."""
        cached = self._imported_cache.get(fi.path)
        if cached is not None:
            return cached
        files = [fi]
        seen = {fi.path}
        for b in fi.analysis.bindings:
            for path in self.binding_effect(fi, b)[1]:
                other = self.files.get(path)
                if other is not None and path not in seen:
                    seen.add(path)
                    files.append(other)
        self._imported_cache[fi.path] = files
        return files

    def _resolve_chained(self, fi: FileIndex, call: CallSite) -> Target | None:
        """`new Lib().run()`: the extractor writes the second call as "<expr>.run". When the call just
        before it on the same line constructs a class of the package, this is that class's method; so
        for a constructor function whose members are `this.run = function` or `Lib.prototype.run`
        (`(new Beacon()).run()`: a real sample's install-time DNS beacon was read as unreached)."""
        rest = call.callee[len(_CHAINED):].split(".")
        before = fi.call_before(call)
        if before is None or not rest or not all(rest):
            return None
        return self._member_of(self._resolve(fi, before.scope, before.callee), rest)

    def _member_of(self, found: Target | None, rest: list[str]) -> Target | None:
        """The member `rest` of the package function or class `found` (its methods, `this.x = function`,
        the object literal it returns), if it has one."""
        if found is None or found[1] == MODULE_SCOPE:
            return None
        target_file = self.files[found[0]]
        start = target_file.by_qualname.get(found[1])
        if start is None:
            return None
        member = target_file.member_chain(start, rest)
        return (target_file.path, member.qualname) if member is not None else None

    def _resolve_returned_member(self, fi: FileIndex, call: CallSite) -> Target | None:
        """`helper().run()`: the extractors write the callee as `helper().run`. When `helper` is a function
        of the package with a member `run` (a method of the object literal it returns, named `helper.run`;
        a method of a class instantiated as `Client().send()`), that member runs here. A factory defined in
        a required module (`lib.make().run()`) resolves the same way. Anything else stays a library call."""
        matched = _RETURNED_MEMBER.fullmatch(call.callee)
        if matched is None:
            return None
        return self._member_of(self._resolve(fi, call.scope, matched.group(1)), matched.group(2).split("."))

    def _resolve(self, fi: FileIndex, scope: str, callee: str) -> Target | None:
        parts = _callee_parts(callee)
        if not parts:
            return None
        head = parts[0]
        if head.startswith("<"):
            fn = fi.anonymous(head)
            return (fi.path, fn.qualname) if fn is not None else None
        if head in _SELF_NAMES and len(parts) > 1:
            return self._resolve_self(fi, scope, parts[1:])
        if not fi.is_python:
            if parts[:2] == ["module", "exports"] and len(parts) > 2:
                parts = parts[2:]
            elif head == "exports" and len(parts) > 1:
                parts = parts[1:]
            head = parts[0]
        for s in fi.scope_chain(scope):
            fn = fi.children.get((s, head))
            if fn is not None:
                found = fi.member_chain(fn, parts[1:])
                if found is not None:
                    return (fi.path, found.qualname)
                break
        bindings = fi.bindings_for(head, scope)
        if bindings:
            for binding in bindings:
                ref, _ = self.binding_effect(fi, binding)
                if ref is not None:
                    member = self.resolve_member(ref, parts[1:])
                    if member is not None:
                        return member
            return None
        joined = ".".join(parts)
        if joined in fi.by_qualname:
            return (fi.path, joined)
        for star in fi.star_bindings:
            # `from .mod import *` / `export * from './mod'`: the name may come from that module.
            path = self.python_module(fi.path, star.module) if fi.is_python else self.js_module(fi.path, star.module)
            if path is not None and path != fi.path:
                member = self.resolve_member(ModuleRef(path, ()), parts)
                if member is not None and member[1] != MODULE_SCOPE:
                    return member
        if not fi.is_python and len(parts) == 2 and head not in _JS_GLOBALS:
            # `o.run()` where `run` is a method of an object literal or a function stored on a local
            # object: the extractor names such functions by their own name. Only a function of that
            # name that is unique in the file, and only for a receiver not bound to a module.
            same_name = [fn for fn in fi.by_last_component.get(parts[1], [])
                         if fn.name == parts[1] and not getattr(fi.by_qualname.get(fn.parent), "is_class", False)]
            if len(same_name) == 1:
                return (fi.path, same_name[0].qualname)
        if fi.is_python and len(parts) > 1:
            # The Python extractor writes callees through their imports: `grab()` after
            # `from helperlib.fetch import grab` is "helperlib.fetch.grab". Longest local module prefix.
            for i in range(len(parts) - 1, 0, -1):
                path = self.python_module(fi.path, ".".join(parts[:i]))
                if path is not None:
                    return self.resolve_member(ModuleRef(path, ()), parts[i:])
        return None

    def _resolve_self(self, fi: FileIndex, scope: str, rest: list[str]) -> Target | None:
        cls = fi.enclosing_class(scope)
        if cls is not None:
            fn = fi.member_chain(cls, rest)
            if fn is not None:
                return (fi.path, fn.qualname)
        # Prototype methods and object literals: `Foo.prototype.a = function () { this.b() }`.
        chain = [s for s in fi.scope_chain(scope) if s != MODULE_SCOPE]
        for s in chain:
            owner = s.rsplit(".", 1)[0] if "." in s else ""
            if owner:
                fn = fi.by_qualname.get(f"{owner}.{'.'.join(rest)}")
                if fn is not None:
                    return (fi.path, fn.qualname)
        if len(rest) == 1:
            same_name = fi.by_last_component.get(rest[0], [])
            if len(same_name) == 1:
                return (fi.path, same_name[0].qualname)
        return None


def _package_json_main(data: bytes) -> str | None:
    try:
        doc = json.loads(data.decode("utf-8-sig", errors="replace"))
    except (ValueError, RecursionError):
        return None
    main = doc.get("main") if isinstance(doc, dict) else None
    return main if isinstance(main, str) and main else None
