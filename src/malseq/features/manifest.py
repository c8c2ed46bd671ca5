"""Package-level behaviour events: npm lifecycle scripts and .pth files."""

from __future__ import annotations

from malseq.features.types import MODULE_SCOPE, BehaviourEvent
from malseq.intake.package import Package
from malseq.report.sanitize import clean


def manifest_events(package: Package) -> tuple[BehaviourEvent, ...]:
    events: list[BehaviourEvent] = []
    if package.npm is not None:
        for name, command in package.npm.lifecycle_scripts:
            if name in ("preinstall", "install", "postinstall"):
                events.append(BehaviourEvent("npm_install_script", "package.json", 1, 0, MODULE_SCOPE,
                                             clean(f"{name}: {command}", 160)))
    return tuple(events)
