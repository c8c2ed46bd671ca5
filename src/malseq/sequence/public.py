"""A package's public surface: what the victim's program can call after `import pkg` / `require(pkg)`.

The sequence's `use` stage walks these, in the order given here (file path, then position), after
the import stage. What no entry point and no public name reaches stays `unreached`.

Python: every module under a top-level package whose path has no private (`_x`) or test/example
part (`tests/`, `examples/`, `test_x.py`, `conftest.py`...), its body (importing it runs it), its
public functions, and the public and special (`__init__`, `__call__`...) methods of its public
classes; a top-level package's `__init__.py` also exposes what it re-exports (`from ._impl import
Client`). JavaScript: the modules `main` and the `exports` map start, and the modules they hand out
whole (`module.exports = require('./lib')`); their module-level functions (named or the anonymous
`module.exports = function`), and the public methods of their classes. Without an export analysis
a module-level JavaScript function nothing calls counts as exported: a helper that is neither
called nor exported is dead code either way.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from malseq.features.types import MODULE_SCOPE, FunctionDef
from malseq.sequence.index import PackageIndex, Target

__all__ = ["PublicEntry", "fallback_public_api", "js_public_api", "python_public_api"]

PublicEntry = tuple[str, Target]  # (entry point label, function/class method or module body)

# Folder and module names that hold a package's own tests, examples and docs, not its API.
_NOT_API = frozenset({"test", "tests", "testing", "example", "examples", "doc", "docs", "benchmark", "benchmarks",
                      "conftest"})
_MAX_REEXPORT_HOPS = 8  # `module.exports = require(...)` chains followed from one module


def _is_public_python_name(name: str) -> bool:
    return bool(name) and (not name.startswith("_") or (name.startswith("__") and name.endswith("__")))


def _is_public_js_name(name: str) -> bool:
    return not name.startswith(("_", "#"))


def _public_python_module(relative: str) -> bool:
    """Is `relative` (a path below the top-level package's folder) a public module?"""
    *folders, last = relative.split("/")
    if any(part.startswith("_") or part in _NOT_API for part in folders):
        return False
    if last == "__init__.py":
        return True
    stem = last[:-3]
    return not (stem.startswith(("_", "test_")) or stem.endswith("_test") or stem in _NOT_API)


def _class_methods(functions: Sequence[FunctionDef], cls: FunctionDef, python: bool) -> list[FunctionDef]:
    public = _is_public_python_name if python else _is_public_js_name
    return sorted((f for f in functions if f.parent == cls.qualname and not f.is_class and public(f.name)),
                  key=lambda f: f.line)


def _definitions(index: PackageIndex, path: str, python: bool) -> list[tuple[int, list[Target]]]:
    """(line, targets) of each public module-level function and class of one file."""
    analysis = index.files.analysis(path)
    out: list[tuple[int, list[Target]]] = []
    for fn in analysis.functions:
        if fn.parent != MODULE_SCOPE:
            continue
        if python and not (fn.name and not fn.name.startswith("_")):
            continue
        if not python and fn.name and not _is_public_js_name(fn.name):
            continue
        if fn.is_class:
            out.append((fn.line, [(path, m.qualname) for m in _class_methods(analysis.functions, fn, python)]))
        else:
            out.append((fn.line, [(path, fn.qualname)]))
    return out


def _reexports(index: PackageIndex, path: str) -> list[tuple[int, list[Target]]]:
    """(line, targets) of the package functions and classes an `__init__.py` re-exports by name."""
    fi = index.files[path]
    out: list[tuple[int, list[Target]]] = []
    for binding in fi.analysis.bindings:
        if binding.scope != MODULE_SCOPE or not binding.name or binding.name.startswith("_") or binding.attribute in (
                None, "*"):
            continue
        ref, _runs = index.binding_effect(fi, binding)
        target = index.resolve_member(ref, ()) if ref is not None else None
        if target is None or target[1] == MODULE_SCOPE:
            continue
        owner = index.files.analysis(target[0])
        fn = next((f for f in owner.functions if f.qualname == target[1]), None)
        if fn is None:
            continue
        if fn.is_class:
            out.append((binding.line, [(target[0], m.qualname) for m in _class_methods(owner.functions, fn, True)]))
        else:
            out.append((binding.line, [target]))
    return out


def _collect(entries: list[PublicEntry], seen: set[Target], found: list[tuple[int, list[Target]]]) -> None:
    for _line, targets in sorted(found, key=lambda item: item[0]):
        for target in targets:
            if target not in seen:
                seen.add(target)
                entries.append((f"use {target[0]} {target[1]}", target))


def python_public_api(index: PackageIndex, top_files: Sequence[str]) -> list[PublicEntry]:
    """The public surface of the top-level packages/modules whose files are `top_files`."""
    entries: list[PublicEntry] = []
    seen: set[Target] = set()
    for top in top_files:
        if top.endswith("/__init__.py"):
            root = top[: -len("__init__.py")]
            modules = sorted(p for p in index.files if p.startswith(root) and p.endswith(".py")
                             and index.files.is_python(p) and _public_python_module(p[len(root):]))
        else:
            modules = [top]
        for path in modules:
            module = (path, MODULE_SCOPE)
            if module not in seen:
                seen.add(module)
                entries.append((f"use import {path}", module))
            found = _definitions(index, path, python=True)
            if posixpath.basename(path) == "__init__.py":
                found += _reexports(index, path)
            _collect(entries, seen, found)
    return entries


def js_public_api(index: PackageIndex, files: Sequence[str]) -> list[PublicEntry]:
    """The public surface of the modules `main`/`exports` start (`files`, in that order)."""
    queue = list(dict.fromkeys(files))
    hops = 0
    i = 0
    while i < len(queue) and hops < _MAX_REEXPORT_HOPS * max(1, len(files)):
        fi = index.files[queue[i]]
        for binding in fi.analysis.bindings:
            if binding.scope == MODULE_SCOPE and binding.name.startswith(("module.exports", "exports")):
                ref, _runs = index.binding_effect(fi, binding)
                if ref is not None and ref.path not in queue:
                    queue.append(ref.path)
                    hops += 1
        i += 1
    entries: list[PublicEntry] = []
    seen: set[Target] = set()
    for path in queue:
        _collect(entries, seen, _definitions(index, path, python=False))
    return entries


def _test_or_example(path: str) -> bool:
    *folders, last = path.split("/")
    stem = last.rsplit(".", 1)[0]
    return any(part in _NOT_API for part in folders) or stem in _NOT_API or stem.startswith("test_") \
        or stem.endswith(("_test", ".test", ".spec"))


def fallback_public_api(index: PackageIndex, paths: Sequence[str]) -> list[PublicEntry]:
    """A package without entry points (a lone script, a manifest-less folder) was run file by file:
    its files' public functions and class methods are its API, tests and examples excepted."""
    kept = [p for p in paths if not _test_or_example(p)]
    js = [p for p in kept if not index.files.is_python(p) and p.endswith((".js", ".cjs", ".mjs"))]
    python = [p for p in kept if index.files.is_python(p) and p.endswith(".py")]
    entries = js_public_api(index, js) if js else []
    seen = {target for _label, target in entries}
    for label, target in python_public_api(index, python):
        if target not in seen:
            seen.add(target)
            entries.append((label, target))
    return entries
