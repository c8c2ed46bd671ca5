"""The order the features stage reads a package's files in: what runs first, first (issue 14 part 2).

The package work budget (`malseq.features.budget.PACKAGE_WORK_UNITS`) may run out before every
file is read, so the files a cut must never drop come first:

1. install time: PyPI's root `setup.py` (and the modules the `.pth` start-up lines import, fed
   in by the caller); npm's lifecycle scripts' files (`node x.js`, `node -r`, `require` in
   `node -e`, `npm run X` followed);
2. import time: PyPI's top-level packages (`__init__.py` or module) and the modules of its
   declared entry points; npm's `main` (else `index.js`), `exports` and `bin` files;

and after each file of a tier, the package's own modules it imports (its bindings, resolved the
way the sequence stage resolves them), transitively, before the next tier starts. Then the
rest, in the package's own order.

The order only decides which files a cut leaves out: the analyses are put back in the package's
order afterwards, so an uncut package's analysis does not depend on it. Each file is yielded with
its `Tier`: the caller never cuts an `INSTALL` file (the package budget only cuts the import path
and the rest), because the attacker writes the order of the install path's imports: 60 padding
modules imported before the payload would otherwise push the payload past the cut.
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Iterator
from enum import Enum

from malseq.features.commands import (
    FILE,
    INLINE_REQUIRE,
    MAX_SCRIPT_NESTING,
    PRELOAD,
    SCRIPT,
    parse_command,
    scripts_started,
)
from malseq.features.types import FileAnalysis
from malseq.intake.package import Language, Package, PackageFile

__all__ = ["ReadingOrder", "Tier"]


class Tier(Enum):
    """Why a file is read when it is: it runs at install time, at import time, or neither (as far as
    the order can tell)."""

    INSTALL = "install"
    IMPORT = "import"
    REST = "rest"


class ReadingOrder:
    """Iterates `(index in package.source_files, file, tier)`, install path first (see the module doc).

    `imports_of(analysis)` after a file is read queues the package modules it imports when that
    file was an entry-point file (or reached from one); call it before asking for the next file."""

    def __init__(self, package: Package) -> None:
        from malseq.sequence.index import PackageIndex

        self._package = package
        self._files = package.source_files
        self._index: dict[str, int] = {}
        for i, f in enumerate(self._files):
            self._index.setdefault(f.path, i)
        # Module resolution over every source file, read or not: the sequence stage's own rules.
        self._resolver = PackageIndex(package, (FileAnalysis(f.path, f.language, (), (), (), ())
                                                for f in self._files if f.language is not None))
        self._queue: deque[int] = deque()
        self._queued: set[int] = set()
        self._priority: set[int] = set()  # files read as part of a tier: their imports follow them
        # The tier being queued: a module pushed while a tier's queue drains (imports_of between two
        # files) belongs to that tier; .pth imports, pushed before the iteration starts, to INSTALL.
        self._current = Tier.INSTALL
        self._tier: dict[int, Tier] = {}

    def __iter__(self) -> Iterator[tuple[int, PackageFile, Tier]]:
        tiers = ((Tier.INSTALL, self._install_files), (Tier.IMPORT, self._import_files))
        for tier, files in tiers:
            self._current = tier
            for path in files():
                self._push(path)
            while self._queue:
                i = self._queue.popleft()
                yield i, self._files[i], self._tier[i]
        self._current = Tier.REST
        for i, f in enumerate(self._files):
            if i not in self._queued:
                self._queued.add(i)
                yield i, f, Tier.REST

    def imports_of(self, analysis: FileAnalysis) -> None:
        """Queue the package's own modules `analysis` binds, if its file is on the install or import path
        (a `.pth` file's analysis always is)."""
        i = self._index.get(analysis.path)
        if i is not None and i not in self._priority:
            return
        if i is None and not analysis.path.endswith(".pth"):
            return
        for binding in analysis.bindings:
            if analysis.language is Language.PYTHON:
                self._python_import(analysis.path, binding.module)
                if binding.attribute:  # `from pkg import submodule`
                    module = binding.module if binding.module.endswith(".") else binding.module + "."
                    self._python_import(analysis.path, module + binding.attribute)
            else:
                self._push(self._resolver.js_module(analysis.path, binding.module))

    def _python_import(self, from_file: str, dotted: str) -> None:
        """Queue what `import dotted` in `from_file` runs: an absolute import's packages outermost
        first (`a/__init__.py` before `a/b.py`), else the one module it loads."""
        chain: list[str | None] = [] if dotted.startswith(".") else list(self._resolver.python_package_chain(dotted))
        for path in chain or [self._resolver.python_module(from_file, dotted)]:
            self._push(path)

    def _push(self, path: str | None) -> None:
        i = self._index.get(path) if path is not None else None
        if i is None or i in self._queued:
            return
        self._queued.add(i)
        self._priority.add(i)
        self._tier[i] = self._current
        self._queue.append(i)

    def _install_files(self) -> list[str | None]:
        out: list[str | None] = []
        if self._package.pypi is not None:
            out.append("setup.py")
        npm = self._package.npm
        if npm is not None:
            scripts = dict(npm.scripts)
            seen: set[str] = set()

            def script(name: str, command: str, depth: int) -> None:
                if name in seen or depth > MAX_SCRIPT_NESTING:
                    return
                seen.add(name)
                for target in parse_command(command):
                    if target.kind == SCRIPT:
                        for other in scripts_started(target):
                            if other in scripts:
                                script(other, scripts[other], depth + 1)
                    elif target.kind in (PRELOAD, INLINE_REQUIRE):
                        out.append(self._resolver.js_module("package.json", target.value))
                    elif target.kind == FILE:
                        out.append(target.value if target.value in self._index
                                   else self._resolver.js_file(target.value))

            for name, command in npm.lifecycle_scripts:
                script(name, command, 0)
        return out

    def _import_files(self) -> list[str | None]:
        out: list[str | None] = []
        pypi = self._package.pypi
        if pypi is not None:
            for name in pypi.top_level_packages:
                for candidate in (f"{name}/__init__.py", f"src/{name}/__init__.py", f"{name}.py", f"src/{name}.py"):
                    out.append(candidate)
                out.append(self._resolver.py_modules.get(name))
            for ep in pypi.entry_points:
                module = ep.target.split("[", 1)[0].partition(":")[0].strip()
                out.extend(self._resolver.python_package_chain(module))
        npm = self._package.npm
        if npm is not None:
            out.append(self._resolver.js_file(npm.main.lstrip("/")) if npm.main else self._resolver.js_file("index"))
            out.extend(self._resolver.js_file(x.lstrip("/")) for x in npm.exports)
            out.extend(self._resolver.js_file(spec.lstrip("/")) for _name, spec in npm.bin)
        return [posixpath.normpath(p) if p else None for p in out]
