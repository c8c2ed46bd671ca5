"""Package-level behaviour events: npm scripts and .pth files.

npm: every lifecycle script and every script they run through `npm run X` / `yarn X` / `pnpm X`
chains (`features.commands.reachable_scripts`), each analysed once; each event names its
script (`BehaviourEvent.script`), which is how the sequence stage places it.

This stage finds the entries (scripts, .pth lines) and where they are; the manifest rules
(`malseq.features.rules.install_hook`) decide which install-hook behaviours each one shows.
"""

from __future__ import annotations

import json

from malseq.features.commands import (
    is_npm_build_script,
    node_inline_scripts,
    own_file_chmod,
    reachable_scripts,
    script_behaviours,
    shipped_program_names,
    split_command,
)
from malseq.features.rules import REGISTRY, ManifestContext, ManifestEntry
from malseq.features.rules.install_hook import INSTALL_TIME_SCRIPTS
from malseq.features.types import MODULE_SCOPE, BehaviourEvent
from malseq.intake.package import Package
from malseq.sanitize import clean

__all__ = ["INSTALL_TIME_SCRIPTS", "manifest_events", "node_inline_scripts", "npm_script_events"]


def _json_key_line(text: str, key: str) -> int:
    """1-based line of `"key":` in a JSON text (first occurrence), or 1."""
    needle = json.dumps(key) + ":"
    compact = needle.replace(":", "")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if needle in line.replace(" ", "").replace("\t", "") or compact + ":" in line:
            return lineno
    return 1


def npm_script_events(package: Package) -> tuple[BehaviourEvent, ...]:
    """Events of the lifecycle scripts and of the scripts they run, script by script."""
    npm = package.npm
    if npm is None:
        return ()
    pj = package.file("package.json")
    text = pj.text() if pj is not None else ""
    lifecycle = [name for name, _command in npm.lifecycle_scripts]
    shipped = shipped_program_names(f.path for f in package.files)
    events: list[BehaviourEvent] = []
    for name, command in reachable_scripts(dict(npm.scripts), lifecycle):
        line = _json_key_line(text, name)
        snippet = clean(f"{name}: {command}", 160)
        entry = ManifestContext(ManifestEntry.NPM_SCRIPT, "package.json", name, command, shipped)
        # The install-hook rules first, then what the command line does.
        if is_npm_build_script(command, shipped):
            # A build step: a chmod of the package's own files is a file write, not a dropper's.
            chmods = any(own_file_chmod(s) for s in split_command(command))
            ids = REGISTRY.manifest_behaviours(entry) + (["fs_write"] if chmods else [])
        else:
            ids = REGISTRY.manifest_behaviours(entry) + script_behaviours(command)
        events.extend(BehaviourEvent(b, "package.json", line, 0, MODULE_SCOPE, snippet, script=name) for b in ids)
    return tuple(events)


def manifest_events(package: Package) -> tuple[BehaviourEvent, ...]:
    events = list(npm_script_events(package))
    if package.pypi is not None:
        for path in package.pypi.pth_files:
            pth = package.file(path)
            if pth is None:
                continue
            for lineno, pth_line in enumerate(pth.text().splitlines(), start=1):
                for behaviour in REGISTRY.manifest_behaviours(ManifestContext(ManifestEntry.PTH_LINE, path, "",
                                                                              pth_line)):
                    events.append(BehaviourEvent(behaviour, path, lineno, 0, MODULE_SCOPE,
                                                 clean(pth_line.strip(), 160)))
    return tuple(events)
