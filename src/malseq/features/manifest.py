"""Package-level behaviour events: npm lifecycle scripts and .pth files."""

from __future__ import annotations

import json
import re
import shlex

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


_NODE_INLINE_FLAGS = ("-e", "--eval", "-p", "--print")


def node_inline_scripts(command: str) -> list[str]:
    """The code of every `node -e '...'` (or --eval/-p/--print) in a shell command line."""
    if "node" not in command:
        return []
    try:
        words = shlex.split(command, posix=True)
    except ValueError:
        return []
    scripts: list[str] = []
    for i, word in enumerate(words[:-1]):
        if re.search(r"(?:^|[/\\])node(?:\.exe)?$", word):
            for j in range(i + 1, len(words) - 1):
                flag = words[j]
                if flag in _NODE_INLINE_FLAGS:
                    scripts.append(words[j + 1])
                    break
                if flag.startswith(("--eval=", "--print=")):
                    scripts.append(flag.split("=", 1)[1])
                    break
                if not flag.startswith("-"):
                    break
    return scripts


def _inline_javascript_behaviours(command: str) -> list[str]:
    """Behaviours of JavaScript run inline by an npm script, e.g. `node -e "require('https').get(...)"`."""
    from malseq.features.javascript import analyse_javascript_source

    found: list[str] = []
    for code in node_inline_scripts(command):
        for behaviour, _line, _column in analyse_javascript_source(code, "package.json<node -e>"):
            if behaviour not in found:
                found.append(behaviour)
    return found


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
            ids += [b for b in _inline_javascript_behaviours(command) if b not in ids]
            events.extend(BehaviourEvent(b, "package.json", line, 0, MODULE_SCOPE, snippet) for b in ids)
    if package.pypi is not None:
        for path in package.pypi.pth_files:
            pth = package.file(path)
            if pth is None:
                continue
            for lineno, pth_line in enumerate(pth.text().splitlines(), start=1):
                # site.py executes .pth lines that start with "import" at every interpreter start.
                if pth_line.startswith(("import ", "import\t")):
                    events.append(BehaviourEvent("pth_code_execution", path, lineno, 0, MODULE_SCOPE,
                                                 clean(pth_line.strip(), 160)))
    return tuple(events)
