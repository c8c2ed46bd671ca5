"""JavaScript behaviour extractor: tree-sitter parse -> behaviour events and call-graph facts.

One parse per file (bounded by input size, `malseq.features.budget.parse_window`: a bigger bundle
is parsed as its head and its tail, so a 10 MB bundle yields a truncated but usable tree), one query that
captures every node kind we care about, and Python work only on those captures, never a
per-node walk. Names are resolved through a file-wide alias table built from requires,
imports, destructuring and constant string folding; resolution is deliberately flow- and
scope-insensitive because obfuscated malware rarely shadows, and precision matters more
on the API table than on the resolution.
"""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from sys import intern
from typing import TypeVar

import tree_sitter_javascript
from tree_sitter import Language as TSLanguage
from tree_sitter import Node, Parser, Point, Query, QueryCursor, Range

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
    BudgetExhausted,
    PackageWorkBudget,
    WorkBudget,
    cut_out,
    first_too_deep,
    parse_window,
    source_reader,
)
from malseq.features.rules import (
    REGISTRY,
    ArgKind,
    AttributeContext,
    CallContext,
    CallFacts,
    FileContext,
    FileFacts,
    ImportContext,
)
from malseq.features.rules.data_transmission import JS_RAW_SOCKET as _RAW_SOCKET_PATHS
from malseq.features.rules.payload_execution import JS_CHILD_PROCESS_RUN as _CHILD_PROCESS_RUN
from malseq.features.rules.payload_execution import JS_EVAL, JS_INLINE_FLAGS, JS_SPAWN_FAMILY
from malseq.features.rules.registry import js_parts
from malseq.features.strings import classify_literal, classify_raw_literal, decode_base64_text
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

# --- budgets -------------------------------------------------------------------------------
# Counted work, never seconds (malseq.features.budget): the same file gives the same events on
# any machine under any load. A file too big to parse whole is parsed as its head and its tail
# (budget.parse_window): malware appended to a big bundle sits at the end.
# Shares of the units left that each pass may use, so that a pass cut short leaves work for the
# next ones (a huge bundle still gets its calls and strings looked at); the last pass takes the rest.
BINDINGS_SHARE = 0.35
ENV_SHARE = 0.1
CALLS_SHARE = 0.6
STRINGS_SHARE = 0.6
# Deepest syntax tree queried (budget.first_too_deep); deeper subtrees are cut out of the parse.
MAX_TREE_DEPTH = 20_000
QUERY_RANGE_BYTES = 256 * 1024
MAX_EVENTS_PER_BEHAVIOUR_SCOPE = 20  # keep a minified bundle from exploding into thousands
SNIPPET_LENGTH = 120
# Classify a value longer than this only at its first occurrence.
REPEAT_LITERAL_LENGTH = 64

_JS = TSLanguage(tree_sitter_javascript.language())

_QUERY_SOURCE = """
(call_expression) @call
(new_expression) @new
(string) @string
(template_string) @template
[(function_declaration) (function_expression) (arrow_function) (method_definition)
 (generator_function_declaration) (generator_function) (class_declaration) (class)] @function
(variable_declarator
  value: [(string) (template_string) (binary_expression) (call_expression) (member_expression) (identifier)
          (array) (await_expression) (subscript_expression) (new_expression) (parenthesized_expression)]) @declarator
(assignment_expression
  left: [(identifier) (member_expression)]
  right: [(string) (template_string) (binary_expression) (call_expression) (member_expression) (identifier)
          (await_expression) (subscript_expression) (new_expression)]) @assignment
(import_statement) @import
(export_statement source: (_)) @export
(subscript_expression) @subscript
(binary_expression) @binary
(array) @array
(variable_declarator name: (identifier) @fn_name value: [(function_expression) (arrow_function) (generator_function)
  (class)] @named_fn)
(assignment_expression left: (_) @fn_name right: [(function_expression) (arrow_function) (generator_function)
  (class)] @named_fn)
(pair key: (_) @fn_name value: [(function_expression) (arrow_function) (generator_function) (class)] @named_fn)
(field_definition property: (_) @fn_name value: [(function_expression) (arrow_function) (generator_function)
  (class)] @named_fn)
"""
# Every pattern that has to look past a child's subtree before it can match (`(array (string))`,
# `(binary_expression operator: "+")`, `(subscript_expression index: ...)`) keeps one query state open
# per enclosing node of its kind, and the query visits each node once per open state: a 200 KB
# `[[[...]]]`, `a+a+...` or `b['c']['c']...` made one query run for minutes. Those nodes are captured
# alone and the child checked in `_filter_captures` (linear in the captures, the same answers).
# Node.parent is avoided throughout: tree-sitter walks down from the root to find a parent, so
# it costs O(depth) and a 5000-term concatenation made it quadratic; the query pairs names with
# functions and marks array strings instead.
# No text predicates (#eq?): on a tree parsed through a read callback, tree-sitter fetches each
# candidate's text through the callback again, which made one 1.8 MB file take minutes.
_QUERY = Query(_JS, _QUERY_SOURCE)
# The word `env` (`\benv\b`) as `env\b` plus a look at the byte before: a pattern that starts with a
# literal is searched for that literal first, one that starts with `\b` is tried at every byte (10x
# the CPU on a bundle).
_ENV_WORD = re.compile(rb"env\b")
_WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_UPLOAD_METHOD = re.compile(rb"(?i)\bmethod['\"]?\s*:\s*['\"`](?:post|put|patch)['\"`]")

_SUBSCRIPT_INDEX_TYPES = frozenset({"string", "binary_expression", "template_string"})

_FUNCTION_TYPES = frozenset({
    "function_declaration", "function_expression", "arrow_function", "method_definition",
    "generator_function_declaration", "generator_function", "class_declaration", "class",
})
_IDENTIFIER_TYPES = frozenset({"identifier", "property_identifier", "shorthand_property_identifier",
                               "shorthand_property_identifier_pattern"})
_CLASS_TYPES = frozenset({"class_declaration", "class"})
_INLINE_FUNCTION_TYPES = frozenset({"function_expression", "arrow_function", "generator_function"})
_ANON_KIND = {"arrow_function": "arrow", "class": "class", "class_declaration": "class"}

# Module tables (import events) live in malseq.features.rules.

# Names that evaluate to `require` itself.
_REQUIRE_PATHS = frozenset({"require", "module.require", "process.mainModule.require", "require.main.require",
                            "module.constructor._load", "module.constructor.prototype.require",
                            "process.mainModule.constructor._load"})
_GLOBAL_OBJECTS = frozenset({"global", "globalThis", "window", "self"})
# Roots worth remembering aliases for (besides every bound module name).
_KNOWN_GLOBALS = frozenset({"process", "require", "eval", "Function", "Buffer", "String", "module", "fetch",
                            "atob", "btoa", "setTimeout", "setInterval", "setImmediate", "XMLHttpRequest",
                            "WebSocket", "global", "globalThis", "window", "self", "JSON"})

_JS_GLOBALS = _KNOWN_GLOBALS | frozenset({"decodeURIComponent", "unescape", "escape", "Array", "Object", "Reflect",
                                          "Promise", "console", "exports", "CryptoJS", "navigator", "document",
                                          "location", "localStorage", "Deno", "Bun", "Worker", "Image"})

