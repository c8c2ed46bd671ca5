"""`.pth` start-up code analysed as Python source.

site.py executes every line of a `.pth` file in site-packages that starts with `import ` or
`import<TAB>` at every interpreter start (`exec(line)`), so such a line is a one-line Python
program, not just an import: `import os, urllib.request; urllib.request.urlopen(...)`. Each
executable line is analysed with the Python engine at its own line of the `.pth` file (the other
lines are left blank), giving one FileAnalysis whose path is the `.pth` file: its events carry the
`.pth` file:line and its imports of the package's modules are call-graph bindings like any other.

Bounded like other input: at most `MAX_PTH_CODE_LINES` executable lines per file, each at most
`MAX_PTH_LINE_CHARS` characters (longer lines are cut there, like a budget-cut file), and the
engine's per-file work budget.
"""

from __future__ import annotations

from malseq._deadline import Deadline
from malseq.features.budget import FILE_WORK_UNITS, PackageWorkBudget, WorkBudget, file_read_units
from malseq.features.types import FileAnalysis
from malseq.intake.package import Package

__all__ = ["MAX_PTH_CODE_LINES", "MAX_PTH_LINE_CHARS", "pth_code", "pth_code_analyses"]

MAX_PTH_CODE_LINES = 256
MAX_PTH_LINE_CHARS = 65_536


def pth_code(text: str) -> str | None:
    """The executable lines of a `.pth` text as Python source, each on its own line number (the
    rest blank), or None when no line is executable."""
    out: list[str] = []
    found = 0
    for line in text.splitlines():
        if found < MAX_PTH_CODE_LINES and line.startswith(("import ", "import\t")):
            found += 1
            out.append(line[:MAX_PTH_LINE_CHARS].rstrip())
        else:
            out.append("")
    return "\n".join(out) + "\n" if found else None


def pth_code_analyses(package: Package, deadline: Deadline,
                      meter: PackageWorkBudget | None = None) -> tuple[FileAnalysis, ...]:
    """One analysis per `.pth` file of the package that holds executable lines; their parse and work
    units are charged to `meter` (the package budget), if given."""
    from malseq.features.python import analyse_python_text

    if package.pypi is None:
        return ()
    out: list[FileAnalysis] = []
    for path in package.pypi.pth_files:
        pth = package.file(path)
        source = pth_code(pth.text()) if pth is not None else None
        if source is None:
            continue
        deadline.check(f"analysing {path}")
        code = source.encode("utf-8")
        if meter is not None:
            meter.charge(file_read_units(code, True))
        out.append(analyse_python_text(path, code, WorkBudget(FILE_WORK_UNITS, deadline, f"analysing {path}",
                                                              meter=meter)))
    return tuple(out)
