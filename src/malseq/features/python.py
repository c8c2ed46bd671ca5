"""Python behaviour extractor built on tree-sitter-python.

One query collects every node kind the extractor cares about; the captures are then
processed in source order with a stack of enclosing scopes, so the per-node Python work
is proportional to the interesting nodes, not to the whole tree. Names are resolved
through the import bindings and simple assignments seen so far (`import subprocess as
sp`, `s = getattr(__import__('os'), 'sys' + 'tem')`), and string expressions are folded
(concatenation, join, chr codes, reversal, base64/hex/zlib decoding) before they are
classified. Code handed to `exec`/`eval` that folds to a string is analysed as Python
again (depth-bounded), with its events placed at the exec call.

Never executes anything: folding only evaluates a fixed set of pure string operations.
"""

from __future__ import annotations

import ast
import base64
import binascii
import bz2
import codecs
import lzma
import posixpath
import re
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from sys import intern
from typing import Any, TypeVar

import tree_sitter_python
from tree_sitter import Language as TSLanguage
from tree_sitter import Node, Parser, Point, Query, QueryCursor, Range, Tree

from malseq._deadline import Deadline
from malseq.features.budget import (
    BINDING_UNITS,
    CALL_UNITS,
    FILE_WORK_UNITS,
    FOLD_UNITS,
    LITERAL_UNITS,
    MAX_DEPTH_CUTS,
    NESTED_WORK_UNITS,
    NODE_UNITS,
    SCOPE_UNITS,
    BudgetExhausted,
    PackageWorkBudget,
    WorkBudget,
    cut_out,
    first_too_deep,
    head_then_tail,
    parse_window,
    source_reader,
)
from malseq.features.catalogue import IDS
from malseq.features.commands import is_build_command, shipped_program_names
from malseq.features.rules import (
    REGISTRY,
    ArgKind,
    AttributeContext,
    CallContext,
    CallFacts,
    CommandClassContext,
    FileContext,
    ImportContext,
    RuleKind,
    SetupStepContext,
)
from malseq.features.rules.install_hook import CALLS_PACKAGE_CODE
from malseq.features.rules.payload_execution import PY_IMPORTERS as _IMPORTERS
from malseq.features.strings import (
    classify_capture_name,
    classify_literal,
    classify_raw_literal,
    decode_base64_text,
    printable_count,
)
from malseq.features.types import (
    MODULE_SCOPE,
    BehaviourEvent,
    Binding,
    CallKind,
    CallSite,
    FileAnalysis,
    FunctionDef,
)
from malseq.intake.package import Language, PackageFile
from malseq.sanitize import clean

__all__ = ["analyse_python", "analyse_python_text"]

_TS_PYTHON = TSLanguage(tree_sitter_python.language())

# Capture names double as processing order for nodes that start at the same byte:
# a scope is opened before anything inside it, an assignment binds before its value's
# calls are looked at.
_QUERY_TEXT = """
(function_definition) @def
(class_definition) @class
(lambda) @lambda
(assignment) @assign
(import_statement) @import
(import_from_statement) @import_from
(decorator) @decorator
(call) @call
(exec_statement) @exec
(binary_operator) @binop
(concatenated_string) @concat
(string) @string
(slice) @slice
(ERROR) @error
"""
_QUERY = Query(_TS_PYTHON, _QUERY_TEXT)
# Units of the file's work budget that handling one capture of a kind costs (folding and
# classifying text cost extra, by the byte).
_KIND_UNITS = {"def": SCOPE_UNITS, "class": SCOPE_UNITS, "lambda": SCOPE_UNITS, "import": SCOPE_UNITS,
               "import_from": SCOPE_UNITS, "decorator": SCOPE_UNITS, "assign": BINDING_UNITS,
               "binop": FOLD_UNITS, "concat": FOLD_UNITS, "string": LITERAL_UNITS, "call": CALL_UNITS,
               "exec": CALL_UNITS, "guard": SCOPE_UNITS}
_KIND_ORDER = {name: i for i, name in enumerate(
    ("guard", "def", "class", "lambda", "assign", "import", "import_from", "decorator", "call", "exec", "binop",
     "concat", "string", "slice", "env", "error"))}

# Per-file work: counted units and parse bytes (malseq.features.budget), never seconds.
# Bytes of an exec'd string parsed per unit of the file's budget (parsing costs about 0.5 us a byte).
NESTED_PARSE_BYTES_PER_UNIT = 4
# Identical (behaviour, scope) events kept per file; a minified bundle must not explode.
MAX_EVENTS_PER_BEHAVIOUR_SCOPE = 20
MAX_FOLD_LENGTH = 2_000_000
MAX_FOLD_DEPTH = 40
MAX_NESTED_DEPTH = 2
MAX_NESTED_ANALYSES = 8
SNIPPET_LENGTH = 120
# Deepest syntax tree walked (budget.first_too_deep; CPython itself refuses code nested far less):
# deeper subtrees are cut out of the parse, because Node.parent costs a step per level.
MAX_TREE_DEPTH = 2_000

# Import, call and attribute rules live in malseq.features.rules (one registered function per
# behaviour); this engine resolves names, folds strings and reports what the rules say.
# Commands benign setup.py files run: version from git, a "publish" shortcut.
_VCS_COMMAND = re.compile(r"^\s*(?:git|hg|svn|twine|python[\d.]*\s+(?:-m\s+)?(?:setup\.py|twine|build|pip)|"
                          r"\S*python[\d.]*(?:\.exe)?\s+setup\.py)\b")

_VERSION_FILE = re.compile(r"(?i)version|about|__init__|_meta|metadata|pkginfo|release")
_PYTHON_CODE_HINT = re.compile(r"\bimport\b|\bexec\b|\beval\b|\w\(")

# --- ERROR-region fallback: a token pass over text the parser could not structure.
_FALLBACK_IMPORT = re.compile(
    r"(?m)^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import\b|import[ \t]+([\w.]+(?:[ \t]*,[ \t]*[\w.]+)*))")
_FALLBACK_CALL = re.compile(r"(?<![\w.])([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)[ \t]*\(")
_FALLBACK_STRING = re.compile(
    r"""(?s)[bBrRuUfF]{0,2}('''.*?'''|\"\"\".*?\"\"\"|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")""")

_ENV_NAME = re.compile(rb"\benviron[b]?\b")
_ITEM_ORDER = itemgetter(0, 1, 2)
_ITEM_UNITS = itemgetter(5)
_LINE_COLUMN = attrgetter("line", "column")

_Value = str | bytes
_T = TypeVar("_T")
_MISSING: Any = object()


@dataclass
class _Scope:
    end_byte: int
    qualname: str


@dataclass
class _ClassInfo:
    qualname: str
    node: Node
    bases: str
    methods: set[str] = field(default_factory=set)


# The file's work budget ran out; results so far are kept.
_Budget = BudgetExhausted


def _int_literal(text: str) -> int | None:
    t = text.replace("_", "").rstrip("lL")
    try:
        if len(t) > 1 and t[0] == "0" and t[1].isdigit():
            return int(t, 8)  # Python 2 octal: 0755
        return int(t, 0)
    except ValueError:
        return None


def _as_text(value: _Value) -> str | None:
    """Text of a folded value, or None for binary data."""
    if isinstance(value, str):
        return value
    decoded = value.decode("utf-8", errors="replace")
    if not decoded:
        return decoded
    printable = printable_count(decoded[:4000])
    return decoded if printable / min(len(decoded), 4000) > 0.9 else None


def _to_bytes(value: _Value) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1", errors="replace")


def _bounded_decompress(kind: str, data: bytes) -> bytes | None:
    try:
        if kind == "zlib":
            return zlib.decompressobj().decompress(data, MAX_FOLD_LENGTH)
        if kind == "gzip":
            return zlib.decompressobj(47).decompress(data, MAX_FOLD_LENGTH)
        if kind == "lzma":
            return lzma.LZMADecompressor().decompress(data, MAX_FOLD_LENGTH)
        if kind == "bz2":
            return bz2.BZ2Decompressor().decompress(data, MAX_FOLD_LENGTH)
    except (zlib.error, lzma.LZMAError, OSError, ValueError, EOFError):
        return None
    return None


def _b64_like_decode(func: str, data: bytes) -> bytes | None:
    compact = re.sub(rb"\s+", b"", data)
    try:
        if func in ("b32decode",):
            return base64.b32decode(compact + b"=" * (-len(compact) % 8))
        if func == "b16decode":
            return base64.b16decode(compact, casefold=True)
        if func == "b85decode":
            return base64.b85decode(compact)
        if func == "a85decode":
            return base64.a85decode(compact)
        padded = compact + b"=" * (-len(compact) % 4)
        if func == "urlsafe_b64decode" or b"-" in compact or b"_" in compact:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded)
    except (binascii.Error, ValueError):
        return None


def _codec_decode(value: _Value, codec: str) -> _Value | None:
    codec = codec.lower().replace("-", "_")
    try:
        if codec in ("rot13", "rot_13"):
            text = _as_text(value)
            return codecs.decode(text, "rot13") if text is not None else None
        if codec in ("hex", "hex_codec"):
            return bytes.fromhex(_to_bytes(value).decode("ascii"))
        if codec in ("base64", "base64_codec"):
            return _b64_like_decode("b64decode", _to_bytes(value))
        if codec in ("zlib", "zlib_codec", "zip"):
            return _bounded_decompress("zlib", _to_bytes(value))
        if codec in ("bz2", "bz2_codec"):
            return _bounded_decompress("bz2", _to_bytes(value))
        if codec in ("utf8", "utf_8", "ascii", "latin1", "latin_1", "utf_16", "unicode_escape", ""):
            if isinstance(value, str):
                if codec == "unicode_escape":
                    return value.encode("latin-1", errors="replace").decode("unicode_escape", errors="replace")
                return value
            return value.decode("utf-8" if codec in ("", "utf8", "utf_8") else codec.replace("_", "-"),
                                errors="replace")
    except (ValueError, LookupError, UnicodeError):
        return None
    return None


def _string_value(node: Node, source: bytes) -> _Value | None:
    """The value of a string literal without interpolation, or None."""
    raw = source[node.start_byte:node.end_byte]
    has_escape = False
    parts: list[bytes] = []
    prefix = b""
    for child in node.children:
        t = child.type
        if t == "string_start":
            prefix = source[child.start_byte:child.end_byte].lower()
        elif t == "string_content":
            parts.append(source[child.start_byte:child.end_byte])
            if child.child_count:
                for grandchild in child.children:
                    if grandchild.type == "escape_sequence":
                        has_escape = True
                    elif grandchild.type == "interpolation":
                        return None
        elif t == "interpolation":
            return None
        elif t == "escape_sequence":
            has_escape = True
    is_bytes = b"b" in prefix
    is_raw = b"r" in prefix
    if has_escape and not is_raw:
        value = _ESCAPED_MEMO.get(raw, _MISSING) if len(raw) <= _ESCAPED_MEMO_LENGTH else _MISSING
        if value is _MISSING:
            try:
                text = raw.decode("utf-8", errors="replace")
                # Python 2 `ur''` and unicode prefixes literal_eval does not know.
                text = re.sub(r"^[uU](?=[rR]?['\"])", "", text)
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                value = None
            if len(raw) <= _ESCAPED_MEMO_LENGTH:
                if len(_ESCAPED_MEMO) >= _ESCAPED_MEMO_ENTRIES:
                    _ESCAPED_MEMO.clear()
                _ESCAPED_MEMO[raw] = value
        if isinstance(value, str | bytes):
            return value
    joined = b"".join(parts)
    return joined if is_bytes else joined.decode("utf-8", errors="replace")


_STRING_PREFIX = frozenset(b"rRbBuUfF")


def _plain_string_value(source: bytes, start: int, end: int) -> _Value | None:
    """The value of the string literal `source[start:end]` of an error-free tree when it holds no
    backslash (no escape sequence) and no "{" (no interpolation); None to let _string_value decide."""
    if source.find(b"\\", start, end) >= 0:
        return None
    p = start
    while p < end and source[p] in _STRING_PREFIX:
        p += 1
    if p >= end:
        return None
    quote = source[p:p + 1]
    if quote not in (b"'", b'"'):
        return None
    width = 3 if source[p:p + 3] == quote * 3 else 1
    body_start, body_end = p + width, end - width
    if body_end < body_start or source[body_end:end] != quote * width:
        return None
    content = source[body_start:body_end]
    return content if b"b" in source[start:p].lower() else content.decode("utf-8", errors="replace")


# literal_eval of short escaped literals ("\\n", "\\t") remembered per process: a pure function of the
# literal's bytes; emptied when full.
_ESCAPED_MEMO: dict[bytes, object] = {}
_ESCAPED_MEMO_LENGTH = 200
_ESCAPED_MEMO_ENTRIES = 20_000