# --- the API table lives in malseq.features.rules (one registered function per behaviour) -----
_SHELL_PROGRAM = re.compile(r"(?i)(?:^|[/\\])(?:sh|bash|zsh|dash|cmd(?:\.exe)?|powershell(?:\.exe)?|pwsh)$")
_JS_ESCAPE = re.compile(
    r"\\(?:x([0-9a-fA-F]{2})|u\{([0-9a-fA-F]{1,6})\}|u([0-9a-fA-F]{4})|([0-7]{1,3})|(\r\n|\r|\n|\u2028|\u2029)|(.))",
    re.DOTALL,
)
# Escapes that Python's unicode_escape codec reads differently from JavaScript (or not at all):
# \u{...}, \a, \N{...}, \U, unknown letters, malformed \x/\u, octal above \377, non-ASCII after a backslash.
_PYTHON_COMPATIBLE_ESCAPES = re.compile(
    r"\\(?:[^\\'\"bfnrtvxu0-7\n]|u\{|x(?![0-9a-fA-F]{2})|u(?![0-9a-fA-F]{4})|[4-7][0-7][0-7])"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
# obfuscator.io's string-array base64 uses a lowercase-first alphabet.
_OBFUSCATOR_ALPHABET = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_FOLDING_CALLS = frozenset({"join", "fromCharCode", "toString", "concat", "replace", "atob", "decodeURIComponent",
                            "apply"})
_PLACEHOLDER = "x"  # stands for an unknown part in loose folding (`curl ${u} | sh` -> "curl x | sh")


_UNSET = object()
_START, _END, _TYPE = attrgetter("start_byte"), attrgetter("end_byte"), attrgetter("type")
_LINE, _COLUMN = attrgetter("line"), attrgetter("column")
_Positioned = TypeVar("_Positioned", BehaviourEvent, CallSite)


def _source_order(nodes: Iterable[Node]) -> list[Node]:
    """Nodes by start, outer before inner: a total order. tree-sitter's `captures()`
    lists nodes that start at the same byte (`a().b().c()`) in an order that changes from run to
    run, and the order nodes are handled in decides which events are emitted first and kept.

    Three stable sorts, least significant key first, give the order of the key
    `(start_byte, -end_byte, type)` (a stable `reverse=True` sort keeps equal items in place) with
    the node properties read by C-level `attrgetter`s instead of a Python key function per node."""
    ordered = sorted(nodes, key=_TYPE)
    ordered.sort(key=_END, reverse=True)
    ordered.sort(key=_START)
    return ordered


def _by_line_column(items: list[_Positioned]) -> tuple[_Positioned, ...]:
    """Items by `(line, column)`, equal keys in their given order: two stable sorts on int keys, about
    half the CPU of one sort on a tuple key (tens of thousands of call sites in a bundle)."""
    ordered = sorted(items, key=_COLUMN)
    ordered.sort(key=_LINE)
    return tuple(ordered)


def _upload_method_in(data: bytes) -> bool:
    """`_UPLOAD_METHOD.search(data) is not None`, with the pattern tried only where `method` is (in any
    ASCII case, as `(?i)` on bytes folds it): a case-insensitive pattern that starts with `\b` is
    otherwise tried at every byte of the file. `match` at a position still sees the byte before
    it for the `\b`."""
    lowered = data.lower()
    find = lowered.find
    at = find(b"method")
    while at != -1:
        if _UPLOAD_METHOD.match(data, at):
            return True
        at = find(b"method", at + 1)
    return False


def _outer_first(nodes: Iterable[Node]) -> list[Node]:
    """Nodes by `(start_byte, -end_byte)`, equal keys in their given order (as `_source_order`)."""
    ordered = sorted(nodes, key=_END, reverse=True)
    ordered.sort(key=_START)
    return ordered


def _from_both_ends(items: list[Node]) -> Iterator[Node]:
    """Items alternately from the front and the back: when the budget stops a pass half-way, both the
    start of a file and its end (where a payload appended to a bundle sits) have been seen."""
    if len(items) < 2000:
        yield from items
        return
    low, high = 0, len(items) - 1
    while low <= high:
        yield items[low]
        if low != high:
            yield items[high]
        low += 1
        high -= 1


def decode_js_string(body: str) -> str:
    """The value of a JS string literal's body (between the quotes), escapes decoded."""
    if "\\" not in body:
        return body
    if _PYTHON_COMPATIBLE_ESCAPES.search(body) is None:
        # Fast path: every escape means the same in Python's unicode_escape codec.
        try:
            value = body.encode("ascii", "backslashreplace").decode("unicode_escape")
        except (UnicodeDecodeError, UnicodeEncodeError):
            value = _JS_ESCAPE.sub(_decode_one_escape, body)
    else:
        value = _JS_ESCAPE.sub(_decode_one_escape, body)
    if _SURROGATE.search(value):
        # Recombine surrogate pairs written as two \\u escapes.
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _decode_one_escape(m: re.Match[str]) -> str:
    hex2, brace, hex4, octal, continuation, other = m.groups()
    if hex2 is not None:
        return chr(int(hex2, 16))
    if brace is not None:
        code = int(brace, 16)
        return chr(code) if code <= 0x10FFFF else ""
    if hex4 is not None:
        return chr(int(hex4, 16))
    if octal is not None:
        return chr(int(octal, 8) & 0xFF)
    if continuation is not None:
        return ""
    return _SIMPLE_ESCAPES.get(other, other)


def _module_key(name: str) -> str:
    """Canonical module name: `node:fs` -> `fs`, `fs/promises` -> `fs.promises`."""
    if name.startswith("node:"):
        name = name[5:]
    if name.endswith("/promises") and not name.startswith("."):
        name = name[: -len("/promises")] + ".promises"
    return name


def _module_root(key: str) -> str:
    return key.split(".promises", 1)[0]


def _family_of(module: str) -> str | None:
    """The import_* behaviour of a module name (obfuscators' string arrays name modules too)."""
    key = _module_key(module)
    for behaviour in REGISTRY.import_behaviours(ImportContext(Language.JAVASCRIPT, key, _module_root(key))):
        if behaviour.startswith("import_"):
            return behaviour
    return None


def _strip_promises(path: str) -> str:
    return path.replace(".promises.", ".")


# Options of http(s).request/get that send the request somewhere other than `hostname`/`host`: a custom
# DNS lookup, a Unix socket, an agent or a connection factory.
_REQUEST_REROUTING_KEYS = frozenset({"lookup", "socketPath", "agent", "createConnection"})


@dataclass
class _Function:
    start: int
    end: int
    qualname: str
    parent: int  # index into the sorted function list, -1 for module scope


class _Extractor:
    def __init__(self, file: PackageFile, work: WorkBudget) -> None:
        self.file = file
        self.path = file.path
        self.data = file.data
        # An ASCII file (most of them) is decoded once: a node's text is then a slice of it by byte
        # offsets, the same string `data[start:end].decode("utf-8", "replace")` gives.
        self.source: str | None = file.data.decode("ascii") if file.data.isascii() else None
        self.started = time.monotonic()
        self.work = work  # the file's budget, or the share of the pass running now
        self.budget_exhausted = False
        self.parse_errors = False

        self.events: list[BehaviourEvent] = []
        self.event_keys: set[tuple[str, int, int]] = set()
        self.scope_counts: dict[tuple[str, str], int] = {}
        self.functions: list[FunctionDef] = []
        self.calls: list[CallSite] = []
        self.bindings: list[Binding] = []

        self.line_starts: list[int] = []
        self.function_spans: list[_Function] = []
        self.function_starts: list[int] = []
        self.qualname_by_node: dict[int, str] = {}
        self.function_names: set[str] = set()

        self.aliases: dict[str, str] = {}  # local name -> resolved dotted path
        self.constants: dict[str, str] = {}  # local name -> constant string value
        self.loose_constants: dict[str, str] = {}  # local name -> value with unknown parts as placeholders
        self.constant_arrays: dict[str, list[str]] = {}
        self.single_bindings: dict[str, tuple[int, int] | None] = {}  # bound_object's scans of the file, by name
        self.bound_names: set[str] = set()
        self.module_roots: set[str] = set()
        self.senders: set[str] = set()  # names holding a request/socket that .write/.send uploads
        self.children: set[str] = set()  # names holding a spawned child process
        self.bound_require_calls: set[int] = set()
        self.classified: dict[str, list[str]] = {}
        self.resolve_memo: dict[int, object] = {}
        self.args_memo: dict[int, list[Node]] = {}
        self.seen_long_values: set[str] = set()
        self.folded_tops: set[int] = set()
        self.array_strings: set[int] = set()
        self.literal_hits: dict[str, list[int]] = {}  # behaviour -> start bytes of literals that showed it
        self.has_post_method = False
        self.obfuscated = False
        self.raw_socket_seen = False
        self.pipe_seen = False
        self.shell_spawns: list[tuple[Node, str]] = []

    # --- plumbing ---------------------------------------------------------------------------
    def text(self, node: Node) -> str:
        source = self.source
        if source is not None:
            value = source[node.start_byte:node.end_byte]
            if "\\u" in value and node.type in _IDENTIFIER_TYPES:
                return decode_js_string(value)
            return value
        raw = self.data[node.start_byte:node.end_byte]
        if b"\\u" in raw and node.type in _IDENTIFIER_TYPES:
            # `\u0065\u0076\u0061\u006C(x)` is eval(x): identifiers may be spelled with escapes.
            return decode_js_string(raw.decode("utf-8", errors="replace"))
        return raw.decode("utf-8", errors="replace")

    def run_pass(self, nodes: Iterable[Node], share: float, units: int, handle: Callable[[Node], None],
                 text_units: bool = False) -> None:
        """`handle` each node on `share` of the units left (`units` per node, plus the node's text
        length when `text_units`); a pass that runs out stops there and the next pass goes on."""
        file_work = self.work
        self.work = file_work.share(share)
        try:
            for node in nodes:
                self.work.spend(units)
                if text_units:
                    self.work.spend_bytes(node.end_byte - node.start_byte)
                handle(node)
        except BudgetExhausted:
            self.budget_exhausted = True
        finally:
            self.work = file_work

    def scope_at(self, byte: int) -> str:
        i = bisect.bisect_left(self.function_starts, byte) - 1
        spans = self.function_spans
        while i >= 0 and spans[i].end <= byte:
            i = spans[i].parent
        return spans[i].qualname if i >= 0 else MODULE_SCOPE

    def position_of_byte(self, byte: int) -> tuple[int, int]:
        if not self.line_starts:
            starts = [0]
            find = self.data.find
            pos = find(b"\n")
            while pos != -1:
                starts.append(pos + 1)
                pos = find(b"\n", pos + 1)
            self.line_starts = starts
        line = bisect.bisect_right(self.line_starts, byte)
        return line, byte - self.line_starts[line - 1]

    def snippet(self, node: Node) -> str:
        start = node.start_byte
        end = min(node.end_byte, start + 4 * SNIPPET_LENGTH)
        newline = self.data.find(b"\n", start, end)
        if newline != -1:
            end = newline
        return clean(self.data[start:end].decode("utf-8", errors="replace").strip(), SNIPPET_LENGTH)

    def emit(self, behaviour: str, node: Node, snippet: str | None = None) -> None:
        row, col = node.start_point
        self.emit_at(behaviour, row + 1, col, node.start_byte, snippet if snippet is not None else self.snippet(node))

    def emit_at(self, behaviour: str, line: int, column: int, byte: int, snippet: str) -> None:
        key = (behaviour, line, column)
        if key in self.event_keys:
            return
        scope = self.scope_at(byte)
        count_key = (behaviour, scope)
        count = self.scope_counts.get(count_key, 0)
        if count >= MAX_EVENTS_PER_BEHAVIOUR_SCOPE:
            return
        self.scope_counts[count_key] = count + 1
        self.event_keys.add(key)
        self.events.append(BehaviourEvent(behaviour, self.path, line, column, scope, snippet))

    # --- parse ------------------------------------------------------------------------------
    def parse(self) -> Node | None:
        data = self.data
        size = len(data)
        deadline = self.work.deadline
        read = source_reader(data)

        def progress(*_state: object) -> bool:
            # Only the package deadline (a safety net that fails the whole target) stops a parse.
            return deadline is not None and deadline.expired()

        parser = Parser(_JS)
        window = parse_window(data)
        ranges = None
        if window is not None:
            self.budget_exhausted = True
            ranges = self.head_and_tail(*window)
        for _cut in range(MAX_DEPTH_CUTS + 1):
            if ranges is not None:
                parser.included_ranges = ranges
            try:
                tree = parser.parse(read, progress_callback=progress)
            except ValueError:
                tree = None
            if tree is None:
                self.work.check_deadline()
                self.budget_exhausted = True
                return None
            root = tree.root_node
            deep = self.too_deep(root)
            if deep is None:
                self.parse_errors = root.has_error
                return root
            # Cut the over-deep subtree out of the parse: the rest of the file is still read.
            self.budget_exhausted = True
            full = [Range(Point(0, 0), self.point(size), 0, size)]
            ranges = cut_out(ranges if ranges is not None else full, deep.start_byte, deep.end_byte, self.point)
        return None

    def too_deep(self, root: Node) -> Node | None:
        try:
            return first_too_deep(root, MAX_TREE_DEPTH, self.work)
        except BudgetExhausted:
            self.budget_exhausted = True
            return root

    def point(self, byte: int) -> Point:
        line, column = self.position_of_byte(byte)
        return Point(line - 1, column)

    def head_and_tail(self, head_end: int, tail_start: int) -> list[Range]:
        """Byte ranges to parse of an oversized file: its head and its tail, cut after a `;` or newline."""
        data = self.data
        low = max(0, head_end - 4096)
        cut = max(data.rfind(b";", low, head_end), data.rfind(b"\n", low, head_end))
        if cut != -1:
            head_end = cut + 1
        cut = max(data.find(b";", tail_start, tail_start + 4096), data.find(b"\n", tail_start, tail_start + 4096))
        if cut != -1:
            tail_start = cut + 1
        tail_start = max(tail_start, head_end)
        return [Range(Point(0, 0), self.point(head_end), 0, head_end),
                Range(self.point(tail_start), self.point(len(data)), tail_start, len(data))]

    # --- functions and scopes ---------------------------------------------------------------
    def function_name(self, node: Node, name_node: Node | None) -> str:
        """The name a function is known by: its own, or the variable/property it is assigned to."""
        own = node.child_by_field_name("name")
        if node.type in ("function_declaration", "generator_function_declaration", "class_declaration",
                         "method_definition") and own is not None:
            return self.text(own)
        if name_node is not None:
            ntype = name_node.type
            if ntype in ("identifier", "member_expression", "subscript_expression"):
                name = self.assigned_name(name_node)
            elif ntype in ("property_identifier", "string", "number", "private_property_identifier"):
                name = self.property_name(name_node)
            else:
                name = ""
            if name:
                return name
        if own is not None:
            return self.text(own)
        return ""

    def function_name_nodes(self, names: list[Node], functions: list[Node]) -> dict[int, Node]:
        """Pair each assigned function with its name node (`x = function`, `{k: () => 1}`).

        One match holds one of each and the name comes first, so sorted by position they pair by
        index; a pair is only trusted when nothing but `=`/`:` separates name and function.
        """
        paired: dict[int, Node] = {}
        if len(names) != len(functions):
            return paired
        by_position = _source_order(names), _source_order(functions)
        for name, fn in zip(*by_position, strict=True):
            gap = self.data[name.end_byte:fn.start_byte]
            if name.end_byte <= fn.start_byte and len(gap) < 64 and gap.strip() in (b"=", b":", b"]:", b"] ="):
                paired[fn.id] = name
        return paired

    def assigned_name(self, left: Node) -> str:
        if left.type == "identifier":
            return self.text(left)
        if left.type != "member_expression":
            return ""
        text = self.text(left)
        if not re.fullmatch(r"[\w$]+(?:\.[\w$]+)*", text):
            prop = left.child_by_field_name("property")
            return self.text(prop) if prop is not None else ""
        parts = text.split(".")
        if text.startswith(("module.exports.", "exports.", "this.", "self.")):
            return parts[-1]
        if len(parts) >= 3 and parts[-2] == "prototype":
            return f"{parts[-3]}.{parts[-1]}"
        if text in ("module.exports", "exports"):
            return ""
        return text

    def property_name(self, key: Node) -> str:
        if key.type == "string":
            return decode_js_string(self.text(key)[1:-1])
        return self.text(key)

    def build_functions(self, nodes: list[Node], name_nodes: dict[int, Node]) -> None:
        nodes = _outer_first(nodes)
        stack: list[int] = []
        spans = self.function_spans
        for node in nodes:
            start, end = node.start_byte, node.end_byte
            while stack and spans[stack[-1]].end <= start:
                stack.pop()
            parent = stack[-1] if stack else -1
            name = self.function_name(node, name_nodes.get(node.id))
            row, col = node.start_point
            if name:
                parent_qual = spans[parent].qualname if parent >= 0 else None
                qualname = f"{parent_qual}.{name}" if parent_qual else name
            else:
                kind = _ANON_KIND.get(node.type, "function")
                qualname = f"<{kind}@{row + 1}:{col}>"
            spans.append(_Function(start, end, qualname, parent))
            stack.append(len(spans) - 1)
            self.qualname_by_node[node.id] = qualname
            if name:
                self.function_names.add(name.rsplit(".", 1)[-1])
            self.functions.append(FunctionDef(
                qualname=qualname, name=name.rsplit(".", 1)[-1], file=self.path, line=row + 1,
                end_line=node.end_point[0] + 1,
                parent=spans[parent].qualname if parent >= 0 else MODULE_SCOPE,
                is_class=node.type in _CLASS_TYPES,
            ))
        self.function_starts = [s.start for s in spans]

    # --- constant folding -------------------------------------------------------------------
    def fold(self, node: Node | None, loose: bool = False, depth: int = 0) -> str | None:
        """The constant string value of an expression, or None. `loose` puts a placeholder for unknown parts."""
        if node is None or depth > 40:
            return None
        t = node.type
        if t == "string":
            return decode_js_string(self.text(node)[1:-1])
        if t == "template_string":
            return self.fold_template(node, loose, depth)
        if t == "number":
            return self.text(node)
        if t == "parenthesized_expression":
            inner = node.named_child(0)
            return self.fold(inner, loose, depth + 1)
        if t == "binary_expression":
            return self.fold_concat(node, loose, depth)
        if t == "identifier":
            name = self.text(node)
            value = self.constants.get(name)
            if value is None and loose:
                return self.loose_constants.get(name, _PLACEHOLDER)
            return value
        if t == "call_expression":
            value = self.fold_call(node, loose, depth)
            if value is None and loose:
                return _PLACEHOLDER
            return value
        if t == "sequence_expression":
            last = node.named_child(node.named_child_count - 1)
            return self.fold(last, loose, depth + 1)
        return _PLACEHOLDER if loose else None

    def fold_template(self, node: Node, loose: bool, depth: int) -> str | None:
        parts: list[str] = []
        raw_start = node.start_byte + 1
        for child in node.named_children:
            if child.type == "template_substitution":
                parts.append(decode_js_string(self.data[raw_start:child.start_byte].decode("utf-8", "replace")))
                inner = child.named_child(0)
                value = self.fold(inner, loose, depth + 1)
                if value is None:
                    return None
                parts.append(value)
                raw_start = child.end_byte
        parts.append(decode_js_string(self.data[raw_start:node.end_byte - 1].decode("utf-8", "replace")))
        return "".join(parts)

    def fold_concat(self, node: Node, loose: bool, depth: int) -> str | None:
        # Left-nested chains ('a' + 'b' + 'c' ...) are flattened iteratively: minified code has long ones.
        operands: list[Node] = []
        current: Node | None = node
        while current is not None and current.type == "binary_expression":
            op = current.child_by_field_name("operator")
            if op is None or op.type != "+":
                return None
            right = current.child_by_field_name("right")
            if right is None:
                return None
            operands.append(right)
            current = current.child_by_field_name("left")
            if len(operands) > 2000:
                return None
        if current is None:
            return None
        operands.append(current)
        out: list[str] = []
        any_string = False
        for operand in reversed(operands):
            value = self.fold(operand, loose, depth + 1)
            if value is None:
                return None
            if operand.type in ("string", "template_string") or value != _PLACEHOLDER and operand.type != "number":
                any_string = True
            out.append(value)
        return "".join(out) if any_string else None

    def fold_array(self, node: Node | None, loose: bool = False, depth: int = 0) -> list[str] | None:
        if node is None:
            return None
        if node.type == "identifier":
            return self.constant_arrays.get(self.text(node))
        if node.type != "array":
            return None
        values: list[str] = []
        for child in node.named_children:
            if child.type == "comment":
                continue
            value = self.fold(child, loose, depth + 1)
            if value is None:
                return None
            values.append(value)
        return values

    def call_args(self, node: Node) -> list[Node]:
        """The call's arguments, comments left out (remembered per node: asked for several times a call;
        callers only read the list)."""
        found = self.args_memo.get(node.id)
        if found is None:
            args = node.child_by_field_name("arguments")
            if args is None or args.type != "arguments" or not args.named_child_count:
                found = []
            elif self.data.find(b"/", args.start_byte, args.end_byte) == -1:
                found = args.named_children  # a comment starts with "/": none in there
            else:
                found = [c for c in args.named_children if c.type != "comment"]
            self.args_memo[node.id] = found
        return found

    def fold_call(self, node: Node, loose: bool, depth: int) -> str | None:
        fn = node.child_by_field_name("function")
        if fn is None:
            return None
        args = self.call_args(node)
        if fn.type == "member_expression":
            obj = fn.child_by_field_name("object")
            prop_node = fn.child_by_field_name("property")
            if obj is None or prop_node is None:
                return None
            prop = self.text(prop_node)
            if prop in ("join", "resolve") and self.text(obj) == "path":
                parts = [self.fold(a, loose, depth + 1) for a in args]
                if any(p is None for p in parts):
                    return None
                return "/".join(p for p in parts if p is not None)
            if prop == "join":
                sep = self.fold(args[0], False, depth + 1) if args else ","
                if sep is None:
                    return None
                items = self.fold_array(obj, loose, depth + 1)
                if items is None and obj.type == "call_expression":
                    items = self.fold_list_call(obj, loose, depth + 1)
                return sep.join(items) if items is not None else None
            if prop == "fromCharCode" and self.text(obj) == "String":
                return self.fold_char_codes(args)
            if prop == "toString" and obj.type == "call_expression":
                encoding = self.fold(args[0], False, depth + 1) if args else "utf8"
                if encoding is None or encoding.lower().replace("-", "") not in ("utf8", "ascii", "latin1",
                                                                                  "binary"):
                    return None
                return self.fold_buffer(obj, depth + 1)
            if prop == "concat":
                base = self.fold(obj, loose, depth + 1)
                if base is None:
                    return None
                rest = [self.fold(a, loose, depth + 1) for a in args]
                if any(r is None for r in rest):
                    return None
                return base + "".join(r for r in rest if r is not None)
            if prop in ("toLowerCase", "toUpperCase", "trim") and not args:
                base = self.fold(obj, loose, depth + 1)
                if base is None:
                    return None
                return base.lower() if prop == "toLowerCase" else base.upper() if prop == "toUpperCase" \
                    else base.strip()
            if prop == "replace" and len(args) == 2 and args[0].type == "string":
                base = self.fold(obj, loose, depth + 1)
                old = self.fold(args[0])
                new = self.fold(args[1])
                if base is None or old is None or new is None:
                    return None
                return base.replace(old, new, 1)
            if prop == "apply" and self.text(obj) == "String.fromCharCode" and len(args) == 2:
                return self.fold_char_codes_array(args[1])
            return None
        if fn.type == "identifier":
            name = self.text(fn)
            resolved = self.aliases.get(name, name)
            if resolved == "atob" and len(args) == 1:
                encoded = self.fold(args[0], False, depth + 1)
                return decode_base64_text(encoded) if encoded is not None else None
            if resolved == "decodeURIComponent" and len(args) == 1:
                encoded = self.fold(args[0], False, depth + 1)
                if encoded is None:
                    return None
                from urllib.parse import unquote

                return unquote(encoded)
        return None

    def fold_list_call(self, node: Node, loose: bool, depth: int) -> list[str] | None:
        """`s.split('')`, `s.split('').reverse()`, `[...].reverse()`, `Array.from(s)` as lists of strings."""
        fn = node.child_by_field_name("function")
        if fn is None:
            return None
        args = self.call_args(node)
        if fn.type == "member_expression":
            obj = fn.child_by_field_name("object")
            prop_node = fn.child_by_field_name("property")
            if obj is None or prop_node is None:
                return None
            prop = self.text(prop_node)
            if prop == "reverse" and not args:
                items = self.fold_array(obj, loose, depth + 1)
                if items is None and obj.type == "call_expression":
                    items = self.fold_list_call(obj, loose, depth + 1)
                return items[::-1] if items is not None else None
            if prop == "split" and len(args) == 1:
                base = self.fold(obj, loose, depth + 1)
                sep = self.fold(args[0], False, depth + 1)
                if base is None or sep is None:
                    return None
                return list(base) if sep == "" else base.split(sep)
            if prop == "from" and self.text(obj) == "Array" and len(args) == 1:
                base = self.fold(args[0], loose, depth + 1)
                return list(base) if base is not None else None
        return None

    def fold_char_codes(self, args: list[Node]) -> str | None:
        codes: list[int] = []
        for arg in args:
            if arg.type == "spread_element":
                inner = arg.named_child(0)
                spread = self.fold_char_codes_array(inner) if inner is not None else None
                if spread is None:
                    return None
                codes.extend(ord(c) for c in spread)
                continue
            code = self.number_value(arg)
            if code is None:
                return None
            codes.append(code)
        try:
            return "".join(chr(c) for c in codes)
        except (ValueError, OverflowError):
            return None

    def fold_char_codes_array(self, node: Node | None) -> str | None:
        if node is None or node.type != "array":
            return None
        return self.fold_char_codes([c for c in node.named_children if c.type != "comment"])

    def number_value(self, node: Node) -> int | None:
        if node.type != "number":
            return None
        text = self.text(node).replace("_", "").lower()
        try:
            if text.startswith("0x"):
                return int(text, 16)
            if text.startswith("0o"):
                return int(text[2:], 8)
            if text.startswith("0b"):
                return int(text[2:], 2)
            if len(text) > 1 and text.startswith("0") and text.isdigit():
                return int(text, 8)
            value = float(text)
        except ValueError:
            return None
        return int(value) if value.is_integer() else None

    def fold_buffer(self, node: Node, depth: int) -> str | None:
        """`Buffer.from('...', 'base64'|'hex')` / `Buffer.from([..])` / `new Buffer(...)` decoded as text."""
        fn = node.child_by_field_name("function") or node.child_by_field_name("constructor")
        if fn is None or self.resolve(fn) not in ("Buffer.from", "Buffer"):
            return None
        args = self.call_args(node)
        if not args:
            return None
        if args[0].type == "array":
            return self.fold_char_codes_array(args[0])
        data = self.fold(args[0], False, depth + 1)
        if data is None:
            return None
        encoding = self.fold(args[1], False, depth + 1) if len(args) > 1 else "utf8"
        if encoding is None:
            return None
        encoding = encoding.lower()
        if encoding in ("base64", "base64url"):
            return decode_base64_text(data)
        if encoding == "hex":
            try:
                return bytes.fromhex(data).decode("utf-8", "replace")
            except ValueError:
                return None
        return data

    # --- name resolution --------------------------------------------------------------------
    def resolve(self, node: Node | None, depth: int = 0) -> str | None:
        """Canonical dotted path an expression refers to ("child_process.exec", "process.env"), or None."""
        if node is None or depth > 30:
            return None
        memo = self.resolve_memo.get(node.id, _UNSET)
        if memo is not _UNSET:
            return memo  # type: ignore[return-value]
        value = self.resolve_uncached(node, depth)
        self.resolve_memo[node.id] = value
        return value

    def resolve_uncached(self, node: Node, depth: int) -> str | None:
        t = node.type
        if t == "identifier":
            return self.resolve_name(self.text(node))
        if t in ("member_expression", "subscript_expression"):
            obj = node.child_by_field_name("object")
            if t == "member_expression":
                prop_node = node.child_by_field_name("property")
                prop = self.text(prop_node) if prop_node is not None else None
            else:
                prop = self.fold(node.child_by_field_name("index"))
            if prop is None:
                return None
            base = self.resolve(obj, depth + 1)
            if base is None:
                return None
            if base in _GLOBAL_OBJECTS:
                return self.resolve_name(prop)
            if prop == "default" and base in self.module_roots:
                return base  # fs_1.default.readFileSync (tsc/babel interop) is fs.readFileSync
            return f"{base}.{prop}"
        if t in ("parenthesized_expression", "await_expression", "sequence_expression"):
            if not node.named_child_count:
                return None
            return self.resolve(node.named_child(node.named_child_count - 1), depth + 1)
        if t == "call_expression":
            fn = node.child_by_field_name("function")
            if fn is None:
                return None
            callee = "import" if fn.type == "import" else self.resolve(fn, depth + 1)
            if callee in _REQUIRE_PATHS or callee == "import":
                args = self.call_args(node)
                module = self.module_name(args[0]) if args else None
                return _module_key(module) if module is not None else None
            if fn.type == "identifier" or fn.type == "member_expression":
                # __importDefault(require('fs')), __toESM(require('os')), _interopRequireWildcard(...):
                # a wrapper around a require is that module.
                args = self.call_args(node)
                if args and args[0].type == "call_expression":
                    inner = args[0].child_by_field_name("function")
                    if inner is not None and (inner.type == "import"
                                              or self.resolve(inner, depth + 1) in _REQUIRE_PATHS):
                        module = self.required_module(args[0])
                        if module is not None:
                            return _module_key(module)
            if callee == "eval":
                args = self.call_args(node)
                code = self.fold(args[0]) if args else None
                if code is not None and re.fullmatch(r"[\w$.]+", code.strip()):
                    code = code.strip()
                    return self.aliases.get(code, code)
            return None
        return None

    def resolve_name(self, name: str) -> str:
        """A bare name: its alias, a JavaScript global, or `~name` for a local we know nothing about
        (a minified `ws` or `os` variable is not the ws or os module)."""
        alias = self.aliases.get(name)
        if alias is not None:
            return alias
        return name if name in _JS_GLOBALS else f"~{name}"

    def is_require(self, fn: Node) -> bool:
        if fn.type == "import":
            return True
        return self.resolve(fn) in _REQUIRE_PATHS

    def required_module(self, call: Node) -> str | None:
        """The constant module name of a require()/import() call, else None."""
        fn = call.child_by_field_name("function")
        if fn is None or not self.is_require(fn):
            return None
        args = self.call_args(call)
        if not args:
            return None
        return self.module_name(args[0])

    def module_name(self, arg: Node) -> str | None:
        value = self.fold(arg)
        if value is not None:
            return value
        # require(path.join(__dirname, 'lib', 'x')) is a local module, not a computed one.
        if arg.type == "call_expression" and self.text(arg).startswith(("path.join(", "path.resolve(")):
            args = self.call_args(arg)
            if args and self.text(args[0]) == "__dirname":
                rest = [self.fold(a) for a in args[1:]]
                if all(r is not None for r in rest):
                    return "./" + "/".join(r.strip("/") for r in rest if r is not None)
        if arg.type == "template_string":
            loose = self.fold(arg, loose=True)
            text = self.text(arg)
            if loose is not None and text.startswith("`${__dirname}"):
                return "." + loose[len(_PLACEHOLDER):]
        return None

    # --- bindings and aliases ---------------------------------------------------------------
    def note_alias(self, name: str, path: str | None) -> None:
        if not path:
            return
        root = path.split(".", 1)[0]
        if (root in _KNOWN_GLOBALS or root in self.module_roots or path in self.module_roots) and name != path:
            self.aliases[name] = path

    def add_binding(self, node: Node, name: str, module: str, attribute: str | None) -> None:
        shown = module[5:] if module.startswith("node:") else module
        self.bindings.append(Binding(self.path, node.start_point[0] + 1, self.scope_at(node.start_byte), name,
                                     shown, attribute))
        if name:
            self.bound_names.add(name)
        key = _module_key(module)
        self.module_roots.add(key)
        self.module_events(node, module)

    def module_events(self, node: Node, module: str) -> None:
        key = _module_key(module)
        for behaviour in REGISTRY.import_behaviours(ImportContext(Language.JAVASCRIPT, key, _module_root(key))):
            self.emit(behaviour, node)

    def handle_declarator(self, node: Node, target: Node | None, value: Node | None) -> None:
        if target is None or value is None:
            return
        inner = value
        while inner.type in ("await_expression", "parenthesized_expression") and inner.named_child_count:
            child = inner.named_child(inner.named_child_count - 1)
            if child is None:
                break
            inner = child
        # const x = require('m') / const x = require('m').y / const {a, b: c} = require('m')
        require_call: Node | None = None
        attribute: str | None = None
        if inner.type == "call_expression":
            fn = inner.child_by_field_name("function")
            if fn is not None and self.is_require(fn):
                require_call = inner
            elif fn is not None:
                args = self.call_args(inner)
                if args and args[0].type == "call_expression":
                    wrapped = args[0].child_by_field_name("function")
                    if wrapped is not None and self.is_require(wrapped):
                        require_call = args[0]  # const fs = __importDefault(require('fs'))
        elif inner.type == "member_expression":
            obj = inner.child_by_field_name("object")
            prop = inner.child_by_field_name("property")
            if obj is not None and obj.type == "call_expression" and prop is not None:
                fn = obj.child_by_field_name("function")
                if fn is not None and self.is_require(fn):
                    require_call, attribute = obj, self.text(prop)
        if require_call is not None:
            module = self.required_module(require_call)
            if module is not None:
                self.bound_require_calls.add(require_call.id)
                key = _module_key(module)
                self.module_roots.add(key)
                base_path = f"{key}.{attribute}" if attribute else key
                for local, attr, at in self.pattern_names(target):
                    full_attr = attr if attribute is None else (f"{attribute}.{attr}" if attr else attribute)
                    self.add_binding(at, local, module, full_attr)
                    self.aliases[local] = f"{base_path}.{attr}" if attr else base_path
                return
        if target.type == "identifier":
            name = self.text(target)
            if inner.type in ("string", "template_string", "binary_expression", "call_expression"):
                folded = self.fold(inner)
                if folded is not None:
                    self.constants[name] = folded
                    return
                if inner.type in ("binary_expression", "template_string"):
                    # const l = "/home/" + user + "/.ssh/authorized_keys": good enough for a file name.
                    loose = self.fold(inner, loose=True)
                    if loose is not None and loose.strip(_PLACEHOLDER):
                        self.loose_constants[name] = loose
            if inner.type == "array":
                items = self.fold_array(inner)
                if items is not None:
                    self.constant_arrays[name] = items
                return
            path = self.resolve(inner)
            self.note_alias(name, path)
            self.note_handles(name, inner, path)
        elif target.type == "object_pattern":
            path = self.resolve(inner)
            if path is None:
                return
            for local, attr, at in self.pattern_names(target):
                if attr:
                    full = f"{path}.{attr}"
                    self.note_alias(local, full)
                    for behaviour in REGISTRY.attribute_behaviours(AttributeContext(Language.JAVASCRIPT, full)):
                        self.emit(behaviour, at)

    def note_handles(self, name: str, value: Node, path: str | None) -> None:
        """Remember names that hold a request/socket (their .write uploads) or a child process."""
        if value.type not in ("call_expression", "new_expression"):
            return
        fn = value.child_by_field_name("function") or value.child_by_field_name("constructor")
        callee = self.resolve(fn) if fn is not None else None
        if callee is None:
            return
        callee = _strip_promises(callee)
        module, _, attr = callee.rpartition(".")
        if (module in ("http", "https") and attr == "request") or callee in _RAW_SOCKET_PATHS \
                or callee in ("XMLHttpRequest", "WebSocket", "ws", "http2.connect", "discord.js.WebhookClient",
                           "nodemailer.createTransport") \
                or (callee.startswith("net.") and attr in ("connect", "createConnection", "Socket")):
            self.senders.add(name)
        if module == "child_process" and attr in _CHILD_PROCESS_RUN:
            self.children.add(name)

    def pattern_names(self, target: Node) -> Iterable[tuple[str, str | None, Node]]:
        """(local name, destructured property or None, node) for an identifier or object pattern."""
        if target.type == "identifier":
            yield self.text(target), None, target
            return
        if target.type != "object_pattern":
            return
        for child in target.named_children:
            if child.type == "shorthand_property_identifier_pattern":
                name = self.text(child)
                yield name, name, child
            elif child.type == "pair_pattern":
                key = child.child_by_field_name("key")
                value = child.child_by_field_name("value")
                if key is None or value is None:
                    continue
                if value.type == "assignment_pattern":
                    value = value.child_by_field_name("left") or value
                if value.type == "identifier":
                    yield self.text(value), self.property_name(key), child
            elif child.type == "object_assignment_pattern":
                left = child.child_by_field_name("left")
                if left is not None and left.type == "shorthand_property_identifier_pattern":
                    name = self.text(left)
                    yield name, name, child

    def handle_import(self, node: Node) -> None:
        source = node.child_by_field_name("source")
        if source is None:
            return
        module = self.fold(source)
        if module is None:
            return
        key = _module_key(module)
        self.module_roots.add(key)
        clause = next((c for c in node.named_children if c.type == "import_clause"), None)
        if clause is None:
            self.add_binding(node, "", module, None)
            return
        bound = False
        for child in clause.named_children:
            if child.type == "identifier":
                name = self.text(child)
                self.add_binding(child, name, module, "default")
                # A default import of a builtin/CommonJS module is the module object.
                self.aliases[name] = key
                bound = True
            elif child.type == "namespace_import":
                ident = next((c for c in child.named_children if c.type == "identifier"), None)
                if ident is not None:
                    self.add_binding(ident, self.text(ident), module, None)
                    self.aliases[self.text(ident)] = key
                    bound = True
            elif child.type == "named_imports":
                for spec in child.named_children:
                    if spec.type != "import_specifier":
                        continue
                    name_node = spec.child_by_field_name("name")
                    alias_node = spec.child_by_field_name("alias") or name_node
                    if name_node is None or alias_node is None:
                        continue
                    imported = self.property_name(name_node)
                    local = self.text(alias_node)
                    self.add_binding(spec, local, module, imported)
                    self.aliases[local] = key if imported == "default" else f"{key}.{imported}"
                    bound = True
        if not bound:
            self.add_binding(node, "", module, None)

    # --- calls ------------------------------------------------------------------------------
    def callee_text(self, node: Node | None, depth: int = 0) -> str:
        """Dotted callee text as written, with computed string members folded: obj['ex'+'ec'] -> obj.exec."""
        if node is None or depth > 20:
            return "<expr>"
        t = node.type
        if t in ("identifier", "this", "super", "property_identifier", "import"):
            return self.text(node)
        if t == "member_expression":
            prop = node.child_by_field_name("property")
            return f"{self.callee_text(node.child_by_field_name('object'), depth + 1)}." \
                   f"{self.text(prop) if prop is not None else '?'}"
        if t == "subscript_expression":
            index = self.fold(node.child_by_field_name("index"))
            base = self.callee_text(node.child_by_field_name("object"), depth + 1)
            return f"{base}.{index}" if index is not None and re.fullmatch(r"[\w$]+", index) else f"{base}[]"
        if t == "call_expression":
            module = self.required_module(node)
            if module is not None:
                return f"require({module})"
            return f"{self.callee_text(node.child_by_field_name('function'), depth + 1)}()"
        if t in ("parenthesized_expression", "sequence_expression", "await_expression"):
            last = node.named_child(node.named_child_count - 1) if node.named_child_count else None
            return self.callee_text(last, depth + 1)
        if t in _FUNCTION_TYPES:
            return self.qualname_by_node.get(node.id, "<function>")
        return "<expr>"

    def handle_call(self, node: Node, is_new: bool) -> None:
        fn = node.child_by_field_name("constructor" if is_new else "function")
        if fn is None:
            return
        fn_type = fn.type
        member = fn_type == "member_expression"
        site = fn.child_by_field_name("property") if member else None
        site_node = site if site is not None else node
        row, col = site_node.start_point
        scope = self.scope_at(node.start_byte)
        path_of_file = self.path
        calls = self.calls
        # interned: the same callee texts repeat over a big package's call sites (docs/results/speed/memory.md)
        calls.append(CallSite(path_of_file, row + 1, col, scope, intern(self.callee_text(fn)), CallKind.CALL))
        args = self.call_args(node)
        for arg in args:
            arg_type = arg.type
            if arg_type in _INLINE_FUNCTION_TYPES:
                arow, acol = arg.start_point
                calls.append(CallSite(path_of_file, arow + 1, acol, scope,
                                      self.qualname_by_node.get(arg.id, f"<function@{arow + 1}:{acol}>"),
                                      CallKind.INLINE))
            elif arg_type == "identifier":
                name = self.text(arg)
                if name in self.function_names or name in self.bound_names:
                    arow, acol = arg.start_point
                    calls.append(CallSite(path_of_file, arow + 1, acol, scope, name, CallKind.CALLBACK))
            elif arg_type == "member_expression":
                prop = arg.child_by_field_name("property")
                if prop is not None and self.text(prop) in self.function_names:
                    arow, acol = arg.start_point
                    calls.append(CallSite(path_of_file, arow + 1, acol, scope, intern(self.callee_text(arg)),
                                          CallKind.CALLBACK))
        if fn_type == "import" or (not is_new and self.resolve(fn) in _REQUIRE_PATHS):
            self.handle_require(node, fn, args)
            return
        path = self.resolve(fn)
        rule_name: str | None = None
        if path is not None:
            rule_name = _strip_promises(path)
        elif member and site is not None and fn.child_by_field_name("object") is not None:
            # A method on something we cannot name: the method name is still worth asking about.
            rule_name = "?." + self.text(site)
        if rule_name is not None:
            if member and rule_name.endswith(".pipe"):
                self.pipe_seen = True  # for the reverse-shell check: socket and shell streams piped
            if REGISTRY.may_match_call(Language.JAVASCRIPT, rule_name):
                facts = _JavaScriptCallFacts(self, fn, args, rule_name)
                found = REGISTRY.call_behaviours(CallContext(Language.JAVASCRIPT, rule_name, len(args), member,
                                                             facts))
                for behaviour in found:
                    self.emit(behaviour, site_node)
                self.after_rules(node, rule_name, found, facts, site_node)
        # A call that builds a constant string (join, fromCharCode, base64 decode...) is a literal too.
        # (Never Node.text: on a tree parsed through a read callback it re-reads the source through it.)
        name = self.text(site) if site is not None else (path or "")
        if name.rsplit(".", 1)[-1] in _FOLDING_CALLS:
            self.classify_folded(node)

    def handle_require(self, node: Node, fn: Node, args: list[Node]) -> None:
        if not args:
            return
        module = self.module_name(args[0])
        if module is not None and node.id not in self.bound_require_calls:
            self.add_binding(node, "", module, None)
        name = "import" if fn.type == "import" else "require"
        facts = _JavaScriptCallFacts(self, fn, args, name, module)
        for behaviour in REGISTRY.call_behaviours(CallContext(Language.JAVASCRIPT, name, len(args),
                                                              fn.type == "member_expression", facts)):
            self.emit(behaviour, node)

    def after_rules(self, node: Node, name: str, found: list[str], facts: _JavaScriptCallFacts, site: Node) -> None:
        """What the engine does at a call besides reporting it: state for the file-level reverse-shell
        check, code handed to eval analysed again, constant strings a decoder builds classified."""
        if not found:
            return
        module, attr = js_parts(name)
        if "raw_socket" in found:
            self.raw_socket_seen = True
        if "network_request" in found and module in ("http", "https") and attr in ("request", "get") and facts.args:
            url, parts = self.request_url(facts.args[0], module)
            if url is not None:
                # The destination of an options object, recorded as a URL string argument would be;
                # what its values say by themselves their own literals report (as for a concatenation).
                said = {b for part in parts for b in classify_literal(part)}
                for behaviour in classify_literal(url):
                    if behaviour not in said:
                        self.emit(behaviour, facts.args[0], clean(url, SNIPPET_LENGTH))
        if "run_command" in found and module == "child_process" and attr in JS_SPAWN_FAMILY:
            command = facts.command_line()
            if command is not None and command != _PLACEHOLDER:
                program = command.split(" ", 1)[0].strip("'\"")
                if _SHELL_PROGRAM.search(program):
                    self.shell_spawns.append((site, command))
        if "run_inline_interpreter" in found and len(facts.args) > 1:
            self.analyse_inline_interpreter_code(facts.args[1], site)
        if "eval_code" in found and name in JS_EVAL and facts.args:
            code = self.fold(facts.args[-1] if name == "Function" else facts.args[0])
            if code is not None:
                self.analyse_inline_code(code, site)
        if (name in ("Buffer.from", "Buffer") and "encoding_call" in found) or name == "atob" or (
                name in ("String.fromCharCode", "String.fromCharCode.apply") and "char_code_assembly" in found):
            self.classify_folded(node)

    def bound_object(self, name_node: Node) -> Node | None:
        """The object literal a name holds at a call: its one binding in the file, `const|let|var NAME =
        {...}`, in the call's own function. None when the name is bound or assigned more than once, a
        member of it is assigned, it goes through Object.assign, or the binding is elsewhere."""
        text = self.text(name_node)
        name = re.escape(text).encode()
        if text not in self.single_bindings:
            # One scan of the file per name, counted as text classified.
            self.work.spend_bytes(len(self.data))
            bindings = [m for m in re.finditer(rb"(?<![\w$.])" + name + rb"\s*(?:\[[^\]\n]*\]\s*|\.\s*[\w$]+\s*)*"
                                                  rb"(?:[-+*/%&|^]|\*\*|\?\?|&&|\|\|)?=(?![=>])", self.data)]
            single = len(bindings) == 1 and re.fullmatch(name + rb"\s*=", bindings[0].group()) is not None \
                and re.search(rb"Object\.assign\(\s*" + name + rb"\b", self.data) is None
            self.single_bindings[text] = bindings[0].span() if single else None
        span = self.single_bindings[text]
        if span is None:
            return None
        start, end = span
        keyword = re.search(rb"\b(?:const|let|var)\s+$", self.data[max(0, start - 16):start])
        opening = re.compile(rb"\s*\{").match(self.data, end)
        if keyword is None or opening is None or self.scope_at(start) != self.scope_at(name_node.start_byte):
            return None
        root = name_node
        while root.parent is not None:
            root = root.parent
        brace = root.descendant_for_byte_range(opening.end() - 1, opening.end())
        bound = brace.parent if brace is not None and brace.type == "{" else None
        return bound if bound is not None and bound.type == "object" else None

    def request_url(self, options: Node, module: str) -> tuple[str | None, list[str]]:
        """The URL an http(s).request/get options object names: `{hostname, port, path, protocol}` (or
        `host`) as literals or constants, given inline or through a name bound once to the object
        literal (bound_object). None when the host is not known (a spread, a computed key, an
        unresolved value, a name bound otherwise): no destination is made up. An unknown port or path
        is left out; the protocol defaults to the module's. Also the values it was made of."""
        if options.type == "identifier":
            bound = self.bound_object(options)
            if bound is None:
                return None, []
            options = bound
        if options.type != "object":
            return None, []
        fields: dict[str, str | None] = {}
        for child in options.named_children:
            if child.type == "shorthand_property_identifier":
                fields[self.text(child)] = self.constants.get(self.text(child))
            elif child.type == "pair":
                key, value = child.child_by_field_name("key"), child.child_by_field_name("value")
                if key is None or value is None or key.type not in ("property_identifier", "string"):
                    return None, []
                fields[self.fold(key) or "" if key.type == "string" else self.text(key)] = self.fold(value)
            elif child.type != "comment":
                return None, []  # `...defaults`, a method: the host may come from there
        if fields.keys() & _REQUEST_REROUTING_KEYS:
            return None, []  # the request may go elsewhere than the host named: no destination is claimed
        host = fields.get("hostname") if "hostname" in fields else fields.get("host")
        if not host or any(ch in host for ch in "/ \t\n@"):
            return None, []
        protocol = fields.get("protocol") or f"{module}:"
        if not re.fullmatch(r"https?:", protocol):
            return None, []
        port = fields.get("port")
        path = fields.get("path") or ""
        url = (f"{protocol}//{host}" + (f":{port}" if port and port.isdigit() and ":" not in host else "")
               + (path if path.startswith("/") else "/" + path if path else ""))
        return url, [v for v in fields.values() if v]

    def analyse_inline_interpreter_code(self, argv: Node, site: Node) -> None:
        """spawn(process.execPath, ['-e', code]): the constant code after the flag, like eval's."""
        items = self.fold_array(argv)
        if not items:
            return
        for flag, code in zip(items, items[1:], strict=False):
            if flag in JS_INLINE_FLAGS and code is not None:
                self.analyse_inline_code(code, site)
                return

    def analyse_inline_code(self, code: str, site: Node) -> None:
        """Behaviours of a constant code string handed to eval/new Function, reported at the call."""
        if len(code) > 200_000 or code.strip() in ("require", "process", "this"):
            return
        inner = analyse_javascript_source(code, f"{self.path}<eval>", WorkBudget(NESTED_WORK_UNITS, parent=self.work))
        for behaviour, _line, _column in inner:
            self.emit(behaviour, site)

    # --- strings ----------------------------------------------------------------------------
    def literal_hit_within(self, behaviour: str, start: int, end: int) -> bool:
        hits = self.literal_hits.get(behaviour)
        if not hits:
            return False
        i = bisect.bisect_left(hits, start)
        return i < len(hits) and hits[i] < end

    def classify_value(self, value: str, node: Node, raw: str | None = None, concat_top: bool = False) -> None:
        if len(value) >= REPEAT_LITERAL_LENGTH:
            if value in self.seen_long_values:
                return
            self.seen_long_values.add(value)
        found = self.classified.get(value)
        if found is None:
            found = classify_literal(value)
            if "base64_string" in found:
                decoded = decode_base64_text(value)
                if decoded:
                    found = found + [b for b in classify_literal(decoded) if b not in found]
            self.classified[value] = found
        if found and concat_top:
            # A concatenation repeats what its own literals said: keep only what the whole adds.
            found = [b for b in found if not self.literal_hit_within(b, node.start_byte, node.end_byte)]
        if found:
            snippet = self.snippet(node)
            for behaviour in found:
                self.emit(behaviour, node, snippet)
                if raw is not None:
                    self.literal_hits.setdefault(behaviour, []).append(node.start_byte)
        if raw is not None and "\\" in raw:
            for behaviour in classify_raw_literal(raw):
                self.emit(behaviour, node)

    def classify_folded(self, node: Node) -> None:
        if node.id in self.folded_tops:
            return
        self.folded_tops.add(node.id)
        value = self.fold(node)
        if value:
            self.classify_value(value, node)

    def handle_string(self, node: Node) -> None:
        raw = self.text(node)
        if node.type == "template_string":
            value = self.fold(node, loose=True)
            if value is None:
                return
        else:
            value = decode_js_string(raw[1:-1])
        self.classify_value(value, node, raw)
        if self.obfuscated and node.id in self.array_strings:
            self.string_array_literal(value, node)

    def concat_tops(self, nodes: list[Node]) -> list[Node]:
        """The outermost node of each `a + b + c` chain (its operands' own `+` nodes are inside it)."""
        tops: list[Node] = []
        stack: list[tuple[int, int, int]] = []  # (end byte, left operand id, right operand id)
        for node in _outer_first(nodes):
            while stack and stack[-1][0] <= node.start_byte:
                stack.pop()
            if not (stack and node.id in stack[-1][1:]):
                tops.append(node)
            left = node.child_by_field_name("left")
            right = node.child_by_field_name("right")
            stack.append((node.end_byte, left.id if left is not None else -1, right.id if right is not None else -1))
        return tops

    def is_concat(self, node: Node) -> bool:
        op = node.child_by_field_name("operator")
        return op is not None and op.type == "+"

    def string_array_literal(self, value: str, node: Node) -> None:
        """obfuscator.io string arrays: module names and base64 (its own alphabet) hidden in plain sight."""
        family = _family_of(value)
        if family is not None and family != "import_encoding_module":
            self.emit(family, node)
        if 8 <= len(value) <= 4000 and re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", value):
            decoded = decode_base64_text(value.translate(_OBFUSCATOR_ALPHABET))
            if decoded and len(decoded) >= 4:
                if _family_of(decoded) not in (None, "import_encoding_module"):
                    family = _family_of(decoded)
                    if family is not None:
                        self.emit(family, node)
                self.classify_value(decoded, node)

    # --- whole-file signals -----------------------------------------------------------------
    def file_signals(self, root: Node) -> None:
        facts = _JavaScriptFileFacts(root)
        for behaviour, finding in REGISTRY.file_behaviours(FileContext(Language.JAVASCRIPT, self.data, facts=facts)):
            if behaviour == "obfuscated_identifiers":
                self.obfuscated = True  # string arrays are then read for hidden module names
            line, col = self.position_of_byte(finding.offset)
            self.emit_at(behaviour, line, col, finding.offset, clean(finding.snippet, SNIPPET_LENGTH))

    # --- driver -----------------------------------------------------------------------------
    def run(self) -> None:
        root = self.parse()
        if root is None:
            return
        captures = self._filter_captures(self.run_query(root))
        self.build_functions(captures.get("function", []),
                             self.function_name_nodes(captures.get("fn_name", []), captures.get("named_fn", [])))
        self.file_signals(root)
        self.has_post_method = _upload_method_in(self.data)
        captures["env"] = self.env_members(root)
        try:
            self.process(captures)
        except BudgetExhausted:
            self.budget_exhausted = True
        except RecursionError:
            self.parse_errors = True

    def env_members(self, root: Node) -> list[Node]:
        """Member expressions `X.env`, found from the word's occurrences rather than a predicate query."""
        found: list[Node] = []
        data = self.data
        for match in _ENV_WORD.finditer(data):
            if match.start() and data[match.start() - 1] in _WORD_BYTES:
                continue  # `\benv`: not after a word character
            node = root.descendant_for_byte_range(match.start(), match.end())
            if node is None or node.type != "property_identifier":
                continue
            parent = node.parent
            if parent is not None and parent.type == "member_expression":
                found.append(parent)
            if len(found) > 5000:
                break
        return found

    def run_query(self, root: Node) -> dict[str, list[Node]]:
        """Captures of the one query, gathered range by range, the package deadline checked in between.

        (QueryCursor.captures' own progress_callback crashes the interpreter in tree-sitter 0.26.1.)
        Not counted in the work budget: every pattern matches one node without waiting past a child's
        subtree, and the tree is at most `MAX_TREE_DEPTH` deep (cut before), so the query is linear in
        what the parse read (measured: 0.04-0.9 s for 200 KB-1.8 MB of hostile nesting).
        """
        end = root.end_byte
        if end <= QUERY_RANGE_BYTES:
            return QueryCursor(_QUERY).captures(root)
        merged: dict[str, list[Node]] = {}
        cursor = QueryCursor(_QUERY)
        for start in range(0, end, QUERY_RANGE_BYTES):
            self.work.check_deadline()
            stop = min(end, start + QUERY_RANGE_BYTES)
            cursor.set_byte_range(start, stop)
            for name, nodes in cursor.captures(root).items():
                # Matches that merely overlap the range were (or will be) taken by the range they start in.
                merged.setdefault(name, []).extend(n for n in nodes if start <= n.start_byte < stop)
        return merged

    @staticmethod
    def _filter_captures(captures: dict[str, list[Node]]) -> dict[str, list[Node]]:
        """What the patterns with a child condition used to capture, from single-node captures:
        subscripts indexed by a string or an expression, `+` expressions and the strings that are
        items of an array (looked for only in arrays that hold a string capture: each node is a
        child of one array at most, so the scan is linear in the tree)."""
        subscripts: list[Node] = []
        for node in captures.pop("subscript", []):
            index = node.child_by_field_name("index")
            if index is not None and index.type in _SUBSCRIPT_INDEX_TYPES:
                subscripts.append(node)
        concats: list[Node] = []
        for node in captures.pop("binary", []):
            operator = node.child_by_field_name("operator")
            if operator is not None and operator.type == "+":
                concats.append(node)
        string_starts = sorted(map(_START, captures.get("string", [])))
        array_strings: list[Node] = []
        for array in captures.pop("array", []):
            first = bisect.bisect_left(string_starts, array.start_byte)
            if first == len(string_starts) or string_starts[first] >= array.end_byte:
                continue
            array_strings.extend(child for child in array.named_children if child.type == "string")
        captures["subscript"], captures["concat"], captures["array_string"] = subscripts, concats, array_strings
        return captures

    def process(self, captures: dict[str, list[Node]]) -> None:
        # Imports and declarations first, in source order: aliases and constants are file-wide
        # (hoisting-like) and a later binding overrides an earlier one.
        bindings_nodes = _source_order(captures.get("import", []) + captures.get("export", []) +
                                       captures.get("declarator", []) + captures.get("assignment", []))

        def handle_binding(node: Node) -> None:
            t = node.type
            if t == "import_statement":
                self.handle_import(node)
            elif t == "export_statement":
                source = node.child_by_field_name("source")
                module = self.fold(source) if source is not None else None
                if module is not None:
                    self.add_binding(node, "", module, None)
            elif t == "variable_declarator":
                self.handle_declarator(node, node.child_by_field_name("name"), node.child_by_field_name("value"))
            else:
                left = node.child_by_field_name("left")
                if left is not None and left.type == "identifier":
                    self.handle_declarator(node, left, node.child_by_field_name("right"))
                elif left is not None:
                    self.handle_member_assignment(node, left, node.child_by_field_name("right"))

        self.run_pass(bindings_nodes, BINDINGS_SHARE, BINDING_UNITS, handle_binding)
        # Aliases are complete now; resolutions cached while they were being built may be stale.
        self.resolve_memo.clear()

        env_nodes = captures.get("env", []) + _source_order(captures.get("subscript", []))
        self.run_pass(_from_both_ends(env_nodes), ENV_SHARE, NODE_UNITS, self.attribute_read)
        call_nodes = _source_order(captures.get("call", []) + captures.get("new", []))
        self.run_pass(_from_both_ends(call_nodes), CALLS_SHARE, CALL_UNITS,
                      lambda node: self.handle_call(node, node.type == "new_expression"))
        self.reverse_shell_check()
        # Module specifiers are bindings, not data.
        specifiers = {source.id for source in (n.child_by_field_name("source") for n in
                                               captures.get("import", []) + captures.get("export", []))
                      if source is not None}
        self.array_strings = {n.id for n in captures.get("array_string", [])}
        string_nodes = _source_order(captures.get("string", []) + captures.get("template", []))
        self.run_pass(_from_both_ends([n for n in string_nodes if n.id not in specifiers]), STRINGS_SHARE,
                      LITERAL_UNITS, self.handle_string, text_units=True)
        # Concatenations are classified whole, once, at their top ('https://disc' + 'ord.com/api/webhooks').
        for hits in self.literal_hits.values():
            hits.sort()

        def handle_concat(top: Node) -> None:
            if top.id not in self.folded_tops:
                self.folded_tops.add(top.id)
                folded = self.fold(top, loose=True)
                if folded:
                    self.classify_value(folded, top, concat_top=True)

        self.run_pass(_from_both_ends(self.concat_tops(captures.get("concat", []))), 1.0, FOLD_UNITS,
                      handle_concat, text_units=True)

    def attribute_read(self, node: Node) -> None:
        path = self.resolve(node)
        if path is not None:
            for behaviour in REGISTRY.attribute_behaviours(AttributeContext(Language.JAVASCRIPT, path)):
                self.emit(behaviour, node)

    def handle_member_assignment(self, node: Node, left: Node, right: Node | None) -> None:
        """`x.y = require('m')` binds a module too (bundles and UMD wrappers do this)."""
        if right is None or right.type != "call_expression":
            return
        fn = right.child_by_field_name("function")
        if fn is None or not self.is_require(fn):
            return
        module = self.required_module(right)
        if module is None:
            return
        self.bound_require_calls.add(right.id)
        self.add_binding(left, self.text(left), module, None)
        self.aliases[self.text(left)] = _module_key(module)

    def reverse_shell_check(self) -> None:
        # A socket and a shell whose streams are piped: net.Socket + spawn('/bin/sh') + .pipe().
        if self.raw_socket_seen and self.pipe_seen:
            for site, _command in self.shell_spawns:
                self.emit("reverse_shell", site)

    def result(self) -> FileAnalysis:
        return FileAnalysis(
            path=self.path,
            language=Language.JAVASCRIPT,
            events=_by_line_column(self.events),
            functions=tuple(sorted(self.functions, key=_LINE)),
            calls=_by_line_column(self.calls),
            bindings=tuple(sorted(self.bindings, key=_LINE)),
            parse_errors=self.parse_errors,
            budget_exhausted=self.budget_exhausted,
            seconds=time.monotonic() - self.started,
        )


_ARG_KINDS = {"string": ArgKind.STRING, "template_string": ArgKind.TEMPLATE, "binary_expression": ArgKind.CONCAT,
              "number": ArgKind.NUMBER, "array": ArgKind.ARRAY, "object": ArgKind.OBJECT,
              "identifier": ArgKind.IDENTIFIER, "call_expression": ArgKind.CALL, "spread_element": ArgKind.SPREAD}
_UNFOLDED = object()


def _kind(node: Node | None) -> ArgKind:
    return ArgKind.MISSING if node is None else _ARG_KINDS.get(node.type, ArgKind.OTHER)


class _JavaScriptCallFacts(CallFacts):
    """Answers rules' questions about one parsed call (see malseq.features.rules.context)."""

    def __init__(self, extractor: _Extractor, fn: Node, args: list[Node], name: str,
                 module: str | None = None) -> None:
        self.extractor = extractor
        self.fn = fn
        self.args = args
        self.name = name
        self.module = module  # what a require-like call names, as the engine already folded it
        self.receiver = fn.child_by_field_name("object") if fn.type == "member_expression" else None
        self.command: object = _UNFOLDED

    def _arg(self, index: int) -> Node | None:
        return self.args[index] if 0 <= index < len(self.args) else None

    def _source(self, node: Node | None, limit: int | None) -> str:
        if node is None:
            return ""
        text = self.extractor.text(node)
        return text if limit is None else text[:limit]

    def arg_kind(self, index: int) -> ArgKind:
        return _kind(self._arg(index))

    def arg_text(self, index: int) -> str | None:
        return self.extractor.fold(self._arg(index))

    def arg_loose(self, index: int) -> str | None:
        return self.extractor.fold(self._arg(index), loose=True)

    def arg_items(self, index: int) -> tuple[str | None, ...] | None:
        arg = self._arg(index)
        if arg is None or arg.type != "array":
            return None
        return tuple(self.extractor.fold(c) for c in arg.named_children if c.type != "comment")

    def arg_source(self, index: int, limit: int | None = 400) -> str:
        return self._source(self._arg(index), limit)

    def arg_number(self, index: int) -> int | None:
        arg = self._arg(index)
        return self.extractor.number_value(arg) if arg is not None else None

    def arg_numbers(self, index: int) -> int:
        arg = self._arg(index)
        return sum(c.type == "number" for c in arg.named_children) if arg is not None and arg.type == "array" else 0

    def char_codes(self) -> str | None:
        return self.extractor.fold_char_codes(self.args)

    def receiver_kind(self) -> ArgKind:
        return _kind(self.receiver)

    def receiver_source(self, limit: int | None = 300) -> str:
        return self._source(self.receiver, limit)

    def receiver_numbers(self) -> int:
        obj = self.receiver
        return sum(c.type == "number" for c in obj.named_children) if obj is not None and obj.type == "array" else 0

    def _receiver_function(self) -> Node | None:
        obj = self.receiver
        return obj.child_by_field_name("function") if obj is not None and obj.type == "call_expression" else None

    def receiver_callee(self) -> str | None:
        inner = self._receiver_function()
        return self.extractor.resolve(inner) if inner is not None else None

    def receiver_method(self) -> str | None:
        inner = self._receiver_function()
        if inner is None or inner.type != "member_expression":
            return None
        prop = inner.child_by_field_name("property")
        return self.extractor.text(prop) if prop is not None else None

    def receiver_method_object(self) -> tuple[ArgKind, str]:
        inner = self._receiver_function()
        source = inner.child_by_field_name("object") if inner is not None else None
        return _kind(source), self._source(source, None)

    def receiver_holds(self, what: str) -> bool:
        obj = self.receiver
        if obj is None or obj.type != "identifier":
            return False
        held = self.extractor.senders if what == "sender" else self.extractor.children if what == "child" else set()
        return self.extractor.text(obj) in held

    def callee_source(self) -> str:
        return self.extractor.text(self.fn)

    def required_module(self) -> str | None:
        return self.module

    def command_line(self) -> str | None:
        """The first argument loosely folded; spawn/execFile's argument array appended."""
        if self.command is _UNFOLDED:
            command = self.extractor.fold(self.args[0], loose=True) if self.args else None
            module, attr = js_parts(self.name)
            if command is not None and module == "child_process" and attr in JS_SPAWN_FAMILY and len(self.args) > 1:
                rest = self.extractor.fold_array(self.args[1], loose=True)
                if rest is not None:
                    command = " ".join([command, *rest])
            self.command = command
        return self.command if isinstance(self.command, str) else None

    def imported(self, root: str) -> bool:
        return root in self.extractor.module_roots

    def upload_method_in_file(self) -> bool:
        return self.extractor.has_post_method


class _JavaScriptFileFacts(FileFacts):
    def __init__(self, root: Node) -> None:
        self.root = root

    def identifier_span(self, start: int, end: int) -> tuple[int, int] | None:
        node = self.root.descendant_for_byte_range(start, end)
        if node is None or node.type not in _IDENTIFIER_TYPES:
            return None
        return node.start_byte, node.end_byte


def analyse_javascript(file: PackageFile, deadline: Deadline, work: WorkBudget | None = None,
                       meter: PackageWorkBudget | None = None) -> FileAnalysis:
    """Behaviour events, functions, call sites and bindings of one JavaScript file.

    Bounded by counted work (`work`, by default `FILE_WORK_UNITS` reported to the package budget
    `meter`); raises `TimeBudgetExceeded` (and only that) when the package deadline passes, never
    returns a shorter result for it."""
    deadline.check(f"analysing {file.path}")
    extractor = _Extractor(file, work if work is not None else WorkBudget(FILE_WORK_UNITS, deadline,
                                                                         f"analysing {file.path}", meter=meter))
    try:
        extractor.run()
    except RecursionError:
        extractor.parse_errors = True
    return extractor.result()


def analyse_javascript_source(code: str, path: str, work: WorkBudget | None = None) -> list[tuple[str, int, int]]:
    """Behaviour ids (with line, column) of a JavaScript snippet: eval'd strings, `node -e` scripts.

    Bounded by `work` (by default `NESTED_WORK_UNITS` of its own)."""
    pf = PackageFile(path, code.encode("utf-8", "replace"), Language.JAVASCRIPT, False)
    budget = work if work is not None else WorkBudget(NESTED_WORK_UNITS)
    analysis = analyse_javascript(pf, budget.deadline or Deadline.unlimited(), budget)
    return [(e.behaviour, e.line, e.column) for e in analysis.events]
