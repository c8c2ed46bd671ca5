"""Review material (malseq.review): excerpts of the decisive lines, kept only when asked for."""

from __future__ import annotations

import json
from pathlib import Path

from malseq.features.types import BehaviourEvent
from malseq.intake.package import Ecosystem, Language, NpmManifest, Package, PackageFile, PackageOrigin
from malseq.report.json_report import render_json
from malseq.review import CONTEXT_LINES, MAX_LINE_CHARS, MAX_LOCATIONS, review_material
from malseq.scan import ScanOptions, scan
from malseq.sequence.types import BehaviourSequence, SequenceStep, Stage


def _package(files: dict[str, bytes], description: str = "") -> Package:
    manifest = NpmManifest(name="p", version="1.0.0", scripts=(), main=None, bin=(), exports=(), dependencies=(),
                           description=description, license="MIT", author="", homepage="javascript:alert(1)",
                           repository="")
    return Package(Ecosystem.NPM, "p", "1.0.0",
                   tuple(PackageFile(p, d, Language.JAVASCRIPT if p.endswith(".js") else None, b"\0" in d)
                         for p, d in files.items()),
                   (), manifest, None, PackageOrigin("folder", "/x", None, None))


def _sequence(*locations: tuple[str, int]) -> BehaviourSequence:
    steps = tuple(SequenceStep("read_env", Stage.IMPORT, "main", (BehaviourEvent("read_env", f, n, 0, "<module>", ""),),
                               0) for f, n in locations)
    return BehaviourSequence(steps, (), False, 0.0)


def test_excerpts_merge_windows_in_execution_order_and_clean_lines() -> None:
    lines = [f"line {n}" for n in range(1, 41)]
    lines[19] = "evil\x1b]0;x\x07 \u202e" + "y" * 1000  # line 20
    files = {"b.js": "\n".join(lines).encode() + b"\n", "a.js": b"one\ntwo\n", "bin.js": b"\0\1\2"}
    material = review_material(_package(files, "desc\x1b[2J"), _sequence(("b.js", 20), ("a.js", 2), ("b.js", 22),
                                                                         ("bin.js", 1), ("b.js", 40)))
    assert [(x.file, x.first_line, x.last_line, x.marked) for x in material.excerpts] == [
        ("b.js", 20 - CONTEXT_LINES, 22 + CONTEXT_LINES, (20, 22)),  # two steps, one window
        ("b.js", 40 - CONTEXT_LINES, 40, (40,)),  # the last line: no line after the file's final newline
        ("a.js", 1, 2, (2,)),
    ]  # b.js first: its first step runs first; the binary file has no excerpt
    line20 = material.excerpts[0].lines[CONTEXT_LINES]
    assert line20.startswith("evil\\x1b]0;x\\x07 \\u202e") and len(line20) == MAX_LINE_CHARS
    assert material.description == "desc\\x1b[2J" and material.homepage == "javascript:alert(1)"
    assert not material.excerpts_truncated


def test_line_numbers_count_newlines_only() -> None:
    # a form feed or U+2028 inside a line must not shift the numbers the parsers gave
    data = "a\x0cb\nsecond\u2028still second\nthird\n".encode()
    material = review_material(_package({"x.js": data}), _sequence(("x.js", 3)))
    (excerpt,) = material.excerpts
    assert excerpt.first_line == 1 and excerpt.lines[2] == "third" and excerpt.lines[1].startswith("second")


def test_locations_are_bounded() -> None:
    files = {"big.js": "\n".join(f"x{n}" for n in range(5000)).encode()}
    locations = [("big.js", n) for n in range(1, 4000, 10)]
    material = review_material(_package(files), _sequence(*locations))
    assert material.excerpts_truncated
    assert sum(len(x.marked) for x in material.excerpts) == MAX_LOCATIONS


def test_scan_keeps_review_material_only_when_asked(examples_dir: Path) -> None:
    target = str(examples_dir / "npm-env-exfil")
    plain = json.loads(render_json(scan([target], ScanOptions(score=False))))[0]
    assert "review" not in plain  # plain scans and their golden reports are unchanged
    reviewed = json.loads(render_json(scan([target], ScanOptions(score=False, review_material=True,
                                                                 isolate=True))))[0]
    excerpts = reviewed["review"]["excerpts"]
    steps = reviewed["sequence"]["steps"]
    # every step's location is inside an excerpt (all fit in the bounds here)
    for step in steps:
        assert any(x["file"] == step["file"] and x["first_line"] <= step["line"] < x["first_line"] + len(x["lines"])
                   for x in excerpts), step
    for report in (plain, reviewed):  # timings differ from run to run
        del report["seconds"], report["sequence"]["seconds"]
    del reviewed["review"]
    assert reviewed == plain  # the same behaviours and sequence: review material changes no analysis
