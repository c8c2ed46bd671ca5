"""CPU seconds and counted work of one hostile file per shape (deep nesting, long chains).

Usage: PYTHONPATH=src python bench/deep_nesting_probe.py js|py SHAPE[,SHAPE...] DEPTH [DEADLINE_CPU_S]

Generates the file in memory (nothing is run), analyses it with the engine and prints size, CPU
seconds, events, whether the file was cut (budget_exhausted) and the work units spent (JavaScript).
"""
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
lang = sys.argv[1] if __name__ == "__main__" else None; kinds = sys.argv[2].split(","); n = int(sys.argv[3])
if lang is None: kinds=[]
table = JS if lang == "js" else PY
for kind in kinds:
    data = table[kind](n).encode()
    pf = PackageFile("f.js" if lang=="js" else "f.py", data, Language.JAVASCRIPT if lang=="js" else Language.PYTHON, False)
    dl = Deadline(float(sys.argv[4]) if len(sys.argv) > 4 else 30)
    t = time.process_time()
    try:
        if lang == "js":
            w = WorkBudget(FILE_WORK_UNITS, dl); r = analyse_javascript(pf, dl, w); used = w.used
        else:
            r = analyse_python(pf, dl); used = -1
        out = f"events {len(r.events)} exhausted {r.budget_exhausted} perr {r.parse_errors} used {used}"
    except TimeBudgetExceeded as e:
        out = f"TIMEOUT {e}"
    except RecursionError:
        out = "RECURSION"
    print(lang, kind, n, len(data), f"cpu {time.process_time()-t:.2f}", out, flush=True)
