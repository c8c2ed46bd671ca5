"""The published JSON Schemas, shipped with the package: `malseq scan --format json`
(`schema/report.schema.json`; `$defs/entry` is one target's object: one line of `--format jsonl`)
and `malseq audit --format json` (`schema/audit.schema.json`; `$defs/jsonl_line` is one line of its
`--format jsonl`)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SCHEMA_RESOURCE = "schema/report.schema.json"


def report_schema() -> dict[str, Any]:
    """The schema of the whole report: an array of entries (JSON Schema draft 2020-12)."""
    return _load(SCHEMA_RESOURCE)


def _load(resource: str) -> dict[str, Any]:
    """A schema file shipped in the package."""
    schema: dict[str, Any] = json.loads(
        resources.files("malseq.report").joinpath(resource).read_text(encoding="utf-8"))
    return schema


def entry_schema() -> dict[str, Any]:
    """The schema of one entry (one target; one line of `--format jsonl`)."""
    full = report_schema()
    return {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": "#/$defs/entry"}


AUDIT_SCHEMA_RESOURCE = "schema/audit.schema.json"


def audit_schema() -> dict[str, Any]:
    """The schema of `malseq audit --format json` (one object; JSON Schema draft 2020-12). Its `$defs`
    hold the scan report's too, unchanged; `$defs/audited_entry` is a target of `results`."""
    return _load(AUDIT_SCHEMA_RESOURCE)


def audit_line_schema() -> dict[str, Any]:
    """The schema of one line of `malseq audit --format jsonl`."""
    full = audit_schema()
    return {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": "#/$defs/jsonl_line"}