def _interpolated_text(node: Node, source: bytes) -> str:
    """The literal parts of an f-string joined with `{}` placeholders."""
    out: list[str] = []

    def visit(n: Node) -> None:
        for child in n.children:
            if child.type == "string_content":
                if child.child_count:
                    last = child.start_byte
                    for gc in child.children:
                        if gc.type == "interpolation":
                            out.append(source[last:gc.start_byte].decode("utf-8", "replace"))
                            out.append("{}")
                            last = gc.end_byte
                    out.append(source[last:child.end_byte].decode("utf-8", "replace"))
                else:
                    out.append(source[child.start_byte:child.end_byte].decode("utf-8", "replace"))
            elif child.type == "interpolation":
                out.append("{}")

    visit(node)
    return "".join(out)


def _is_docstring(node: Node, stmt: Node | None) -> bool:
    """First expression statement string of a module, class or function body (`stmt`: the node's parent)."""
    if stmt is None or stmt.type != "expression_statement" or stmt.named_child_count != 1:
        return False
    body = stmt.parent
    if body is None:
        return False
    if body.type == "block":
        owner = body.parent
        if owner is None or owner.type not in ("function_definition", "class_definition"):
            return False
    elif body.type != "module":
        return False
    prev = stmt.prev_named_sibling
    while prev is not None and prev.type == "comment":
        prev = prev.prev_named_sibling
    return prev is None


