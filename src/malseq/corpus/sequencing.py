"""Pluggable sequencers: (Package, PackageAnalysis) -> ordered behaviour ids and model text.

The default ("auto") is `malseq.sequence:corpus_sequence`, the execution-order sequence the
model reads, when that stage is installed; otherwise, and for any package where it fails,
`placeholder`: a PLACEHOLDER ORDERING used until `malseq.sequence` exists: manifest
events first (install hooks run first), then every event sorted by (file, line, column).
It is not the execution order the model is meant to read. Pick another sequencer with
`--sequencer module:function`; the function returns `(ids, text)` or an object with
`ids`/`behaviour_ids` and `text` attributes. The cache records which sequencer made a row.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from malseq.features.types import PackageAnalysis
from malseq.intake.package import Package

Sequencer = Callable[[Package, PackageAnalysis], tuple[list[str], str]]

PLACEHOLDER = "placeholder-file-line"


def _phrase(behaviour_id: str) -> str:
    from malseq.features.catalogue import BY_ID

    b = BY_ID.get(behaviour_id)
    return b.phrase if b else behaviour_id.replace("_", " ")


def placeholder_sequence(package: Package, analysis: PackageAnalysis) -> tuple[list[str], str]:
    """PLACEHOLDER ORDERING (not execution order): manifest events, then events by (file, line)."""
    events = list(analysis.manifest_events) + sorted(
        (e for f in analysis.files for e in f.events), key=lambda e: (e.file, e.line, e.column)
    )
    ids = [e.behaviour for e in events]
    return ids, " ; ".join(_phrase(i) for i in ids)


AUTO_TARGET = "malseq.sequence:corpus_sequence"


def resolve_sequencer(spec: str | None) -> tuple[str, Sequencer]:
    """`None`/"auto" -> the sequence stage if present, else the placeholder; "placeholder";
    "module:function" -> that function (adapted)."""
    if spec in ("placeholder", PLACEHOLDER):
        return PLACEHOLDER, placeholder_sequence
    if not spec or spec == "auto":
        try:
            importlib.import_module(AUTO_TARGET.partition(":")[0]).corpus_sequence  # noqa: B018
        except (ImportError, AttributeError):
            return PLACEHOLDER, placeholder_sequence
        spec = AUTO_TARGET
    module_name, _, func_name = spec.partition(":")
    func: Callable[..., Any] = getattr(importlib.import_module(module_name), func_name or "build_sequence")

    def adapted(package: Package, analysis: PackageAnalysis) -> tuple[list[str], str]:
        result = func(package, analysis)
        if isinstance(result, tuple) and len(result) == 2:
            return list(result[0]), str(result[1])
        ids = getattr(result, "behaviour_ids", None) or getattr(result, "ids", None)
        if ids is None and hasattr(result, "events"):
            ids = [getattr(e, "behaviour", e) for e in result.events]
        text = getattr(result, "text", None)
        if text is None:
            text = " ; ".join(_phrase(i) for i in ids or [])
        return list(ids or []), str(text)

    return spec, adapted
