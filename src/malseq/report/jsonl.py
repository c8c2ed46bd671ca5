"""The JSON lines report (`--format jsonl`): one object per target, written as it finishes.

Each line is one entry of the JSON report (`malseq.report.json_report.result_to_dict`: the same
keys, valid against `$defs/entry` of the published schema). Lines come in the order targets finish,
which depends on timing; the entries do not, and each names its target. The last line is
`{"summary": {...}}`, written after every target, or after what finished when the run was interrupted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from malseq.report.json_report import result_to_dict
from malseq.scan import INTERRUPTED, TargetResult


def result_line(result: TargetResult) -> str:
    # ensure_ascii keeps any control or bidi characters from packages escaped, as in the JSON report
    return json.dumps(result_to_dict(result), ensure_ascii=True) + "\n"


def summary(results: Sequence[TargetResult], interrupted: bool, exit_code: int) -> dict[str, Any]:
    """The counts of the text report's summary line, and how the run ended."""
    not_run = [r.target for r in results if r.error is not None and r.error.kind == INTERRUPTED]
    errors = sum(1 for r in results if r.error is not None and r.error.kind != INTERRUPTED)
    return {
        "targets": len(results),
        "scanned": len(results) - errors - len(not_run),
        "flagged": sum(1 for r in results if r.verdict == "malicious" and r.suppressed is None),
        "errors": errors,
        "suppressed": sum(1 for r in results if r.verdict == "malicious" and r.suppressed is not None),
        "not_scanned_completely": sum(1 for r in results if r.notices),
        "without_verdict": sum(1 for r in results if r.unscored is not None),
        "lockfile_hash_mismatches": sum(1 for r in results if r.lock_hash_mismatches),
        "interrupted": interrupted,
        "not_finished": not_run,  # the targets an interrupted run never finished (no line above)
        "exit_code": exit_code,
    }


def summary_line(results: Sequence[TargetResult], interrupted: bool, exit_code: int) -> str:
    return json.dumps({"summary": summary(results, interrupted, exit_code)}, ensure_ascii=True) + "\n"


class JsonLines:
    """Writes each line through `write` (which must flush) as soon as it is known."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    def result(self, result: TargetResult) -> None:
        self._write(result_line(result))

    def summary(self, results: Sequence[TargetResult], interrupted: bool, exit_code: int) -> None:
        self._write(summary_line(results, interrupted, exit_code))
