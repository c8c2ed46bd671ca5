"""CPU seconds and counted work of one hostile file per shape (deep nesting, long chains).

Usage: PYTHONPATH=src python bench/deep_nesting_probe.py js|py SHAPE[,SHAPE...] DEPTH [DEADLINE_CPU_S]

Generates the file in memory (nothing is run), analyses it with the engine and prints size, CPU
seconds, events, whether the file was cut (budget_exhausted) and the work units spent (JavaScript).
"""

from __future__ import annotations

import sys
import time

from malseq._deadline import Deadline
from malseq.errors import TimeBudgetExceeded
from malseq.features.budget import FILE_WORK_UNITS, WorkBudget
from malseq.features.javascript import analyse_javascript
from malseq.features.python import analyse_python
from malseq.intake.package import Language, PackageFile

JS = {
 "arr": lambda n: "var a = " + "["*n + "'x'" + "]"*n + ";",
 "obj": lambda n: "var a = " + "{a:"*n + "1" + "}"*n + ";",
 "par": lambda n: "var a = " + "("*n + "1" + ")"*n + ";",
 "plus": lambda n: "var a = " + "+".join(["a"]*n) + ";",
 "splus": lambda n: "var a = " + "+".join(["'a'"]*n) + ";",
 "call": lambda n: "var a = " + "f("*n + "1" + ")"*n + ";",
 "member": lambda n: "var a = b" + ".c"*n + ";",
 "sub": lambda n: "var a = b" + "['c']"*n + ";",
 "fn": lambda n: "function f(){"*n + "}"*n,
 "vfn": lambda n: "var a=function(){"*n + "}"*n,
 "assign": lambda n: "a=" * n + "1;",
 "tern": lambda n: "x=" + "a?b:"*n + "c;",
 "env": lambda n: "var a = " + "["*n + "process.env.x" + "]"*n + ";" + "process.env.y;"*2000,
}
PY = {
 "arr": lambda n: "a = " + "["*n + "'x'" + "]"*n + "\n",
 "par": lambda n: "a = " + "("*n + "1" + ")"*n + "\n",
 "plus": lambda n: "a = " + "+".join(["a"]*n) + "\n",
 "splus": lambda n: "a = " + "+".join(["'a'"]*n) + "\n",
 "call": lambda n: "a = " + "f("*n + "1" + ")"*n + "\n",
 "member": lambda n: "a = b" + ".c"*n + "\n",
 "sub": lambda n: "a = b" + "['c']"*n + "\n",
 "dict": lambda n: "a = " + "{'a':"*n + "1" + "}"*n + "\n",
 "lam": lambda n: "a = " + "lambda: "*n + "1\n",
 "not": lambda n: "a = " + "not "*n + "1\n",
 "env": lambda n: "a = " + "["*n + "os.environ" + "]"*n + "\n" + "os.environ\n"*2000,
}


def probe(lang: str, kind: str, depth: int, deadline_s: float) -> str:
    """One generated file of this shape and depth, analysed once: a line of figures."""
    javascript = lang == "js"
    data = (JS if javascript else PY)[kind](depth).encode()
    file = PackageFile("f.js" if javascript else "f.py", data,
                       Language.JAVASCRIPT if javascript else Language.PYTHON, False)
    deadline = Deadline(deadline_s)
    start = time.process_time()
    try:
        if javascript:
            budget = WorkBudget(FILE_WORK_UNITS, deadline)
            result = analyse_javascript(file, deadline, budget)
            used = budget.used
        else:
            result = analyse_python(file, deadline)
            used = -1  # the Python engine keeps its own count
        out = (f"events {len(result.events)} exhausted {result.budget_exhausted} "
               f"perr {result.parse_errors} used {used}")
    except TimeBudgetExceeded as e:
        out = f"TIMEOUT {e}"
    except RecursionError:
        out = "RECURSION"
    return f"{lang} {kind} {depth} {len(data)} cpu {time.process_time() - start:.2f} {out}"


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("js", "py"):
        print(__doc__, file=sys.stderr)
        return 2
    lang, kinds, depth = argv[0], argv[1].split(","), int(argv[2])
    deadline_s = float(argv[3]) if len(argv) > 3 else 30.0
    for kind in kinds:
        print(probe(lang, kind, depth, deadline_s), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
