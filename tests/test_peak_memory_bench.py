"""bench/peak_memory.py: the child's result line and its failures, the archive list, the target check,
and a real measurement of an example package in both the worker and the in-process mode (no figure is
asserted: peaks are machine facts, the bench reports them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench(load_bench: Callable[[str], ModuleType]) -> ModuleType:
    return load_bench("peak_memory")


def test_child_line_reads_back(bench: ModuleType) -> None:
    out = "noise\n" + bench.child_line(123456, "ArchiveLimitError: too big", 3.14159) + "\n"
    peak = bench.parse_child_output("a.tgz", "worker", out, 0)
    assert (peak.peak_kb, peak.problem, peak.cpu_seconds) == (123456, "ArchiveLimitError: too big", 3.14)
    assert peak.peak_mb == pytest.approx(123456 / 1024)


def test_a_child_without_a_result_line_is_a_failed_measurement(bench: ModuleType) -> None:
    peak = bench.parse_child_output("a.tgz", "inprocess", "", -9, "Traceback...\nMemoryError\n")
    assert peak.peak_kb is None and peak.peak_mb is None
    assert peak.problem == "measuring process exited with -9: MemoryError"
    # a failed measurement fails the target check: the target cannot be shown to hold without it
    assert bench.over_target([peak], 500.0) == [peak]
    assert bench.over_target([peak], None) == [peak]


def test_target_check_and_table(bench: ModuleType) -> None:
    low = bench.Peak("small.tgz", "worker", 100 * 1024, None, 1.0)
    high = bench.Peak("big.tgz", "worker", 600 * 1024, None, 60.0)
    assert bench.over_target([low, high], 500.0) == [high]
    assert bench.over_target([low, high], None) == []
    table = bench.render([low, high], 500.0).splitlines()
    assert table[1].split() == ["100", "1.0", "worker", "small.tgz"]
    assert table[2].endswith("big.tgz  OVER TARGET") and "OVER" not in table[1]


def test_list_file(bench: ModuleType, tmp_path: Path) -> None:
    listing = tmp_path / "archives.txt"
    listing.write_text("# biggest first\n/a/b.tar.gz\n\n  /c/d.tgz  # npm\n", encoding="utf-8")
    assert bench.read_list(listing) == ["/a/b.tar.gz", "/c/d.tgz"]


def test_measures_an_example_in_both_modes(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    example = str(REPO / "examples" / "pypi-clean-lib")
    assert bench.main([example, "--modes", "worker", "inprocess"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(r[2], r[3]) for r in rows] == [("worker", example), ("inprocess", example)]
    assert all(float(r[0]) > 0 for r in rows)  # a real peak came back from each mode, no error beside it
    assert all(len(r) == 4 for r in rows)
    # a target below any process's size fails the check
    assert bench.main([example, "--target-mb", "1", "--modes", "inprocess"]) == 1
