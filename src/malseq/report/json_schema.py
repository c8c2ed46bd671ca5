"""The published JSON Schema of the `--format json` report (`schema/report.schema.json`, shipped
with the package). `$defs/entry` is one target's object: one line of `--format jsonl`."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SCHEMA_RESOURCE = "schema/report.schema.json"


def report_schema() -> dict[str, Any]:
    """The schema of the whole report: an array of entries (JSON Schema draft 2020-12)."""
    text = resources.files("malseq.report").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def entry_schema() -> dict[str, Any]:
    """The schema of one entry (one target; one line of `--format jsonl`)."""
    full = report_schema()
    return {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": "#/$defs/entry"}