class _FileAnalyser:
    def __init__(self, path: str, source: bytes, work: WorkBudget, depth: int = 0,
                 nested_budget: list[int] | None = None, package_paths: frozenset[str] = frozenset()) -> None:
        self.path = path
        # Every file of the package: a loader of a path among them runs package code (a call-graph edge).
        self.package_paths = package_paths
        self._shipped: frozenset[str] | None = None  # shipped_program_names(package_paths), when first needed
        self._sets_search_path: bool | None = None  # sets_search_path(), when first needed
        self.source = source
        # An ASCII file is decoded once: its byte offsets are character offsets, so a node's text is a
        # slice of this string, equal to decoding the slice of the bytes (most files are ASCII).
        self.ascii_text: str | None = source.decode("ascii") if source.isascii() else None
        # resolve() of a node at depth 0, valid while `names_version` is unchanged (the aliases and
        # constants resolve reads; fold results are memoised per node anyway).
        self.names_version = 0
        self.resolve_memo: dict[tuple[int, int], str | None] = {}
        self.work = work  # spent by the walk, folding and nested analyses alike
        self.depth = depth
        self.nested_budget = nested_budget if nested_budget is not None else [MAX_NESTED_ANALYSES]
        self.is_setup = posixpath.basename(path) == "setup.py"
        self.events: list[BehaviourEvent] = []
        self.event_counts: dict[tuple[str, str], int] = {}
        self.event_lines: set[tuple[str, int]] = set()
        self.event_positions: set[tuple[str, int, int]] = set()
        self.functions: list[FunctionDef] = []
        self.calls: list[CallSite] = []
        # (argument node, scope) of identifiers and attributes passed to calls: most name nothing of this
        # file, so their text and CallSite are made only for those _flush_callbacks keeps.
        self.callback_candidates: list[tuple[Node, str]] = []
        self.bindings: list[Binding] = []
        self.aliases: dict[str, str] = {}
        self.constants: dict[str, _Value] = {}
        self.imported_roots: set[str] = set()
        self.classified: set[int] = set()
        self.fold_memo: dict[tuple[int, int, str], _Value | None] = {}
        self.scope_stack: list[_Scope] = []
        # The qualname of the innermost scope: read at almost every capture, so kept up to date wherever
        # scope_stack changes (_set_scope) instead of being derived from the stack each time.
        self.scope = MODULE_SCOPE
        self.classes: dict[str, _ClassInfo] = {}
        self.resolved_calls: set[str] = set()
        self.dup2_sites: list[tuple[Node, str]] = []
        self.exempt_positions: set[tuple[int, int]] = set()
        # setup.py's process calls on a parameter of their function (`def cmd(s): return os.popen(s)`),
        # with that argument: a build step when every caller passes one (_drop_parameter_build_commands).
        self.parameter_commands: list[tuple[Node, Node]] = []
        # Byte ranges of setup()'s metadata keyword values (url=, project_urls=...): data about the
        # package, not strings its code uses, so they are not classified.
        self.metadata_ranges: list[tuple[int, int]] = []
        # Loaders of the package's own files: names bound to a folder of this file / an opened file /
        # a module spec / a module object made from a spec, each with the package file it stands for.
        self.file_dirs: set[str] = set()
        self.opened_files: dict[str, str] = {}
        self.file_specs: dict[str, str] = {}
        self.spec_modules: dict[str, str] = {}
        self.parse_errors = False
        self.budget_exhausted = False

    # ------------------------------------------------------------------ helpers
    def _text(self, node: Node, limit: int = 400) -> str:
        start = node.start_byte
        end = node.end_byte
        if end - start > limit:
            end = start + limit
        text = self.ascii_text
        if text is not None:
            return text[start:end]
        return self.source[start:end].decode("utf-8", errors="replace")

    def _bytes(self, node: Node) -> bytes:
        """The node's source bytes (never `Node.text`: see `budget.source_reader`)."""
        return self.source[node.start_byte:node.end_byte]

    def _snippet(self, node: Node) -> str:
        return clean(" ".join(self._text(node, 300).split()), SNIPPET_LENGTH)

    def _set_scope(self) -> None:
        self.scope = self.scope_stack[-1].qualname if self.scope_stack else MODULE_SCOPE

    def _emit_at(self, behaviour: str, line: int, column: int, scope: str, snippet: str) -> None:
        assert behaviour in IDS, behaviour
        position = (behaviour, line, column)
        if position in self.event_positions:
            return
        self.event_positions.add(position)
        key = (behaviour, scope)
        count = self.event_counts.get(key, 0)
        if count >= MAX_EVENTS_PER_BEHAVIOUR_SCOPE:
            return
        self.event_counts[key] = count + 1
        self.event_lines.add((behaviour, line))
        self.events.append(BehaviourEvent(behaviour, self.path, line, column, scope, snippet))

    def emit(self, behaviour: str, node: Node, snippet: str | None = None) -> None:
        row, col = node.start_point
        self._emit_at(behaviour, row + 1, col, self.scope, snippet if snippet is not None else self._snippet(node))

    def emit_many(self, behaviours: Iterable[str], node: Node, snippet: str | None = None) -> None:
        seen: set[str] = set()
        for b in behaviours:
            if b not in seen:
                seen.add(b)
                self.emit(b, node, snippet)

    def _tick(self) -> None:
        self.work.spend()

    # ------------------------------------------------------------------ entry
    def run(self) -> None:
        parser = Parser(_TS_PYTHON)
        source = self.source
        window = parse_window(source)
        ranges = None
        if window is not None:
            # The parse is bounded by input size, never by time: a big file is read as its head
            # and its tail (where a payload appended to a generated module sits).
            self.budget_exhausted = True
            ranges = _head_and_tail(source, *window)
        deadline = self.work.deadline

        read = source_reader(source)

        def progress(*_state: object) -> bool:
            # Only the package deadline (a safety net that fails the whole target) stops a parse.
            return deadline is not None and deadline.expired()

        tree = self._parse_within_depth(parser, read, progress, ranges)
        if tree is None:
            self.work.check_deadline()
            # The parser gave up: keep a token pass over the text.
            self.budget_exhausted = True
            try:
                self._fallback_text(source[:2_000_000].decode("utf-8", errors="replace"), 0, 0, MODULE_SCOPE)
                self._file_level()
            except _Budget:
                pass
            return
        root = tree.root_node
        self.parse_errors = root.has_error
        try:
            self._walk(root)
        except _Budget:
            self.budget_exhausted = True
        except RecursionError:
            self.budget_exhausted = True
        # The file-level and setup.py checks run on an allowance of their own, so a file whose walk
        # was cut still gets them (they are linear in the file or fold a few setup() arguments).
        file_work = self.work
        self.work = WorkBudget(NESTED_WORK_UNITS, file_work.deadline, file_work.what, meter=file_work.meter)
        try:
            self._file_level()
            if self.is_setup and self.depth == 0:
                self._setup_checks(root)
        except _Budget:
            self.budget_exhausted = True
        except RecursionError:
            self.budget_exhausted = True
        finally:
            self.work = file_work

    def _parse_within_depth(self, parser: Parser, read: Callable[[int, object], memoryview | bytes],
                            progress: Callable[..., bool], ranges: list[Range] | None) -> Tree | None:
        """The tree of the file, with any subtree deeper than `MAX_TREE_DEPTH` cut out of the parse
        (budget.first_too_deep; the file is then marked budget_exhausted); None if the parser gave up."""
        source = self.source
        for _cut in range(MAX_DEPTH_CUTS + 1):
            if ranges is not None:
                parser.included_ranges = ranges
            try:
                tree = parser.parse(read, progress_callback=progress)
            except ValueError:
                return None
            if tree is None:
                return None
            try:
                deep = first_too_deep(tree.root_node, MAX_TREE_DEPTH, self.work)
            except _Budget:
                deep = tree.root_node
            if deep is None:
                return tree
            self.budget_exhausted = True
            full = [Range(Point(0, 0), _point(source, len(source)), 0, len(source))]
            ranges = cut_out(ranges if ranges is not None else full, deep.start_byte, deep.end_byte,
                             lambda offset: _point(source, offset))
        return None

    def _walk(self, root: Node) -> None:
        # No text predicates in the query: the tree was parsed from a callback, and a
        # predicate would make tree-sitter read node text back through it (38 s on 3 MB).
        # The query's own cost is bounded by what the parse read (budget.MAX_PARSE_UNITS).
        captures = QueryCursor(_QUERY).captures(root)
        self.work.check_deadline()
        # (start, order, -end, name, node, units): sorted on the first three, a stable sort.
        items: list[tuple[int, int, int, str, Node, int]] = []
        append = items.append
        for name, nodes in captures.items():
            order = _KIND_ORDER[name]
            units = _KIND_UNITS.get(name, NODE_UNITS)
            for node in nodes:
                append((node.start_byte, order, -node.end_byte, name, node, units))
        if self.is_setup and self.depth == 0:
            self._note_metadata_pairs(root)
            guard_order = _KIND_ORDER["guard"]
            items.extend((node.start_byte, guard_order, -node.end_byte, "guard", node, _KIND_UNITS["guard"])
                         for node in _module_level_ifs(root))
        env_order = _KIND_ORDER["env"]
        for m in _ENV_NAME.finditer(self.source):
            found = root.descendant_for_byte_range(m.start(), m.end())
            if found is not None and found.type == "identifier":
                items.append((found.start_byte, env_order, -found.end_byte, "env", found, NODE_UNITS))
        # Outer before inner among nodes of one kind that start at the same byte (`a().b()`): tree-sitter's
        # captures() lists those in an order that changes from run to run, and handling order decides
        # which events are emitted first and kept.
        items.sort(key=_ITEM_ORDER)
        handlers: dict[str, Callable[[Node], None]] = {
            "def": self._on_function, "class": self._on_class, "lambda": self._on_lambda,
            "assign": self._on_assign, "import": self._on_import, "import_from": self._on_import_from,
            "decorator": self._on_decorator, "call": self._on_call, "exec": self._on_exec_statement,
            "binop": self._on_binop, "concat": self._on_concat, "string": self._on_string,
            "slice": self._on_slice, "env": self._on_env, "error": self._on_error, "guard": self._on_guard,
        }
        error_end = -1
        handled = 0  # items whose handling began (in order), so items[handled:] were not touched

        def handle(item: tuple[int, int, int, str, Node, int], work: WorkBudget) -> None:
            nonlocal error_end, handled
            self.work = work
            start, _order, _end, name, node, units = item
            work.spend(units)
            handled += 1
            stack = self.scope_stack
            if stack and stack[-1].end_byte <= start:
                while stack and stack[-1].end_byte <= start:
                    stack.pop()
                self._set_scope()
            if name == "error":
                if start < error_end:
                    return  # nested inside an ERROR region already scanned
                error_end = node.end_byte
                self.work.spend_bytes(node.end_byte - start)  # the text pass reads the whole region
            handlers[name](node)

        def skip_to(tail_start: int) -> None:
            # The middle of the file is skipped: reopen only the scopes that enclose the tail.
            self.budget_exhausted = True
            first = items[tail_start][0] if tail_start < len(items) else len(self.source)
            self.scope_stack = [s for s in self.scope_stack if s.end_byte > first]
            self._set_scope()
            for start, _order, _end, name, node, _units in items[handled:tail_start]:
                if name in ("def", "class", "lambda") and start < first < node.end_byte:
                    handlers[name](node)

        file_work = self.work
        try:
            complete = head_then_tail(items, file_work, handle, _ITEM_UNITS, skip_to)
        finally:
            self.work = file_work
        if not complete:
            self.budget_exhausted = True  # what was read still gets its callbacks and cross-checks
        self._flush_callbacks()
        self._reverse_shell_check()

    # ------------------------------------------------------------------ scopes
    def _push_scope(self, node: Node, name: str, qualname: str, is_class: bool) -> None:
        parent = self.scope
        self.functions.append(FunctionDef(qualname, name, self.path, node.start_point[0] + 1,
                                          node.end_point[0] + 1, parent, is_class))
        self.scope_stack.append(_Scope(node.end_byte, qualname))
        self.scope = qualname

    def _qualify(self, name: str) -> str:
        return name if self.scope == MODULE_SCOPE else f"{self.scope}.{name}"

    def _on_function(self, node: Node) -> None:
        name_node = node.child_by_field_name("name")
        name = self._text(name_node, 200) if name_node is not None else ""
        qualname = self._qualify(name)
        enclosing = self.scope
        if enclosing in self.classes:
            self.classes[enclosing].methods.add(name)
        self._push_scope(node, name, qualname, False)

    def _on_class(self, node: Node) -> None:
        name_node = node.child_by_field_name("name")
        name = self._text(name_node, 200) if name_node is not None else ""
        qualname = self._qualify(name)
        bases_node = node.child_by_field_name("superclasses")
        bases = self._text(bases_node, 400) if bases_node is not None else ""
        self.classes[qualname] = _ClassInfo(qualname, node, bases)
        row, col = node.start_point
        # A class body runs where it is defined.
        self.calls.append(CallSite(self.path, row + 1, col, self.scope, qualname, CallKind.INLINE))
        self._push_scope(node, name, qualname, True)

    def _lambda_name(self, node: Node) -> str:
        parent = node.parent
        if parent is not None and parent.type == "assignment":
            left = parent.child_by_field_name("left")
            right = parent.child_by_field_name("right")
            if left is not None and left.type == "identifier" and right is not None and right.id == node.id:
                return self._text(left, 200)
        return ""

    def _on_lambda(self, node: Node) -> None:
        name = self._lambda_name(node)
        row, col = node.start_point
        qualname = self._qualify(name) if name else f"<lambda@{row + 1}:{col}>"
        self._push_scope(node, name, qualname, False)

    # ------------------------------------------------------------------ setup.py command guards
    def _on_guard(self, node: Node) -> None:
        """`if sys.argv[-1] == "publish":` in setup.py: pip never passes that word, so the block does not
        run at install. Its code goes to a scope of its own that no entry point reaches (the sequence
        stage lists it as unreached); a guard on a command pip runs (install, egg_info, bdist_wheel...)
        or on anything else hides nothing."""
        condition, body = node.child_by_field_name("condition"), node.child_by_field_name("consequence")
        if condition is None or body is None or self.scope != MODULE_SCOPE:
            return
        words = self._argv_words(condition)
        if words and all(w.strip().lower() in SETUP_GUARD_WORDS for w in words):
            self.scope_stack.append(_Scope(body.end_byte, f"{GUARDED_SCOPE_PREFIX}{node.start_point[0] + 1}>"))
            self._set_scope()

    def _argv_words(self, node: Node, depth: int = 0) -> frozenset[str] | None:
        """The command words a condition needs in sys.argv to be true, or None if it tests something else."""
        if depth > 8:
            return None
        if node.type == "parenthesized_expression" and node.named_child_count == 1:
            return self._argv_words(node.named_children[0], depth + 1)
        if node.type == "boolean_operator":
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            op = node.child_by_field_name("operator")
            if left is None or right is None or op is None:
                return None
            lw, rw = self._argv_words(left, depth + 1), self._argv_words(right, depth + 1)
            if op.type == "or":
                return lw | rw if lw is not None and rw is not None else None
            # `and`: both must hold, so one argv test that pip never passes is enough.
            sides = [w for w in (lw, rw) if w is not None]
            safe = [w for w in sides if all(x.strip().lower() in SETUP_GUARD_WORDS for x in w)]
            chosen = safe or sides
            return chosen[0] if chosen else None
        if node.type != "comparison_operator" or node.named_child_count != 2:
            return None
        operators = [c.type for c in node.children if not c.is_named]
        left, right = node.named_children
        if operators == ["=="]:
            if self._is_argv(left):
                return self._literal_words(right)
            if self._is_argv(right):
                return self._literal_words(left)
        elif operators == ["in"]:
            if self._is_argv(right, whole=True):
                return self._literal_words(left)
            if self._is_argv(left):
                return self._literal_words(right)
        return None

    def _is_argv(self, node: Node, whole: bool = False) -> bool:
        """sys.argv[i] / sys.argv[i:] (and, with `whole`, sys.argv itself)."""
        if whole and _normalise(self.resolve(node)) == "sys.argv":
            return True
        if node.type == "subscript":
            value = node.child_by_field_name("value")
            return value is not None and _normalise(self.resolve(value)) == "sys.argv"
        return False

    def _literal_words(self, node: Node) -> frozenset[str] | None:
        if node.type in ("list", "tuple", "set"):
            words = [self._fold_text(c) for c in node.named_children if c.type != "comment"]
            return frozenset(w for w in words if w is not None) if words and None not in words else None
        word = self._fold_text(node) if node.type in ("string", "concatenated_string") else None
        return frozenset((word,)) if word is not None else None

    # ------------------------------------------------------------------ imports
    def _module_event(self, module: str, node: Node) -> None:
        if module.startswith("."):
            return
        root = module.split(".", 1)[0]
        for behaviour in REGISTRY.import_behaviours(ImportContext(Language.PYTHON, module, root)):
            self.emit(behaviour, node)
        if module.split(".", 1)[0] in ("ctypes", "_ctypes", "cffi"):
            self.imported_roots.add(module.split(".", 1)[0])

    def _bind(self, node: Node, name: str, module: str, attribute: str | None) -> None:
        self.bindings.append(Binding(self.path, node.start_point[0] + 1, self.scope, name, module, attribute))

    def _on_import(self, node: Node) -> None:
        for child in node.named_children:
            if child.type == "dotted_name":
                module = self._text(child, 300)
                root = module.split(".", 1)[0]
                self.imported_roots.add(root)
                self._bind(node, module if "." not in module else "", module, None)
                self._module_event(module, node)
            elif child.type == "aliased_import":
                name_node = child.child_by_field_name("name")
                alias_node = child.child_by_field_name("alias")
                if name_node is None or alias_node is None:
                    continue
                module = self._text(name_node, 300)
                alias = self._text(alias_node, 200)
                self._set_name(self.aliases, alias, module)
                self.imported_roots.add(module.split(".", 1)[0])
                self._bind(node, alias, module, None)
                self._module_event(module, node)

    def _on_import_from(self, node: Node) -> None:
        module_node = node.child_by_field_name("module_name")
        if module_node is None:
            return
        module = self._text(module_node, 300).replace(" ", "")
        relative = module.startswith(".")
        names = [c for c in node.children_by_field_name("name")]
        if not _file_helpers_only(module, [self._text(c.child_by_field_name("name") or c, 200) for c in names]):
            self._module_event(module, node)
        if not names:
            if any(c.type == "wildcard_import" for c in node.named_children):
                self._bind(node, "", module, "*")
            return
        for item in names:
            if item.type == "aliased_import":
                name_node = item.child_by_field_name("name")
                alias_node = item.child_by_field_name("alias")
                if name_node is None or alias_node is None:
                    continue
                attr, local = self._text(name_node, 200), self._text(alias_node, 200)
            else:
                attr = local = self._text(item, 200)
            self._bind(node, local, module, attr)
            if not relative:
                self._set_name(self.aliases, local, f"{module}.{attr}")
                self.imported_roots.add(module.split(".", 1)[0])
                if module.split(".", 1)[0] in ("os", "posix", "nt") and attr in ("environ", "environb", "getenv"):
                    pass  # the uses are reported where they happen
            if classify_capture_name(attr):
                self.emit("capture_screen_or_clipboard", node)

    # ------------------------------------------------------------------ names
    def _set_name(self, table: dict[str, _T], name: str, value: _T) -> None:
        """Bind `name` in the aliases or constants (what resolve() reads), noting a change."""
        old = table.get(name, _MISSING)
        if old is _MISSING or type(old) is not type(value) or old != value:
            self.names_version += 1
        table[name] = value

    def _unset_name(self, table: dict[str, _T], name: str) -> None:
        if table.pop(name, _MISSING) is not _MISSING:
            self.names_version += 1

    def resolve(self, node: Node | None, depth: int = 0) -> str | None:
        """Dotted name an expression refers to, after aliases and constant folding."""
        if node is None or depth > 12:
            return None
        t = node.type
        if t == "identifier":
            name = self._text(node, 200)
            if name in ("__builtins__", "__builtin__"):
                return "builtins"
            return self.aliases.get(name, name)
        if depth:
            return self._resolve(node, t, depth)
        # The same callee is resolved by several handlers (an assignment, then its call): remembered
        # per node while no alias or constant changed. What resolving folds is memoised and counted
        # on first use only, so the work counted is the same either way.
        key = (node.id, self.names_version)
        memo = self.resolve_memo
        if key in memo:
            return memo[key]
        found = self._resolve(node, t, depth)
        memo[key] = found
        return found

    def _resolve(self, node: Node, t: str, depth: int) -> str | None:
        if t == "attribute":
            base = self.resolve(node.child_by_field_name("object"), depth + 1)
            attr = node.child_by_field_name("attribute")
            if base is None or attr is None:
                return None
            return f"{base}.{self._text(attr, 200)}"
        if t == "parenthesized_expression" and node.named_child_count == 1:
            return self.resolve(node.named_children[0], depth + 1)
        if t == "call":
            fn = _normalise(self.resolve(node.child_by_field_name("function"), depth + 1))
            args = self._positional_args(node)
            if fn in _IMPORTERS and args:
                module = self._fold_text(args[0])
                if module is None:
                    return None
                return module.split(".", 1)[0] if fn == "__import__" and not self._has_fromlist(node) else module
            if fn == "getattr" and len(args) >= 2:
                base = self.resolve(args[0], depth + 1)
                attr_name = self._fold_text(args[1])
                if base is not None and attr_name is not None and attr_name.isidentifier():
                    return f"{base}.{attr_name}"
                return None
            if fn in ("globals", "locals") and not args:
                return "<globals>"
            if fn == "vars" and len(args) == 1:
                base = self.resolve(args[0], depth + 1)
                return f"{base}.__dict__" if base is not None else None
            return None
        if t == "subscript":
            base = self.resolve(node.child_by_field_name("value"), depth + 1)
            key_node = node.child_by_field_name("subscript")
            key = self._fold_text(key_node)
            if base is None or key is None or not key.isidentifier():
                return None
            if base == "<globals>":
                if key in ("__builtins__", "__builtin__"):
                    return "builtins"
                return self.aliases.get(key, key)
            if base.endswith(".__dict__"):
                return f"{base[: -len('.__dict__')]}.{key}"
            if base == "builtins":
                return f"builtins.{key}"
            return None
        return None

    def _has_fromlist(self, call: Node) -> bool:
        return len(self._positional_args(call)) >= 4 or self._keyword(call, "fromlist") is not None

    @staticmethod
    def _positional_args(call: Node) -> list[Node]:
        return _positional_of(call.child_by_field_name("arguments"))

    def _keyword(self, call: Node, name: str) -> Node | None:
        args = call.child_by_field_name("arguments")
        if args is None:
            return None
        for a in args.named_children:
            if a.type == "keyword_argument":
                key = a.child_by_field_name("name")
                if key is not None and self._bytes(key) == name.encode():
                    return a.child_by_field_name("value")
        return None

    # ------------------------------------------------------------------ folding
    def _fold_text(self, node: Node | None) -> str | None:
        if node is None:
            return None
        value = self.fold(node)
        return None if value is None else _as_text(value)

    def fold(self, node: Node, depth: int = 0) -> _Value | None:
        key = (node.start_byte, node.end_byte, node.type)
        if key in self.fold_memo:
            return self.fold_memo[key]
        value = self._fold(node, depth) if depth <= MAX_FOLD_DEPTH else None
        if value is not None and len(value) > MAX_FOLD_LENGTH:
            value = None
        self.fold_memo[key] = value
        if value is not None:
            self.work.spend_bytes(len(value))  # bytes folded or decoded
        return value

    def _fold(self, node: Node, depth: int) -> _Value | None:
        t = node.type
        if t == "string":
            return _string_value(node, self.source)
        if t == "concatenated_string":
            parts = [self.fold(c, depth + 1) for c in node.named_children if c.type == "string"]
            return _join_values(parts)
        if t == "parenthesized_expression" and node.named_child_count == 1:
            return self.fold(node.named_children[0], depth + 1)
        if t == "identifier":
            return self.constants.get(self._text(node, 200))
        if t == "binary_operator":
            op = node.child_by_field_name("operator")
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if op is None or left is None or right is None:
                return None
            if op.type == "+":
                return _join_values([self.fold(left, depth + 1), self.fold(right, depth + 1)])
            if op.type == "*":
                lv = self.fold(left, depth + 1)
                count = _int_literal(self._text(right, 20)) if right.type == "integer" else None
                if lv is not None and count is not None and count >= 0 and len(lv) * count <= MAX_FOLD_LENGTH:
                    return lv * count
            return None
        if t == "subscript":
            slice_node = node.child_by_field_name("subscript")
            value_node = node.child_by_field_name("value")
            if slice_node is not None and value_node is not None and _is_reversal(self._text(slice_node, 40)):
                v = self.fold(value_node, depth + 1)
                return v[::-1] if v is not None else None
            return None
        if t == "call":
            return self._fold_call(node, depth)
        return None

    def _fold_sequence(self, node: Node, depth: int) -> list[_Value] | None:
        """Elements of a literal list/tuple/map(chr, ...)/comprehension of chr codes."""
        t = node.type
        if t in ("list", "tuple", "set"):
            out: list[_Value] = []
            for child in node.named_children:
                if child.type == "comment":
                    continue
                v = self.fold(child, depth + 1)
                if v is None:
                    return None
                out.append(v)
            return out
        if t == "identifier":
            value = self.constants.get(self._text(node, 200))
            return [ch for ch in value] if isinstance(value, str) else None
        if t == "call":
            fn = _normalise(self.resolve(node.child_by_field_name("function")))
            args = self._positional_args(node)
            if fn == "map" and len(args) == 2 and _normalise(self.resolve(args[0])) in ("chr", "unichr"):
                codes = self._int_sequence(args[1])
                return _chars(codes)
            if fn in ("reversed",) and len(args) == 1:
                seq = self._fold_sequence(args[0], depth + 1)
                if seq is None:
                    v = self.fold(args[0], depth + 1)
                    if v is None:
                        return None
                    chars: list[_Value] = [ch for ch in (_as_text(v) or "")]
                    return chars[::-1]
                return seq[::-1]
            if fn in ("list", "tuple") and len(args) == 1:
                return self._fold_sequence(args[0], depth + 1)
            return None
        if t in ("list_comprehension", "generator_expression"):
            body = node.child_by_field_name("body")
            clauses = [c for c in node.named_children if c.type == "for_in_clause"]
            if body is None or len(clauses) != 1 or body.type != "call":
                return None
            if _normalise(self.resolve(body.child_by_field_name("function"))) not in ("chr", "unichr"):
                return None
            inner = self._positional_args(body)
            var = clauses[0].child_by_field_name("left")
            right = clauses[0].child_by_field_name("right")
            if len(inner) != 1 or var is None or right is None or self._bytes(inner[0]) != self._bytes(var):
                return None
            return _chars(self._int_sequence(right))
        v = self.fold(node, depth + 1)
        if isinstance(v, str):
            return [ch for ch in v]
        return None

    def _int_sequence(self, node: Node) -> list[int] | None:
        if node.type not in ("list", "tuple"):
            return None
        out: list[int] = []
        for child in node.named_children:
            if child.type != "integer":
                return None
            n = _int_literal(self._text(child, 30))
            if n is None:
                return None
            out.append(n)
        return out

    def _fold_call(self, node: Node, depth: int) -> _Value | None:
        fn_node = node.child_by_field_name("function")
        if fn_node is None:
            return None
        args = self._positional_args(node)
        # Method calls on a foldable receiver: "sep".join(...), x.decode(), x[::-1].replace(...)
        if fn_node.type == "attribute":
            obj = fn_node.child_by_field_name("object")
            attr_node = fn_node.child_by_field_name("attribute")
            method = self._text(attr_node, 40) if attr_node is not None else ""
            if obj is not None and method in _STRING_METHODS and obj.type in _FOLDABLE_RECEIVERS:
                receiver = self.fold(obj, depth + 1)
                if receiver is not None:
                    return self._apply_method(receiver, method, args, depth)
            if obj is not None and method == "fromhex" and obj.type == "identifier" \
                    and self._bytes(obj) in (b"bytes", b"bytearray"):
                v = self.fold(args[0], depth + 1) if args else None
                try:
                    return bytes.fromhex(_to_bytes(v).decode("ascii")) if v is not None else None
                except ValueError:
                    return None
        fn = _normalise(self.resolve(fn_node))
        if fn is None:
            return None
        if fn in ("chr", "unichr") and len(args) == 1 and args[0].type == "integer":
            n = _int_literal(self._text(args[0], 30))
            return chr(n) if n is not None and 0 <= n < 0x110000 else None
        if fn in ("str", "unicode") and len(args) == 1:
            return self.fold(args[0], depth + 1)
        if fn in ("bytes", "bytearray") and len(args) >= 1:
            codes = self._int_sequence(args[0])
            if codes is not None:
                return bytes(c & 0xFF for c in codes)
            v = self.fold(args[0], depth + 1)
            return _to_bytes(v) if v is not None else None
        if not args:
            return None
        module, _, func = fn.rpartition(".")
        if module == "base64" and ("decode" in func):
            v = self.fold(args[0], depth + 1)
            return _b64_like_decode(func, _to_bytes(v)) if v is not None else None
        if fn in ("binascii.unhexlify", "binascii.a2b_hex"):
            v = self.fold(args[0], depth + 1)
            try:
                return binascii.unhexlify(_to_bytes(v).strip()) if v is not None else None
            except (binascii.Error, ValueError):
                return None
        if fn == "binascii.a2b_base64":
            v = self.fold(args[0], depth + 1)
            return _b64_like_decode("b64decode", _to_bytes(v)) if v is not None else None
        if module in ("zlib", "lzma", "bz2", "gzip") and func == "decompress":
            v = self.fold(args[0], depth + 1)
            return _bounded_decompress(module, _to_bytes(v)) if v is not None else None
        if fn == "codecs.decode":
            v = self.fold(args[0], depth + 1)
            codec = self._fold_text(args[1]) if len(args) > 1 else "utf-8"
            return _codec_decode(v, codec) if v is not None and codec is not None else None
        return None

    def _apply_method(self, receiver: _Value, method: str, args: list[Node], depth: int) -> _Value | None:
        if method == "join" and len(args) == 1:
            items = self._fold_sequence(args[0], depth + 1)
            if items is None:
                return None
            if isinstance(receiver, bytes):
                return receiver.join(_to_bytes(i) for i in items)
            texts = [_as_text(i) for i in items]
            if any(x is None for x in texts):
                return None
            return receiver.join(x for x in texts if x is not None)
        if method == "decode":
            codec = self._fold_text(args[0]) if args else ""
            return _codec_decode(receiver, codec) if codec is not None else None
        if method == "encode":
            codec = self._fold_text(args[0]) if args else ""
            if codec is None:
                return None
            if isinstance(receiver, str) and codec.lower() in ("", "utf-8", "utf8", "ascii", "latin-1", "latin1"):
                return receiver.encode("utf-8", errors="replace")
            return _codec_decode(receiver, codec) if codec.lower() in ("rot13", "rot_13") else None
        if method == "replace" and len(args) >= 2:
            old, new = self.fold(args[0], depth + 1), self.fold(args[1], depth + 1)
            if old is None or new is None or type(old) is not type(receiver) or type(new) is not type(receiver):
                return None
            return receiver.replace(old, new)  # type: ignore[arg-type]
        if method in ("lower", "upper", "strip", "lstrip", "rstrip") and not args:
            return getattr(receiver, method)()  # type: ignore[no-any-return]
        return None

    # ------------------------------------------------------------------ handlers
    def _on_assign(self, node: Node) -> None:
        left = node.child_by_field_name("left")
        right = node.child_by_field_name("right")
        if left is None or right is None or left.type != "identifier":
            return
        name = self._text(left, 200)
        self._note_loader_assignment(name, right)
        if name in _METADATA_DUNDERS and self.scope == MODULE_SCOPE:
            # `__url__ = "https://..."` in a package's about/version module: metadata, like setup(url=).
            self.metadata_ranges.append((right.start_byte, right.end_byte))
        value = self.fold(right) if right.type in _FOLDABLE_RECEIVERS or right.type == "call" else None
        if value is not None:
            self._set_name(self.constants, name, value)
        else:
            self._unset_name(self.constants, name)
        if right.type in ("identifier", "attribute", "call", "subscript", "parenthesized_expression"):
            target = self.resolve(right)
            imported_here = right.type == "call" and _normalise(
                self.resolve(right.child_by_field_name("function"))) in _IMPORTERS
            if target is not None and target != name and (
                imported_here
                or target.split(".", 1)[0] in self.imported_roots
                or _normalise(target) in _DANGEROUS_BUILTINS
                or target.startswith("builtins")
            ):
                self._set_name(self.aliases, name, target)
                if right.type == "call":
                    fn = _normalise(self.resolve(right.child_by_field_name("function")))
                    if fn in _IMPORTERS:
                        self._bind(node, name, target, None)
            elif target is None and right.type == "call":
                fn = _normalise(self.resolve(right.child_by_field_name("function")))
                if fn is not None and fn in _INSTANCE_TYPES:
                    # x = socket.socket(); x.send(...) -> socket.socket().send
                    self._set_name(self.aliases, name, f"{fn}()")
                else:
                    self._unset_name(self.aliases, name)
            else:
                self._unset_name(self.aliases, name)

    def _on_decorator(self, node: Node) -> None:
        expr = node.named_children[0] if node.named_child_count else None
        if expr is None or expr.type == "call":
            return  # the call node reports itself
        callee = self._callee_text(expr)
        row, col = expr.start_point
        self.calls.append(CallSite(self.path, row + 1, col, self.scope, intern(callee), CallKind.CALL))

    def _callee_text(self, fn_node: Node, resolved: str | None = None) -> str:
        # Names bound by relative imports are never aliased, so they stay local here:
        # the binding says where they come from.
        if resolved is None:
            resolved = self.resolve(fn_node)
        if resolved is not None:
            return _normalise(resolved) or resolved
        return "".join(self._text(fn_node, 120).split())

    def _on_call(self, node: Node) -> None:
        fn_node = node.child_by_field_name("function")
        if fn_node is None:
            return
        raw_resolved = self.resolve(fn_node)
        resolved = _normalise(raw_resolved)
        # _callee_text, with the name normalised once
        callee = resolved or raw_resolved if raw_resolved is not None else "".join(self._text(fn_node, 120).split())
        row, col = node.start_point
        # interned: a big package repeats the same few thousand callee texts over hundreds of thousands
        # of call sites (docs/results/speed/memory.md); one string each keeps the call graph smaller
        self.calls.append(CallSite(self.path, row + 1, col, self.scope, intern(callee), CallKind.CALL))
        args = self._collect_callbacks(node.child_by_field_name("arguments"))
        if resolved is None:
            # Method on a folded string or an unresolvable receiver: still look at the method name.
            if fn_node.type == "attribute":
                attr = fn_node.child_by_field_name("attribute")
                resolved = "?." + self._text(attr, 60) if attr is not None else None
            if resolved is None:
                return
        self.resolved_calls.add(resolved)
        flags = _CALL_FLAGS.get(resolved)
        if flags is None:
            flags = _call_flags(resolved)
        if not flags:
            return  # the common case: nothing below looks at a call of this name
        if flags & _F_OPENER and node.parent is not None and node.parent.type == "as_pattern":
            self._note_opened_as(node)
        if flags & _F_SETUP or (flags & _F_SETUP_PY_SETUP and self.is_setup):
            self._note_setup_metadata(node)
        self._call_behaviours(node, resolved, fn_node, args, flags)
        if flags & _F_FOLD_ROOT:
            self._fold_root(node)

    def _note_opened_as(self, call: Node) -> None:
        """`with open(P) as f:`: f.read() reads P."""
        alias = call.parent.child_by_field_name("alias") if call.parent is not None else None
        target = alias.named_children[0] if alias is not None and alias.named_child_count else alias
        args = self._positional_args(call)
        if target is not None and target.type == "identifier" and args:
            name = self._text(target, 200)
            path = self._package_path(args[0])
            if path is not None:
                self.opened_files[name] = path
            else:
                self.opened_files.pop(name, None)

    def _note_setup_metadata(self, call: Node) -> None:
        args = call.child_by_field_name("arguments")
        if args is None or args.type != "argument_list":
            return
        for arg in args.named_children:
            if arg.type != "keyword_argument":
                continue
            key, value = arg.child_by_field_name("name"), arg.child_by_field_name("value")
            if key is not None and value is not None \
                    and self._bytes(key).decode("ascii", "replace") in SETUP_METADATA_KEYWORDS:
                self.metadata_ranges.append((value.start_byte, value.end_byte))

    def _note_metadata_pairs(self, root: Node) -> None:
        """setup.py's metadata gathered in a dict first (`{"url": "https://...", ...}` then `setup(**info)`)."""
        for _pattern, match in QueryCursor(_METADATA_PAIR_QUERY).matches(root):
            key, value = match["key"][0], match["value"][0]
            if (_string_value(key, self.source) or "") in SETUP_METADATA_KEYWORDS:
                self.metadata_ranges.append((value.start_byte, value.end_byte))

    def _in_metadata(self, node: Node) -> bool:
        return any(start <= node.start_byte and node.end_byte <= end for start, end in self.metadata_ranges)

    def _collect_callbacks(self, args: Node | None) -> list[Node]:
        """Note the lambdas and named callbacks passed to a call; returns its positional arguments
        (what _positional_args answers, from the same walk over the arguments)."""
        if args is None or args.type != "argument_list":
            return []
        positional: list[Node] = []
        for arg in args.named_children:
            t = arg.type
            if t == "keyword_argument":
                value = arg.child_by_field_name("value")
                if value is None:
                    continue
                t = value.type
            else:
                value = arg
                if t not in _NOT_POSITIONAL:
                    positional.append(arg)
            if t == "lambda":
                row, col = value.start_point
                name = self._lambda_name(value)
                qualname = name or f"<lambda@{row + 1}:{col}>"
                self.calls.append(CallSite(self.path, row + 1, col, self.scope, qualname, CallKind.INLINE))
            elif t == "identifier" or t == "attribute":
                self.callback_candidates.append((value, self.scope))
        return positional

    def _flush_callbacks(self) -> None:
        """Keep callback candidates that name a function of this file or an imported name."""
        defined = {f.name for f in self.functions if f.name}
        imported = {b.name for b in self.bindings if b.attribute is not None and b.name}
        for value, scope in self.callback_candidates:
            callee = "".join(self._text(value, 200).split())
            last = callee.rsplit(".", 1)[-1]
            if last in defined or ("." not in callee and callee in imported):
                row, col = value.start_point
                self.calls.append(CallSite(self.path, row + 1, col, scope, intern(callee), CallKind.CALLBACK))

    def _call_behaviours(self, node: Node, name: str, fn_node: Node | None, args: list[Node], flags: int) -> None:
        # What the engine does at a call besides reporting it: remember dup2 for the reverse-shell
        # check, analyse code handed to exec/eval, follow an import by constant name.
        if flags & _F_DUP2:
            self.dup2_sites.append((node, self.scope))
        if flags & _F_EVAL and args:
            self._analyse_evaluated(node, args[0])
            if self.is_setup and self._reads_version_file(node, args[0]):
                row, col = node.start_point
                self.exempt_positions.add((row + 1, col))
        if flags & _F_IMPORTER and args:
            module_name = self._fold_text(args[0])
            if module_name is not None and re.fullmatch(r"[\w.]+", module_name):
                self._module_event(module_name, node)
        if not flags & _F_RULES:
            # No rule reports anything for this name and it loads no file: nothing but the obfuscation checks.
            if flags & _F_OBFUSCATION:
                self._obfuscation_call(node, name, args)
            return
        facts = _PythonCallFacts(self, node, args)
        found = REGISTRY.call_behaviours(CallContext(Language.PYTHON, name, len(args),
                                                     fn_node is not None and fn_node.type == "attribute", facts))
        loaded = self._loaded_package_file(node, name, args)
        if loaded is not None:
            # The package's own module runs here: an edge to its body, not code evaluated from data.
            self._bind_loaded(node, loaded)
            found = [b for b in found if b not in ("eval_code", "dynamic_import")]
        if "run_command" in found:
            command = facts.command_line()
            if command is not None:
                if _VCS_COMMAND.match(command):
                    row, col = node.start_point
                    self.exempt_positions.add((row + 1, col))
                # The command's literal behaviours went to the call, once; _on_string then skips the literal.
                self.classified.add(hash(command))
            program = command if command is not None else self._command_head(args[0] if args else None)
            if program is not None and found == ["run_command"] and is_build_command(program, self.shipped()) \
                    and not self.sets_search_path():
                # cmake, make, a compiler, `git describe`: a build step, not arbitrary command execution.
                found = []
            elif program is None and found == ["run_command"] and self.is_setup and args \
                    and args[0].type == "identifier":
                self.parameter_commands.append((node, args[0]))
        if found:
            self.emit_many(found, node)
        if "run_inline_interpreter" in found:
            self._analyse_inline_interpreter_code(node, args)
        if flags & _F_OBFUSCATION:
            self._obfuscation_call(node, name, args)

    def _command_head(self, arg: Node | None) -> str | None:
        """The known words of an argument list built by concatenation (`["cmake", src] + args`): its
        first literal list, unfolded elements as "X"."""
        while arg is not None and arg.type == "binary_operator":
            arg = arg.child_by_field_name("left")
        if arg is None or arg.type not in ("list", "tuple"):
            return None
        pieces = [self._fold_text(c) for c in arg.named_children]
        return " ".join(p if p is not None else "X" for p in pieces) if pieces and pieces[0] else None

    # ------------------------------------------------------------------ loaders of package files
    def _note_loader_assignment(self, name: str, right: Node) -> None:
        """Remember `here = os.path.dirname(__file__)`, `f = open(P)`, `spec = spec_from_file_location(n, P)`
        and `mod = module_from_spec(spec)`; forget what the name meant before."""
        for table in (self.opened_files, self.file_specs, self.spec_modules):
            table.pop(name, None)
        self.file_dirs.discard(name)
        if right.type != "call":
            if self._has_file_name(right):
                self.file_dirs.add(name)
            return
        fn = _normalise(self.resolve(right.child_by_field_name("function"))) or ""
        args = self._positional_args(right)
        if fn in _OPENERS and args:
            path = self._package_path(args[0])
            if path is not None:
                self.opened_files[name] = path
        elif fn in _SPEC_FROM_FILE and len(args) >= 2:
            path = self._package_path(args[1])
            if path is not None:
                self.file_specs[name] = path
        elif fn in _MODULE_FROM_SPEC and args and args[0].type == "identifier":
            path = self.file_specs.get(self._text(args[0], 200))
            if path is not None:
                self.spec_modules[name] = path
        elif self._has_file_name(right):
            self.file_dirs.add(name)

    def _has_file_name(self, node: Node) -> bool:
        """`__file__` within the first 400 bytes of the node's text."""
        start = node.start_byte
        return self.source.find(b"__file__", start, min(node.end_byte, start + 400)) >= 0

    def _path_text(self, node: Node, depth: int = 0) -> str | None:
        """A path expression folded, with the folder of this file (`os.path.dirname(__file__)`, a name
        bound to it, `Path(__file__).parent`) as "" and os.path.join / pathlib `/` applied."""
        if depth > 8:
            return None
        if node.type == "identifier" and self._text(node, 200) in self.file_dirs:
            return ""
        if node.type == "parenthesized_expression" and node.named_child_count == 1:
            return self._path_text(node.named_children[0], depth + 1)
        if node.type == "binary_operator":
            op = node.child_by_field_name("operator")
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if op is not None and op.type == "/" and left is not None and right is not None:
                head, tail = self._path_text(left, depth + 1), self._path_text(right, depth + 1)
                return posixpath.join(head, tail) if head is not None and tail is not None else None
        if node.type == "call":
            fn = _normalise(self.resolve(node.child_by_field_name("function"))) or ""
            args = self._positional_args(node)
            if fn.endswith("path.join") and args:
                parts = [self._path_text(a, depth + 1) for a in args]
                return posixpath.join(*parts) if all(p is not None for p in parts) else None  # type: ignore[arg-type]
            if fn in ("str", "pathlib.Path", "Path", "os.fspath") and len(args) == 1:
                return self._path_text(args[0], depth + 1)
        if self._has_file_name(node):
            return ""
        return self._fold_text(node)

    def _package_path(self, node: Node) -> str | None:
        """The package file a path expression names (relative to this file's folder or the package root)."""
        text = self._path_text(node)
        if not text or posixpath.isabs(text) or "\\" in text:
            return None
        for base in (posixpath.dirname(self.path), ""):
            candidate = posixpath.normpath(posixpath.join(base, text))
            if not candidate.startswith("..") and candidate in self.package_paths:
                return candidate
        return None

    def _read_of_package_file(self, node: Node) -> str | None:
        """`open(P).read()`, `f.read()` of `with open(P) as f`, `Path(P).read_text()`, `compile(<one of those>, ...)`:
        the package file whose text this is."""
        if node.type != "call":
            return None
        fn_node = node.child_by_field_name("function")
        if fn_node is None:
            return None
        if fn_node.type == "attribute":
            attr = fn_node.child_by_field_name("attribute")
            obj = fn_node.child_by_field_name("object")
            if attr is None or obj is None or self._text(attr, 20) not in ("read", "read_text", "read_bytes"):
                return None
            if obj.type == "identifier":
                return self.opened_files.get(self._text(obj, 200))
            if obj.type == "call":
                inner_fn = _normalise(self.resolve(obj.child_by_field_name("function"))) or ""
                inner = self._positional_args(obj)
                if inner and (inner_fn in _OPENERS or inner_fn in ("pathlib.Path", "Path")):
                    return self._package_path(inner[0])
            return self._package_path(obj) if self._text(attr, 20) != "read" else None
        if _normalise(self.resolve(fn_node)) == "compile":
            args = self._positional_args(node)
            return self._read_of_package_file(args[0]) if args else None
        return None

    def _loaded_package_file(self, node: Node, name: str, args: list[Node]) -> str | None:
        """The .py file of the package a loader call runs here, if it is one."""
        path: str | None = None
        if name in ("exec", "execfile", "compile") and args:
            path = self._read_of_package_file(args[0]) if name != "execfile" else self._package_path(args[0])
            if name == "compile" and not (node.parent is not None and node.parent.type == "argument_list"):
                return None  # compiled, not run here (an exec() around it is the loader)
        elif name in ("runpy.run_path", "imp.load_source") and args:
            path = self._package_path(args[0] if name == "runpy.run_path" else args[-1])
        elif name.endswith(".exec_module") and args and args[0].type == "identifier":
            path = self.spec_modules.get(self._text(args[0], 200))
        elif name.endswith((".load_module", ".exec_module")):
            fn_node = node.child_by_field_name("function")
            obj = fn_node.child_by_field_name("object") if fn_node is not None else None
            if obj is not None and obj.type == "call" and (
                    _normalise(self.resolve(obj.child_by_field_name("function"))) or "").endswith("SourceFileLoader"):
                inner = self._positional_args(obj)
                path = self._package_path(inner[1]) if len(inner) >= 2 else None
        return path if path is not None and path.endswith(".py") else None

    def _bind_loaded(self, node: Node, path: str) -> None:
        """A binding that runs `path` at this call (and, when the result is assigned, names its module)."""
        here = posixpath.dirname(self.path)
        relative = posixpath.relpath(path[:-3], here or ".")
        ups = 0
        while relative.startswith("../"):
            relative, ups = relative[3:], ups + 1
        module = "." * (ups + 1) + relative.replace("/", ".")
        name = ""
        parent = node.parent
        if parent is not None and parent.type == "assignment":
            left = parent.child_by_field_name("left")
            if left is not None and left.type == "identifier":
                name = self._text(left, 200)
        elif node.child_by_field_name("arguments") is not None:
            args = self._positional_args(node)
            fn_text = self._text(node.child_by_field_name("function"), 200)  # type: ignore[arg-type]
            if fn_text.endswith(".exec_module") and args and args[0].type == "identifier":
                name = self._text(args[0], 200)
        self._bind(node, name, module, None)

    def _obfuscation_call(self, node: Node, name: str, args: list[Node]) -> None:
        func = name.rsplit(".", 1)[-1]
        if func == "join" and args:
            arg = args[0]
            if arg.type == "call" and _normalise(self.resolve(arg.child_by_field_name("function"))) == "map":
                inner = self._positional_args(arg)
                # Codes written in the source (a literal list or a constant), not text being converted.
                if len(inner) == 2 and _normalise(self.resolve(inner[0])) in ("chr", "unichr") and (
                        inner[1].type in ("list", "tuple") or inner[1].type == "identifier"):
                    self.emit("char_code_assembly", node)
            elif arg.type in ("list_comprehension", "generator_expression"):
                body = arg.child_by_field_name("body")
                clause = next((c for c in arg.named_children if c.type == "for_in_clause"), None)
                source = clause.child_by_field_name("right") if clause is not None else None
                if body is not None and body.type == "call" and source is not None and source.type in (
                        "list", "tuple") and _normalise(
                        self.resolve(body.child_by_field_name("function"))) in ("chr", "unichr"):
                    self.emit("char_code_assembly", node)
            elif arg.type in ("list", "tuple") and arg.named_child_count >= 4 and all(
                    c.type == "call" and c.child_by_field_name("function") is not None
                    and self._text(c.child_by_field_name("function"), 10) in ("chr", "unichr")  # type: ignore[arg-type]
                    for c in arg.named_children):
                self.emit("char_code_assembly", node)
        elif func in ("bytes", "bytearray") and args and args[0].type in ("list", "tuple") and \
                args[0].named_child_count >= 8 and self._parent_is_decode(node):
            self.emit("char_code_assembly", node)
        elif func in ("chr", "unichr") and node.parent is not None and node.parent.type == "binary_operator":
            parent = node.parent
            # chr(105)+chr(109)+... : report once, at the top of the chain.
            at_top = parent.parent is None or parent.parent.type != "binary_operator"
            if at_top and self._text(parent, 4000).count("chr(") >= 4:
                self.emit("char_code_assembly", parent)

    def _parent_is_decode(self, node: Node) -> bool:
        parent = node.parent
        attribute = parent.child_by_field_name("attribute") if parent is not None and parent.type == "attribute" \
            else None
        return attribute is not None and self._bytes(attribute) == b"decode"

    def _reads_version_file(self, call: Node, arg: Node) -> bool:
        """setup.py's `exec(open('pkg/__version__.py').read(), about)`: an ordinary version read."""
        if arg.type != "call" or not self._text(arg, 200).rstrip().endswith((".read()", ".read_text()")):
            return False
        statement = call
        while statement.parent is not None and statement.parent.type != "module":
            statement = statement.parent
        return _VERSION_FILE.search(self._text(statement, 3000)) is not None

    def _on_exec_statement(self, node: Node) -> None:
        self.emit("eval_code", node)
        code = node.child_by_field_name("code")
        if code is None and node.named_child_count:
            code = node.named_children[0]
        if code is not None:
            self.calls.append(CallSite(self.path, node.start_point[0] + 1, node.start_point[1], self.scope,
                                       "exec", CallKind.CALL))
            self._analyse_evaluated(node, code)

    def _analyse_evaluated(self, call: Node, arg: Node) -> None:
        """Code handed to exec/eval that folds to text: classify it and analyse it as Python."""
        value = self.fold(arg)
        if value is None:
            return
        text = _as_text(value)
        if text is None:
            return
        if hash(text) not in self.classified:
            self.classified.add(hash(text))
            self.emit_many(classify_literal(text), call, clean(" ".join(text[:300].split()), SNIPPET_LENGTH))
        if self.depth >= MAX_NESTED_DEPTH or self.nested_budget[0] <= 0 or not _PYTHON_CODE_HINT.search(text):
            return
        self.nested_budget[0] -= 1
        code = text.encode("utf-8", errors="replace")[:MAX_FOLD_LENGTH]
        self.work.spend(1 + len(code) // NESTED_PARSE_BYTES_PER_UNIT)
        inner = _FileAnalyser(self.path, code, self.work, self.depth + 1, self.nested_budget)
        inner.run()
        row, col = call.start_point
        for ev in inner.events:
            self._emit_at(ev.behaviour, row + 1, col, self.scope, ev.snippet)
        if self.work.exhausted:  # the shared budget ran out inside (not just the inner walk's head)
            raise _Budget

    def _analyse_inline_interpreter_code(self, call: Node, args: list[Node]) -> None:
        """`[sys.executable, "-c", code]`: the code string is Python like exec's argument."""
        if not args or args[0].type not in ("list", "tuple"):
            return
        items = [c for c in args[0].named_children if c.type != "comment"]
        if len(items) >= 3:
            self._analyse_evaluated(call, items[2])

    def _on_binop(self, node: Node) -> None:
        parent = node.parent
        if parent is not None and parent.type == "binary_operator":
            return  # only the top of a chain is folded
        op = node.child_by_field_name("operator")
        if op is None or op.type != "+":
            return
        self._fold_root(node)

    def _fold_root(self, node: Node) -> None:
        """Classify a folded value that is more than one literal (concatenation, join, decode)."""
        value = self.fold(node)
        if value is None:
            return
        text = _as_text(value)
        if text is None or len(text) < 4:
            return
        self._classify_value(text, node, snippet=clean(" ".join(text[:300].split()), SNIPPET_LENGTH))

    def _classify_value(self, value: str, node: Node, snippet: str | None = None) -> None:
        key = hash(value)
        if key in self.classified or (self.metadata_ranges and self._in_metadata(node)):
            return
        self.work.spend_bytes(len(value))  # classifying costs about 0.4 us a byte
        self.classified.add(key)
        found = classify_literal(value)
        if not found:
            return  # most literals name nothing
        self.emit_many(found, node, snippet)
        if "base64_string" in found:
            decoded = decode_base64_text(value)
            if decoded is not None and len(decoded) >= 4:
                inner_key = hash(decoded)
                if inner_key not in self.classified:
                    self.classified.add(inner_key)
                    self.emit_many(classify_literal(decoded), node,
                                   clean(" ".join(decoded[:300].split()), SNIPPET_LENGTH))

    def _on_concat(self, node: Node) -> None:
        value = self.fold(node)
        if value is not None:
            text = _as_text(value)
            if text is not None:
                self._classify_value(text, node)

    def _on_string(self, node: Node) -> None:
        start, end = node.start_byte, node.end_byte
        if end - start < 7:
            return  # at most four characters: nothing classify_literal looks at
        parent = node.parent
        if _is_docstring(node, parent) or (self.metadata_ranges and self._in_metadata(node)):
            return
        source = self.source
        ascii_text = self.ascii_text
        if end - start >= _raw_string_min_length():
            # (A shorter literal as written is shorter still as text: no raw-string rule looks at it.)
            raw_end = min(end, start + 20000)
            raw = ascii_text[start:raw_end] if ascii_text is not None else source[start:raw_end].decode("utf-8",
                                                                                                      "replace")
            found = classify_raw_literal(raw)
            if found:
                self.emit_many(found, node)
        if parent is not None and parent.type == "concatenated_string":
            return  # classified as a whole by _on_concat
        # An interpolation starts with "{": a literal without one has none (and most have none).
        if source.find(b"{", start, end) >= 0:
            if any(c.type == "interpolation" for c in node.children) or any(
                    gc.type == "interpolation" for c in node.children if c.type == "string_content"
                    for gc in c.children):
                text: str | None = _interpolated_text(node, source)
            else:
                value = _string_value(node, source)
                text = _as_text(value) if value is not None else None
        else:
            # No "{" and no backslash in a well-formed tree: no interpolation, no escape sequence, so the
            # value is the bytes between the quotes (what _string_value joins from the children).
            value = _plain_string_value(source, start, end) if not self.parse_errors else None
            if value is None:
                value = _string_value(node, source)
            text = _as_text(value) if value is not None else None
        if text:
            self._classify_value(text, node)

    def _on_slice(self, node: Node) -> None:
        if not _is_reversal(self._text(node, 40)):
            return
        sub = node.parent
        if sub is None or sub.type != "subscript":
            return
        value_node = sub.child_by_field_name("value")
        # Reversing a list of lines or a number is ordinary; reversing a string literal is the trick.
        if value_node is not None and (value_node.type in ("string", "concatenated_string")
                                       or isinstance(self.fold(value_node), str)):
            self.emit("string_reversal", sub)
            self._fold_root(sub)

    def _on_env(self, node: Node) -> None:
        parent = node.parent
        if parent is not None and parent.type == "attribute" and parent.child_by_field_name("attribute") is not None \
                and parent.child_by_field_name("attribute").id == node.id:  # type: ignore[union-attr]
            target = self.resolve(parent)
            where = parent
        else:
            target = self.aliases.get(self._text(node, 40))
            where = node
        if target is not None:
            for behaviour in REGISTRY.attribute_behaviours(AttributeContext(Language.PYTHON, target)):
                self.emit(behaviour, where)

    def _on_error(self, node: Node) -> None:
        self.parse_errors = True
        if node.end_byte - node.start_byte < 40:
            return
        text = self.source[node.start_byte:node.end_byte].decode("utf-8", errors="replace")
        row, col = node.start_point
        self._fallback_text(text, row, col, self.scope)

    # ------------------------------------------------------------------ fallback
    def _fallback_text(self, text: str, base_row: int, base_col: int, scope: str) -> None:
        """Token pass over text the parser could not structure (ERROR regions, oversized files)."""
        line_starts = [0]
        for m in re.finditer("\n", text):
            line_starts.append(m.end())

        def position(offset: int) -> tuple[int, int]:
            lo, hi = 0, len(line_starts) - 1
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if line_starts[mid] <= offset:
                    lo = mid
                else:
                    hi = mid - 1
            col = offset - line_starts[lo]
            return base_row + lo + 1, (base_col + col if lo == 0 else col)

        def emit(behaviour: str, offset: int, snippet: str) -> None:
            line, col = position(offset)
            if (behaviour, line) in self.event_lines:
                return
            self._emit_at(behaviour, line, col, scope, clean(" ".join(snippet.split()), SNIPPET_LENGTH))

        for m in _FALLBACK_IMPORT.finditer(text):
            self._tick()
            modules = [m.group(1)] if m.group(1) else [s.strip() for s in (m.group(2) or "").split(",")]
            for module in modules:
                root = module.split(".", 1)[0]
                self.imported_roots.add(root)
                if module.startswith("."):
                    continue
                # The same import rules as parsed imports.
                for behaviour in REGISTRY.import_behaviours(ImportContext(Language.PYTHON, module, root)):
                    emit(behaviour, m.start(), m.group(0))
        names_only = _ImportsOnly(self.imported_roots)
        for m in _FALLBACK_CALL.finditer(text):
            self._tick()
            dotted = m.group(1)
            head, _, rest = dotted.partition(".")
            resolved = self.aliases.get(head, head) + ("." + rest if rest else "")
            resolved = _normalise(resolved) or resolved
            # The same rules as parsed calls, told only the name: they cannot disagree.
            for behaviour in REGISTRY.call_behaviours(CallContext(Language.PYTHON, resolved, facts=names_only)):
                emit(behaviour, m.start(), text[m.start():m.start() + 200].split("\n", 1)[0])
        for m in _FALLBACK_STRING.finditer(text):
            self._tick()
            literal = m.group(1)
            try:
                value = ast.literal_eval(literal)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                value = literal[1:-1]
            value_text = _as_text(value) if isinstance(value, str | bytes) else None
            if not value_text or hash(value_text) in self.classified:
                continue
            self.classified.add(hash(value_text))
            found = classify_literal(value_text) + classify_raw_literal(literal)
            if "base64_string" in found:
                decoded = decode_base64_text(value_text)
                if decoded:
                    found += classify_literal(decoded)
            for behaviour in dict.fromkeys(found):
                emit(behaviour, m.start(1), literal[:200])

    # ------------------------------------------------------------------ file level
    def _reverse_shell_check(self) -> None:
        if not self.dup2_sites:
            return
        spawns_shell = any(n == "pty.spawn" or n.startswith("subprocess.") for n in self.resolved_calls) or \
            re.search(rb"/bin/(?:ba|z)?sh\b|cmd\.exe", self.source) is not None
        if "socket" in self.imported_roots and spawns_shell:
            node, scope = self.dup2_sites[0]
            row, col = node.start_point
            self._emit_at("reverse_shell", row + 1, col, scope, self._snippet(node))

    def _file_level(self) -> None:
        if self.depth > 0:
            return
        text = self.ascii_text if self.ascii_text is not None else self.source.decode("utf-8", errors="replace")
        for behaviour, finding in REGISTRY.file_behaviours(FileContext(Language.PYTHON, self.source, text)):
            self._emit_text_event(behaviour, text, finding.offset, finding.snippet)

    def _emit_text_event(self, behaviour: str, text: str, offset: int, snippet: str) -> None:
        line = text.count("\n", 0, offset) + 1
        col = offset - (text.rfind("\n", 0, offset) + 1)
        self._emit_at(behaviour, line, col, MODULE_SCOPE, clean(snippet, SNIPPET_LENGTH))

    # ------------------------------------------------------------------ setup.py
    # The engine walks setup.py and computes the facts (the classes registered as commands, what
    # each module-level step does); the install-hook rules (rules/install_hook.py) decide.
    def _setup_checks(self, root: Node) -> None:
        self._drop_parameter_build_commands(root)
        does = self._scope_behaviours()
        self._setup_command_override(root, does)
        self._setup_code_execution(root, does)

    def shipped(self) -> frozenset[str]:
        if self._shipped is None:
            self._shipped = shipped_program_names(self.package_paths)
        return self._shipped

    def sets_search_path(self) -> bool:
        """Does the file write PATH (or *PATH*, LD_*, DYLD_*) into its environment? Then the
        programs its build commands name may be the package's own: none of them is a build step."""
        if self._sets_search_path is None:
            self.work.spend_bytes(len(self.source))
            self._sets_search_path = _SEARCH_PATH_WRITE.search(self.source) is not None
        return self._sets_search_path

    def _drop_parameter_build_commands(self, root: Node) -> None:
        """`def cmd1(s): return os.popen(s).read()` called only as `cmd1("mecab-config --libs")` (directly
        or through other helpers passing their parameter on): the run_command at os.popen is a build step.
        Only in setup.py, which no other file imports, so every caller is in sight."""
        for call, arg in self.parameter_commands:
            if not self.sets_search_path() and self._parameter_gets_only_build_commands(root, arg, 0):
                row, col = call.start_point
                position = ("run_command", row + 1, col)
                self.events = [e for e in self.events if (e.behaviour, e.line, e.column) != position]
                self.event_positions.discard(position)

    def _parameter_gets_only_build_commands(self, root: Node, name_node: Node, depth: int) -> bool:
        """Is `name_node` a parameter of a module-level function whose every call in this file passes
        a literal build command (or a parameter of its own caller that does, 3 helpers deep at most)?
        Anything not understood (the function used other than by a plain call, the parameter reassigned,
        a splat, a default, an argument that is not a literal) answers no."""
        if depth > 3:
            return False
        name = self._text(name_node, 200)
        fn = name_node.parent
        while fn is not None and fn.type not in ("function_definition", "lambda", "class_definition"):
            self._tick()
            fn = fn.parent
        if fn is None or fn.type != "function_definition" or fn.parent is None or fn.parent.type != "module":
            return False
        fn_name, params, body = (fn.child_by_field_name(f) for f in ("name", "parameters", "body"))
        if fn_name is None or params is None or body is None:
            return False
        names = [self._text(p, 200) if p.type == "identifier" else None for p in params.named_children]
        if name not in names or None in names[:names.index(name) + 1]:
            return False
        index = names.index(name)
        self.work.spend_bytes(len(self.source))  # the scans below read the whole file
        if _DYNAMIC_LOOKUP.search(self.source) or self._rebinds(body, name):
            return False  # a caller or a value out of sight: the helper may run anything
        callee = self._text(fn_name, 200)
        calls = 0
        for m in re.finditer(rb"(?<!\w)" + re.escape(callee.encode()) + rb"\b", self.source):
            self._tick()
            use = root.descendant_for_byte_range(m.start(), m.end())
            if use == fn_name:
                continue
            if use is None or use.type != "identifier":
                return False  # the name in a string or a comment: `globals()["cmd1"]`, `getattr(m, "cmd1")`
            parent = use.parent
            if parent is None or parent.type != "call" or parent.child_by_field_name("function") != use:
                return False  # redefined, assigned, passed on or imported: callers out of sight
            args = parent.child_by_field_name("arguments")
            if args is None or args.type != "argument_list":
                return False
            positional = [a for a in args.named_children if a.type != "comment"]
            if any(a.type in ("list_splat", "dictionary_splat") for a in positional):
                return False
            keywords = [a for a in positional if a.type == "keyword_argument"]
            positional = [a for a in positional if a.type != "keyword_argument"]
            value = positional[index] if index < len(positional) else next(
                (k.child_by_field_name("value") for k in keywords
                 if (key := k.child_by_field_name("name")) is not None and self._text(key, 200) == name), None)
            if value is None:
                return False
            if value.type == "identifier":
                if not self._parameter_gets_only_build_commands(root, value, depth + 1):
                    return False
            else:
                pieces = value.named_children if value.type in ("list", "tuple") else [value]
                if not pieces or any(p.type not in ("string", "concatenated_string") or any(
                        c.type == "interpolation" for s in (p, *p.named_children) for c in s.named_children)
                        for p in pieces):
                    return False
                words = [self._fold_text(p) for p in pieces]
                if any(w is None for w in words) or not is_build_command(" ".join(w or "" for w in words),
                                                                               self.shipped()):
                    return False
            calls += 1
        return calls > 0

    def _rebinds(self, body: Node, name: str) -> bool:
        """Does anything in `body` bind `name` (an assignment or augmented assignment target, a for or
        comprehension variable, `with/except ... as`, a walrus, a match-case capture, del, global,
        nonlocal, an import, a nested def/class/lambda or its parameters)? Read from the tree: a
        regex misses `(s) = ...`, `s, _ = ...`, `[s] = ...`."""
        stack = [body]
        while stack:
            node = stack.pop()
            self._tick()
            targets: list[Node | None]
            kind = node.type
            if kind in ("assignment", "augmented_assignment", "for_statement", "for_in_clause"):
                targets = [node.child_by_field_name("left")]
            elif kind == "named_expression":
                targets = [node.child_by_field_name("name")]
            elif kind in ("as_pattern", "except_clause", "case_clause", "case_pattern", "delete_statement",
                          "global_statement", "nonlocal_statement", "import_statement", "import_from_statement",
                          "future_import_statement"):
                # The whole node: an alias, a capture or a listed name (reads in a case body refuse too).
                targets = [node]
            elif kind in ("function_definition", "class_definition"):
                targets = [node.child_by_field_name("name"), node.child_by_field_name("parameters")]
            elif kind == "lambda":
                targets = [node.child_by_field_name("parameters")]
            else:
                targets = []
            for target in targets:
                if target is not None and self._names_identifier(target, name):
                    return True
            stack.extend(node.named_children)
        return False

    def _names_identifier(self, node: Node, name: str) -> bool:
        stack = [node]
        while stack:
            current = stack.pop()
            self._tick()
            if current.type == "identifier" and self._text(current, 200) == name:
                return True
            stack.extend(current.named_children)
        return False

    def _setup_command_override(self, root: Node, does: dict[str, set[str]]) -> None:
        reported: set[str] = set()
        class_does: dict[str, frozenset[str]] = {}

        def context(command: str | None, info: _ClassInfo) -> CommandClassContext:
            found = class_does.get(info.qualname)
            if found is None:
                prefix = info.qualname + "."
                found = class_does[info.qualname] = frozenset(
                    b for scope, behaviours in does.items() if scope.startswith(prefix) for b in behaviours)
            return CommandClassContext(command, info.qualname, info.bases, frozenset(info.methods), found,
                                       cmdclass_in_file)

        cmdclass_in_file = b"cmdclass" in self.source
        query = Query(_TS_PYTHON, "(pair key: (string) @key value: (_) @value) @entry\n"
                                  "(keyword_argument name: (identifier) @key value: (_) @value) @entry")
        for _pattern, match in QueryCursor(query).matches(root):
            key_node, value_node, entry = match["key"][0], match["value"][0], match["entry"][0]
            if value_node.type not in ("identifier", "attribute"):
                continue
            key = self._fold_text(key_node) if key_node.type == "string" else self._text(key_node, 60)
            if key is None:
                continue
            cls_name = self._text(value_node, 200).rsplit(".", 1)[-1]
            info = self.classes.get(cls_name)
            if info is None:
                continue
            found = REGISTRY.command_class_behaviours(context(key, info))
            if found:
                row, col = entry.start_point
                for behaviour in found:
                    self._emit_at(behaviour, row + 1, col, MODULE_SCOPE, self._snippet(entry))
                reported.add(cls_name)
        for info in self.classes.values():
            if info.qualname in reported or "." in info.qualname:
                continue
            row, col = info.node.start_point
            for behaviour in REGISTRY.command_class_behaviours(context(None, info)):
                self._emit_at(behaviour, row + 1, col, MODULE_SCOPE, self._snippet(info.node))

    def _setup_code_execution(self, root: Node, does: dict[str, set[str]]) -> None:
        statements = [c for c in root.named_children if c.type != "comment"]
        starts = [s.start_point[0] + 1 for s in statements]
        flagged: set[int] = set()

        def statement_of(line: int) -> int:
            idx = -1
            for i, start in enumerate(starts):
                if start <= line:
                    idx = i
                else:
                    break
            return idx

        # Every module-level step, with what the rules report for it; per top-level statement the
        # first (by position) step with a finding is reported.
        candidates: list[tuple[int, int, str, tuple[str, ...]]] = []
        for ev in self.events:
            if ev.scope == MODULE_SCOPE:
                step = SetupStepContext(frozenset((ev.behaviour,)), False,
                                        (ev.line, ev.column) in self.exempt_positions)
                found = REGISTRY.setup_step_behaviours(step)
                if found:
                    candidates.append((ev.line, ev.column, ev.snippet, tuple(found)))
        for call in self.calls:
            if call.scope == MODULE_SCOPE:
                callee = self._callee_scope(call)
                if callee is None:
                    continue
                found = REGISTRY.setup_step_behaviours(SetupStepContext(frozenset(does.get(callee, ())), True))
                if found:
                    candidates.append((call.line, call.column, f"{call.callee}()", tuple(found)))
        for line, col, snippet, reported in sorted(candidates):
            idx = statement_of(line)
            if idx < 0 or idx in flagged:
                continue
            flagged.add(idx)
            for behaviour in reported:
                self._emit_at(behaviour, line, col, MODULE_SCOPE, snippet)

    def _callee_scope(self, call: CallSite) -> str | None:
        qualnames = {f.qualname for f in self.functions}
        if call.callee in qualnames:
            if call.kind is CallKind.INLINE or call.callee not in self.classes:
                return call.callee
            # Calling a class runs its constructor, not its body (that ran at definition).
            for method in ("__init__", "__new__"):
                if f"{call.callee}.{method}" in qualnames:
                    return f"{call.callee}.{method}"
            return None
        last = call.callee.rsplit(".", 1)[-1]
        matches = [q for q in qualnames if q.rsplit(".", 1)[-1] == last and q not in self.classes]
        return matches[0] if len(matches) == 1 and call.kind is not CallKind.INLINE else None

    def _scope_behaviours(self) -> dict[str, set[str]]:
        """What each scope of the file does: the behaviours of its events and of every function it
        calls (transitively), leaving out positions recognised as ordinary setup.py idioms."""
        does: dict[str, set[str]] = {}
        for ev in self.events:
            if ev.scope != MODULE_SCOPE and (ev.line, ev.column) not in self.exempt_positions:
                does.setdefault(ev.scope, set()).add(ev.behaviour)
        relative_names = {b.name for b in self.bindings if b.name and b.module.startswith(".")}
        for call in self.calls:
            head = call.callee.split(".", 1)[0]
            if call.scope != MODULE_SCOPE and (head in relative_names or self._is_local_module(head)):
                # What another file of the package does is not known here: the install-hook rules
                # must not read such a scope as one that only builds.
                does.setdefault(call.scope, set()).add(CALLS_PACKAGE_CODE)
        edges = [(c.scope, self._callee_scope(c)) for c in self.calls if c.scope != MODULE_SCOPE]
        changed = True
        while changed:
            changed = False
            for caller, callee in edges:
                reached = does.get(callee) if callee is not None else None
                if reached:
                    mine = does.setdefault(caller, set())
                    if not reached <= mine:
                        mine |= reached
                        changed = True
        return does

    def _is_local_module(self, root: str) -> bool:
        """Is `root` a top-level module or package of this package (`helperlib`, `src`)?"""
        if not root.isidentifier():
            return False
        return any(p == f"{root}.py" or p.startswith(f"{root}/") or p.startswith(f"src/{root}/")
                   for p in self.package_paths)

    def result(self, language: Language, seconds: float) -> FileAnalysis:
        events = sorted(self.events, key=_LINE_COLUMN)
        calls = sorted(self.calls, key=_LINE_COLUMN)
        return FileAnalysis(self.path, language, tuple(events), tuple(self.functions), tuple(calls),
                            tuple(self.bindings), self.parse_errors, self.budget_exhausted, seconds)


# Words a setup.py tests sys.argv for that pip never passes (pip runs egg_info, dist_info, bdist_wheel,
# editable_wheel, install, develop, build*, sdist...): code under such a guard does not run at install.
SETUP_GUARD_WORDS = frozenset({
    "publish", "upload", "release", "tag", "test", "tests", "pytest", "docs", "doc", "clean", "register",
    "upload_docs", "build_sphinx", "bump", "lint", "coverage", "check", "testing"})
GUARDED_SCOPE_PREFIX = "<not at install: argv guard@"


def _module_level_ifs(root: Node) -> list[Node]:
    """if statements of the module body, also inside module-level if/try/with blocks (not functions)."""
    found: list[Node] = []
    pending = [root]
    while pending and len(found) < 64:
        block = pending.pop()
        for child in block.named_children:
            if child.type == "if_statement":
                found.append(child)
                body = child.child_by_field_name("consequence")
                if body is not None:
                    pending.append(body)
                for clause in child.children_by_field_name("alternative"):
                    inner = clause.child_by_field_name("body") or clause.child_by_field_name("consequence")
                    if inner is not None:
                        pending.append(inner)
            elif child.type in ("try_statement", "with_statement"):
                pending.extend(c for c in child.named_children if c.type == "block")
                pending.extend(c.child_by_field_name("body") or c for c in child.named_children
                               if c.type in ("except_clause", "finally_clause", "else_clause"))
    return found


_METADATA_PAIR_QUERY = Query(_TS_PYTHON, "(pair key: (string) @key value: (_) @value)")
# Module-level names that hold package metadata (an __about__.py / __version__.py module).
_METADATA_DUNDERS = frozenset({
    "__url__", "__uri__", "__homepage__", "__download_url__", "__author__", "__author_email__", "__email__",
    "__maintainer__", "__maintainer_email__", "__license__", "__copyright__", "__description__", "__summary__",
    "__title__", "__credits__", "__status__", "__version__", "__docs_url__", "__source_url__"})
_OPENERS = frozenset({"open", "io.open", "codecs.open"})
_SPEC_FROM_FILE = frozenset({"importlib.util.spec_from_file_location"})
_MODULE_FROM_SPEC = frozenset({"importlib.util.module_from_spec"})

# setup() itself, and its keywords that only describe the package (PyPI shows them; nothing runs them).
_SETUP_FUNCTIONS = frozenset({"setuptools.setup", "distutils.core.setup", "numpy.distutils.core.setup"})
SETUP_METADATA_KEYWORDS = frozenset({
    "name", "version", "url", "download_url", "project_urls", "author", "author_email", "maintainer",
    "maintainer_email", "description", "long_description", "long_description_content_type", "license",
    "license_files", "keywords", "classifiers", "platforms", "provides", "obsoletes", "home_page"})

_DANGEROUS_BUILTINS = {"eval", "exec", "compile", "__import__", "getattr", "open", "execfile", "globals"}
_INSTANCE_TYPES = {"socket.socket", "requests.Session", "requests.session", "httpx.Client", "smtplib.SMTP",
                   "smtplib.SMTP_SSL", "ftplib.FTP", "http.client.HTTPConnection", "http.client.HTTPSConnection",
                   "urllib3.PoolManager"}
# Calls whose folded result is worth classifying on its own (it is more than one literal).
_FOLD_ROOT_FUNCS = {"join", "decode", "replace", "b64decode", "b32decode", "b16decode", "b85decode", "a85decode",
                    "urlsafe_b64decode", "standard_b64decode", "decodebytes", "decodestring", "unhexlify",
                    "a2b_hex", "a2b_base64", "decompress", "fromhex", "bytes", "bytearray"}
_STRING_METHODS = {"join", "decode", "encode", "replace", "lower", "upper", "strip", "lstrip", "rstrip"}
_FOLDABLE_RECEIVERS = {"string", "concatenated_string", "identifier", "binary_operator", "call", "subscript",
                       "parenthesized_expression"}


# `from codecs import open` is Python 2's way to open a text file with an encoding, not an encoder.
_FILE_HELPERS = {"codecs": frozenset({"open"}), "io": frozenset({"open"})}


def _positional_of(args: Node | None) -> list[Node]:
    """The positional arguments of a call's `arguments` node (none unless it is an argument_list)."""
    if args is None or args.type != "argument_list":
        return []
    return [a for a in args.named_children if a.type not in _NOT_POSITIONAL]


_NOT_POSITIONAL = frozenset({"keyword_argument", "comment", "list_splat", "dictionary_splat"})


# What _on_call does for a resolved callee name beyond recording the call site, as bits: a pure function
# of the name and the registered rules, so worked out once per name (per process, while the rules stay
# the same) instead of a dozen set lookups and name splits at every call.
_F_OPENER = 1  # open(): `with open(P) as f` binds f to P
_F_SETUP = 2  # setuptools.setup() and the like: their metadata keywords
_F_SETUP_PY_SETUP = 4  # setup() / dict() in a setup.py
_F_DUP2 = 8  # os.dup2, for the reverse-shell check
_F_EVAL = 16  # eval/exec: the code handed over is analysed
_F_IMPORTER = 32  # __import__, importlib.import_module...: an import by constant name
_F_RULES = 64  # some call rule may report for this name, or it may load a package file
_F_OBFUSCATION = 128  # join/bytes/bytearray/chr/unichr: _obfuscation_call looks at it
_F_FOLD_ROOT = 256  # the call's folded value is classified on its own
_CALL_FLAGS: dict[str, int] = {}
_CALL_FLAGS_RULES = [-1]  # how many rules the registry held when _CALL_FLAGS was filled
# A rule registered later (tests do) changes the flags of names already looked up: the registry
# empties the memo, which the engine reads without the count check of _call_flags.
REGISTRY.on_change(_CALL_FLAGS.clear)
_OBFUSCATION_FUNCS = frozenset({"join", "bytes", "bytearray", "chr", "unichr"})


def _call_flags(name: str) -> int:
    if _CALL_FLAGS_RULES[0] != len(REGISTRY.rules) or len(_CALL_FLAGS) >= _CALL_FLAGS_ENTRIES:
        # A rule registered since (tests do) changes what may_report_call answers: start over.
        _CALL_FLAGS.clear()
        _CALL_FLAGS_RULES[0] = len(REGISTRY.rules)
    func = name.rsplit(".", 1)[-1]
    flags = 0
    if name in _OPENERS:
        flags |= _F_OPENER
    if name in _SETUP_FUNCTIONS:
        flags |= _F_SETUP
    if name in ("setup", "dict"):
        flags |= _F_SETUP_PY_SETUP
    if name == "os.dup2":
        flags |= _F_DUP2
    if name in ("eval", "exec"):
        flags |= _F_EVAL
    if name in _IMPORTERS or name == "imp.load_module":
        flags |= _F_IMPORTER
    if REGISTRY.may_report_call(Language.PYTHON, name) or _may_load_package_file(name):
        flags |= _F_RULES
    if func in _OBFUSCATION_FUNCS:
        flags |= _F_OBFUSCATION
    if func in _FOLD_ROOT_FUNCS:
        flags |= _F_FOLD_ROOT
    _CALL_FLAGS[name] = flags
    return flags


_CALL_FLAGS_ENTRIES = 50_000
# A write of a variable that chooses which program or library runs: `os.environ["PATH"] = ".:" + ...`,
# `os.environ.update(LD_PRELOAD=...)`, `os.putenv("PATH", ...)`.
_SEARCH_PATH_NAME = rb"(?:[A-Z0-9_]*PATH[A-Z0-9_]*|LD_[A-Z0-9_]+|DYLD_[A-Z0-9_]+)"
_SEARCH_PATH_WRITE = re.compile(
    rb"environ\s*\[\s*[rbu]?['\"]" + _SEARCH_PATH_NAME + rb"['\"]\s*\]\s*\+?=(?!=)|"
    rb"(?:environ\.(?:update|setdefault)|putenv)\s*\([^)\n]{0,200}?\b" + _SEARCH_PATH_NAME + rb"\b")
# What lets setup.py reach a helper other than by a plain call, or run code the tree does not show:
# with any of these in the file, a helper's callers are not all in sight.
_DYNAMIC_LOOKUP = re.compile(rb"\b(?:exec|eval|runpy|importlib|__import__|__main__|__dict__)\b|"
                             rb"\b(?:globals|vars|locals|getattr|compile)\s*\(")


def _raw_string_min_length() -> int:
    """Bytes a literal needs, as written, for some raw-string rule to look at it (`Rule.min_length`: the
    registry skips a rule for shorter text, and a literal's text is no longer than its bytes)."""
    if _RAW_MIN[0] != len(REGISTRY.rules):
        _RAW_MIN[0] = len(REGISTRY.rules)
        _RAW_MIN[1] = min((r.min_length for r in REGISTRY.rules if r.kind is RuleKind.RAW_STRING), default=1 << 62)
    return _RAW_MIN[1]


_RAW_MIN = [-1, 0]  # [rules registered when computed, the length]


def _may_load_package_file(name: str) -> bool:
    """Whether `_loaded_package_file` can find a file for a call of this name (it answers None otherwise)."""
    return name in _LOADER_NAMES or name.endswith((".exec_module", ".load_module"))


_LOADER_NAMES = frozenset({"exec", "execfile", "compile", "runpy.run_path", "imp.load_source"})


def _file_helpers_only(module: str, names: list[str]) -> bool:
    helpers = _FILE_HELPERS.get(module)
    return helpers is not None and bool(names) and all(n in helpers for n in names)


def _normalise(name: str | None) -> str | None:
    """builtins.exec -> exec; requests.Session().post stays as written."""
    if name is None:
        return None
    if not name.startswith(("b", "_", "<")):
        return name  # every prefix below starts with one of these
    for prefix in ("builtins.", "__builtin__.", "__builtins__.", "<globals>."):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _is_reversal(slice_text: str) -> bool:
    return re.fullmatch(r"\s*:\s*:\s*-\s*1\s*", slice_text) is not None


def _chars(codes: list[int] | None) -> list[_Value] | None:
    if codes is None or any(not 0 <= c < 0x110000 for c in codes):
        return None
    return [chr(c) for c in codes]


def _join_values(parts: list[_Value | None]) -> _Value | None:
    if any(p is None for p in parts):
        return None
    values = [p for p in parts if p is not None]
    if all(isinstance(p, str) for p in values):
        return "".join(p for p in values if isinstance(p, str))
    if all(isinstance(p, bytes) for p in values):
        return b"".join(p for p in values if isinstance(p, bytes))
    return None


_ARG_KINDS = {"string": ArgKind.STRING, "concatenated_string": ArgKind.STRING, "integer": ArgKind.NUMBER,
              "list": ArgKind.ARRAY, "tuple": ArgKind.ARRAY, "identifier": ArgKind.IDENTIFIER,
              "call": ArgKind.CALL, "binary_operator": ArgKind.CONCAT, "dictionary": ArgKind.OBJECT}
_UNFOLDED = object()


class _PythonCallFacts(CallFacts):
    """Answers rules' questions about one parsed call (see malseq.features.rules.context)."""

    def __init__(self, analyser: _FileAnalyser, node: Node, args: list[Node]) -> None:
        self.analyser = analyser
        self.node = node
        self.args = args
        self.command: object = _UNFOLDED

    def _arg(self, index: int) -> Node | None:
        return self.args[index] if 0 <= index < len(self.args) else None

    def arg_kind(self, index: int) -> ArgKind:
        arg = self._arg(index)
        return ArgKind.MISSING if arg is None else _ARG_KINDS.get(arg.type, ArgKind.OTHER)

    def arg_text(self, index: int) -> str | None:
        return self.analyser._fold_text(self._arg(index))

    def arg_items(self, index: int) -> tuple[str | None, ...] | None:
        arg = self._arg(index)
        if arg is None or arg.type not in ("list", "tuple"):
            return None
        return tuple(self.analyser._fold_text(c) for c in arg.named_children if c.type != "comment")

    def arg_source(self, index: int, limit: int | None = 400) -> str:
        arg = self._arg(index)
        if arg is None:
            return ""
        return self.analyser._text(arg, limit if limit is not None else arg.end_byte - arg.start_byte)

    def arg_number(self, index: int) -> int | None:
        arg = self._arg(index)
        return _int_literal(self.analyser._text(arg, 200)) if arg is not None and arg.type == "integer" else None

    def arg_name(self, index: int) -> str | None:
        arg = self._arg(index)
        return _normalise(self.analyser.resolve(arg)) if arg is not None else None

    def keyword_text(self, name: str) -> str | None:
        return self.analyser._fold_text(self.analyser._keyword(self.node, name))

    def keyword_source(self, name: str, limit: int = 400) -> str | None:
        value = self.analyser._keyword(self.node, name)
        return self.analyser._text(value, limit) if value is not None else None

    def call_source(self, limit: int) -> str:
        return self.analyser._text(self.node, limit)

    def receiver_source(self, limit: int | None = 300) -> str:
        fn = self.node.child_by_field_name("function")
        obj = fn.child_by_field_name("object") if fn is not None else None
        if obj is None:
            return ""
        return self.analyser._text(obj, limit if limit is not None else obj.end_byte - obj.start_byte)

    def command_line(self) -> str | None:
        """The first argument folded; a list's elements joined with spaces ("X" for an unknown one)."""
        if self.command is _UNFOLDED:
            arg = self._arg(0)
            command: str | None = None
            if arg is not None and arg.type in ("list", "tuple"):
                pieces = [self.analyser._fold_text(c) for c in arg.named_children]
                command = " ".join(p if p is not None else "X" for p in pieces) if pieces and pieces[0] else None
            elif arg is not None:
                command = self.analyser._fold_text(arg)
            self.command = command
        return self.command if isinstance(self.command, str) else None

    def imported(self, root: str) -> bool:
        return root in self.analyser.imported_roots


class _ImportsOnly(CallFacts):
    """A call seen only as text: its name and the file's imports are all that is known."""

    def __init__(self, imported_roots: set[str]) -> None:
        self.roots = imported_roots

    def imported(self, root: str) -> bool:
        return root in self.roots


def _head_and_tail(source: bytes, head_end: int, tail_start: int) -> list[Range]:
    """Byte ranges to parse of an oversized file: its head and its tail, the tail starting at a line
    that starts a top-level statement (column 0, not a comment), so both parse as whole statements."""
    cut = source.rfind(b"\n", 0, head_end)
    head_end = cut + 1 if cut > 0 else head_end
    for m in _TOP_LEVEL_LINE.finditer(source, tail_start, min(len(source), tail_start + 65536)):
        tail_start = m.start() + 1
        break
    tail_start = max(tail_start, head_end)
    return [Range(Point(0, 0), _point(source, head_end), 0, head_end),
            Range(_point(source, tail_start), _point(source, len(source)), tail_start, len(source))]


def _point(source: bytes, offset: int) -> Point:
    row = source.count(b"\n", 0, offset)
    return Point(row, offset - (source.rfind(b"\n", 0, offset) + 1))


_TOP_LEVEL_LINE = re.compile(rb"\n[^\s#)\]}]")


def analyse_python_text(path: str, source: bytes, work: WorkBudget | None = None,
                        package_paths: frozenset[str] = frozenset()) -> FileAnalysis:
    """Analyse Python source bytes (tests and callers without a PackageFile). `package_paths` are the
    package's files: a loader of one of them (exec of its text, runpy, importlib specs) is a call-graph
    edge rather than code evaluated at run time."""
    start = time.monotonic()
    analyser = _FileAnalyser(path, source, work if work is not None else WorkBudget(FILE_WORK_UNITS),
                             package_paths=package_paths)
    analyser.run()
    return analyser.result(Language.PYTHON, time.monotonic() - start)


def analyse_python(file: PackageFile, deadline: Deadline, package_paths: frozenset[str] = frozenset(),
                   meter: PackageWorkBudget | None = None) -> FileAnalysis:
    """Behaviour events and call-graph facts of one Python file. Never raises on bad input.
    `meter`: the package budget every work unit spent is reported to.

    Raises `TimeBudgetExceeded` (and only that) when the package deadline passes mid-file."""
    start = time.monotonic()
    try:
        return analyse_python_text(file.path, file.data, WorkBudget(FILE_WORK_UNITS, deadline,
                                                                    f"analysing {file.path}", meter=meter),
                                   package_paths)
    except (RecursionError, MemoryError, ValueError, UnicodeError) as exc:  # pragma: no cover - defensive
        del exc
        return FileAnalysis(file.path, Language.PYTHON, (), (), (), (), parse_errors=True, budget_exhausted=True,
                            seconds=time.monotonic() - start)
