"""Package-level behaviour events: npm lifecycle scripts and .pth files."""

from __future__ import annotations

import json

from malseq.features.shell import analyse_command
from malseq.features.strings import classify_literal
from malseq.features.types import MODULE_SCOPE, BehaviourEvent
from malseq.intake.package import Package
from malseq.report.sanitize import clean

# Scripts npm runs by itself when the package is installed as a dependency.
INSTALL_TIME_SCRIPTS = ("preinstall", "install", "postinstall")


def _json_key_line(text: str, key: str) -> int:
    """1-based line of `"key":` in a JSON text (first occurrence), or 1."""
    needle = json.dumps(key) + ":"
    compact = needle.replace(":", "")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if needle in line.replace(" ", "").replace("\t", "") or compact + ":" in line:
            return lineno
    return 1


def manifest_events(package: Package) -> tuple[BehaviourEvent, ...]:
    events: list[BehaviourEvent] = []
    if package.npm is not None:
        pj = package.file("package.json")
        text = pj.text() if pj is not None else ""
        for name, command in package.npm.lifecycle_scripts:
            line = _json_key_line(text, name)
            snippet = clean(f"{name}: {command}", 160)
            if name in INSTALL_TIME_SCRIPTS:
                events.append(BehaviourEvent("npm_install_script", "package.json", line, 0, MODULE_SCOPE, snippet))
            ids = analyse_command(command)
            ids += [b for b in classify_literal(command) if b not in ids]
            events.extend(BehaviourEvent(b, "package.json", line, 0, MODULE_SCOPE, snippet) for b in ids)
    if package.pypi is not None:
        for path in package.pypi.pth_files:
            pth = package.file(path)
            if pth is None:
                continue
            for lineno, line in enumerate(pth.text().splitlines(), start=1):
                # site.py executes .pth lines that start with "import" at every interpreter start.
                if line.startswith(("import ", "import\t")):
                    events.append(BehaviourEvent("pth_code_execution", path, lineno, 0, MODULE_SCOPE,
                                                 clean(line.strip(), 160)))
    return tuple(events)
