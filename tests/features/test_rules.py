"""The rule registry: every behaviour has a rule, rules name real behaviours, dispatch is by name.

Fixtures per behaviour and language are checked by test_fixtures.py; this file checks the
registry itself and that the engines' different paths (parsed calls, the Python token pass)
ask the same rules.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from malseq.features.catalogue import IDS
from malseq.features.python import analyse_python_text
from malseq.features.rules import REGISTRY, CallContext, FileContext, Registry, RuleKind, StringContext
from malseq.features.rules.context import (
    AttributeContext,
    CommandClassContext,
    ImportContext,
    ManifestContext,
    ManifestEntry,
    SetupStepContext,
)
from malseq.features.rules.registry import JS, PY, Rule, call_rule
from malseq.intake.package import Language

PY_ = Language.PYTHON
JS_ = Language.JAVASCRIPT


def test_every_catalogue_behaviour_has_a_registered_rule() -> None:
    assert sorted(IDS - REGISTRY.behaviours()) == []


def test_every_rule_names_a_catalogue_behaviour_and_can_be_reached() -> None:
    assert REGISTRY.rules
    for rule in REGISTRY.rules:
        assert rule.behaviour in IDS, rule.where
        assert set(rule.also) <= IDS, rule.where
        assert rule.languages, rule.where
        if rule.kind is RuleKind.CALL:
            assert rule.names or rule.modules or rule.roots or rule.funcs or rule.prefixes or rule.every, rule.where
        if rule.kind is RuleKind.MANIFEST:
            assert rule.entries, rule.where


def test_registration_rejects_unknown_behaviours_and_unreachable_call_rules() -> None:
    registry = Registry()
    with pytest.raises(ValueError, match="unknown behaviour"):
        registry.add(Rule("read_envv", RuleKind.CALL, PY, lambda ctx: True, 0, names=frozenset({"x"})))
    with pytest.raises(ValueError, match="matches no callee"):
        registry.add(Rule("read_env", RuleKind.CALL, PY, lambda ctx: True, 0))
    with pytest.raises(ValueError, match="unknown behaviour"):
        call_rule("not_a_behaviour", PY, order=0, names=("x",))(lambda ctx: True)


@pytest.mark.parametrize(("language", "name", "expected"), [
    (PY_, "os.getenv", ["read_env"]),
    (PY_, "subprocess.check_output", ["run_command"]),
    (PY_, "os.system", ["run_command"]),  # not os_call as well: os_call fires alone
    (PY_, "os.chdir", ["os_call"]),
    (PY_, "os.makedirs", []),
    (PY_, "requests.post", ["network_request"]),  # no body known: no upload
    (PY_, "base64.b64decode", ["encoding_call"]),
    (PY_, "Crypto.Cipher.AES.new", ["encryption_call"]),
    (PY_, "open", ["fs_read"]),
    (PY_, "win32crypt.CryptUnprotectData", ["encryption_call", "read_browser_data"]),
    (PY_, "mypkg.helper", []),
    (JS_, "child_process.exec", ["run_command"]),
    (JS_, "fs.writeFileSync", ["fs_write"]),
    (JS_, "os.hostname", ["collect_system_info"]),
    (JS_, "os.tmpdir", ["os_call"]),
    (JS_, "dns.resolveTxt", ["dns_lookup"]),
    (JS_, "axios.get", ["network_request"]),
    (JS_, "node-fetch", ["network_request"]),  # the fetch rule, not the HTTP-client one as well
    (JS_, "eval", ["eval_code"]),
    (JS_, "process.env.hasOwnProperty", ["read_env"]),
    (JS_, "~local.exec", []),
])
def test_call_rules_by_name(language: Language, name: str, expected: list[str]) -> None:
    """With nothing known but the name (as in the Python token pass over unparsable text)."""
    assert REGISTRY.call_behaviours(CallContext(language, name)) == expected


def test_dispatch_asks_only_rules_indexed_under_the_name() -> None:
    asked: list[str] = []

    def check(behaviour: str) -> Callable[[CallContext], bool]:
        def ask(ctx: CallContext) -> bool:
            asked.append(behaviour)
            return True
        return ask

    registry = Registry()
    registry.add(Rule("read_env", RuleKind.CALL, PY, check("read_env"), 0, names=frozenset({"os.getenv"})))
    registry.add(Rule("run_command", RuleKind.CALL, PY, check("run_command"), 0, modules=frozenset({"subprocess"})))
    registry.add(Rule("eval_code", RuleKind.CALL, PY, check("eval_code"), 0, funcs=frozenset({"exec"})))
    registry.add(Rule("encryption_call", RuleKind.CALL, PY, check("encryption_call"), 0, prefixes=("Crypto.",)))
    assert registry.call_behaviours(CallContext(PY_, "json.loads")) == []
    assert asked == []
    assert registry.call_behaviours(CallContext(PY_, "subprocess.run")) == ["run_command"]
    assert registry.call_behaviours(CallContext(PY_, "Crypto.Cipher.AES.new")) == ["encryption_call"]
    assert registry.call_behaviours(CallContext(PY_, "builtins.exec")) == ["eval_code"]
    assert asked == ["run_command", "encryption_call", "eval_code"]


def test_order_of_events_at_one_call_follows_rule_order_not_registration() -> None:
    registry = Registry()
    registry.add(Rule("upload_data", RuleKind.CALL, PY, lambda ctx: True, 20, names=frozenset({"f"})))
    registry.add(Rule("network_request", RuleKind.CALL, PY, lambda ctx: True, 10, names=frozenset({"f"})))
    assert registry.call_behaviours(CallContext(PY_, "f")) == ["network_request", "upload_data"]


def _import_rules_by_scan(registry: Registry, language: Language, root: str) -> list[Rule]:
    """What the per-language import index replaced: every rule scanned, stable-sorted by order."""
    return sorted((r for r in registry.rules if r.kind is RuleKind.IMPORT and language in r.languages
                   and (r.every or root in r.roots)), key=lambda r: r.order)


def test_import_rules_from_the_index_are_those_a_scan_of_every_rule_finds() -> None:
    registry = Registry()
    # Equal orders across every/rooted rules and registration order against the order: the index
    # has to keep a stable sort's answer (registration order among equal orders).
    registry.add(Rule("import_network_module", RuleKind.IMPORT, JS, lambda ctx: True, 5, roots=frozenset({"http"})))
    registry.add(Rule("import_process_module", RuleKind.IMPORT, JS, lambda ctx: True, 5, every=True))
    registry.add(Rule("import_fs_module", RuleKind.IMPORT, JS | PY, lambda ctx: True, 1,
                      roots=frozenset({"http", "fs"})))
    registry.add(Rule("import_encoding_module", RuleKind.IMPORT, PY, lambda ctx: True, 0, every=True,
                      roots=frozenset({"http"})))
    for language in (JS_, PY_):
        for root in ("http", "fs", "_0x3f2a", ""):
            expected = _import_rules_by_scan(registry, language, root)
            assert list(registry._import_rules(language, root)) == expected, (language, root)
            assert registry.import_behaviours(ImportContext(language, root, root)) == list(
                dict.fromkeys(r.behaviour for r in expected))
    assert [r.behaviour for r in registry._import_rules(JS_, "http")] == [
        "import_fs_module", "import_network_module", "import_process_module"]
    # A rule added later is seen (the index is rebuilt), and so is every rule of the real registry.
    registry.add(Rule("import_network_module", RuleKind.IMPORT, JS, lambda ctx: True, 0, roots=frozenset({"fs"})))
    assert list(registry._import_rules(JS_, "fs")) == _import_rules_by_scan(registry, JS_, "fs")
    roots = {root for r in REGISTRY.rules for root in r.roots} | {"child_process", "not-a-module", "_0xabc"}
    for language in (JS_, PY_):
        for root in sorted(roots):
            assert list(REGISTRY._import_rules(language, root)) == _import_rules_by_scan(REGISTRY, language, root)


def test_attribute_import_string_and_file_rules() -> None:
    assert REGISTRY.attribute_behaviours(AttributeContext(PY_, "os.environ")) == ["read_env"]
    assert REGISTRY.attribute_behaviours(AttributeContext(JS_, "process.env")) == ["read_env"]
    assert REGISTRY.attribute_behaviours(AttributeContext(JS_, "process.argv")) == []
    assert REGISTRY.import_behaviours(ImportContext(PY_, "urllib.request", "urllib")) == ["import_network_module"]
    assert REGISTRY.import_behaviours(ImportContext(PY_, "PIL.ImageGrab", "PIL")) == ["capture_screen_or_clipboard"]
    assert REGISTRY.import_behaviours(ImportContext(JS_, "child_process", "child_process")) == [
        "import_process_module"]
    assert REGISTRY.string_behaviours(StringContext("https://discord.com/api/webhooks/1/x",
                                                    "https://discord.com/api/webhooks/1/x")) == [
        "use_url", "chat_webhook"]
    found = REGISTRY.file_behaviours(FileContext(PY_, b"", "x = 1\n" + "y" * 1200 + "\n"))
    assert [(b, f.offset) for b, f in found] == [("minified_code", 6)]


def test_python_token_pass_uses_the_same_call_rules_as_parsed_calls() -> None:
    """Calls inside text the parser could not structure get what the rules give a call with unknown
    arguments: formerly the token pass had its own, shorter table (no putenv, open, os_call...)."""
    body = ("    os.putenv('TOKEN', 'x')\n"
            "    data = open('/tmp/a').read()\n"
            "    os.chdir('/tmp')\n"
            "    ImageGrab.grab()\n")
    broken = analyse_python_text("x.py", ("import os\ndef broken(:\n    x = [1, 2,\n" + body).encode())
    parsed = analyse_python_text("x.py", ("import os\ndef fine():\n    x = [1, 2]\n" + body).encode())
    assert broken.parse_errors and not parsed.parse_errors
    assert {(e.behaviour, e.line) for e in broken.events} == {(e.behaviour, e.line) for e in parsed.events}


NPM = ManifestEntry.NPM_SCRIPT
PTH = ManifestEntry.PTH_LINE


@pytest.mark.parametrize(("entry", "name", "text", "expected"), [
    (NPM, "postinstall", "node index.js", ["npm_install_script"]),
    (NPM, "preinstall", "echo hi", ["npm_install_script"]),
    (NPM, "build", "tsc", []),  # reached through a lifecycle script: reports what it does, not the hook
    (NPM, "test", "import x", []),  # npm scripts are not asked the .pth rules
    (PTH, "", "import os; os.system('id')", ["pth_code_execution"]),
    (PTH, "", "import\tsitecustom", ["pth_code_execution"]),
    (PTH, "", "  import os", []),  # site.py only runs lines that start with "import"
    (PTH, "", "/usr/lib/python3/dist-packages/extra", []),
    (PTH, "", "importlib_paths", []),
])
def test_manifest_rules(entry: ManifestEntry, name: str, text: str, expected: list[str]) -> None:
    file = "package.json" if entry is NPM else "x.pth"
    assert REGISTRY.manifest_behaviours(ManifestContext(entry, file, name, text)) == expected


def test_manifest_rules_need_an_entry_kind_and_are_dispatched_by_it() -> None:
    registry = Registry()
    with pytest.raises(ValueError, match="no entry kind"):
        registry.add(Rule("npm_install_script", RuleKind.MANIFEST, JS, lambda ctx: True, 0))
    asked: list[str] = []

    def check(ctx: ManifestContext) -> bool:
        asked.append(ctx.text)
        return True

    registry.add(Rule("pth_code_execution", RuleKind.MANIFEST, PY, check, 0, entries=frozenset({PTH})))
    assert registry.manifest_behaviours(ManifestContext(NPM, "package.json", "postinstall", "x")) == []
    assert registry.manifest_behaviours(ManifestContext(PTH, "a.pth", "", "import y")) == ["pth_code_execution"]
    assert asked == ["import y"]


def _command_class(command: str | None, bases: str = "(install)", methods: tuple[str, ...] = ("run",),
                   does: tuple[str, ...] = (), cmdclass_in_file: bool = True) -> CommandClassContext:
    return CommandClassContext(command, "Hook", bases, frozenset(methods), frozenset(does), cmdclass_in_file)


@pytest.mark.parametrize(("ctx", "expected"), [
    (_command_class("install", does=("fs_write",)), ["setup_command_override"]),
    (_command_class("install"), []),  # calls the base class and does nothing else: a build step
    (_command_class("install", does=("os_call", "fs_read")), []),
    (_command_class("install", does=("<calls package code>",)), ["setup_command_override"]),  # another file
    (_command_class("develop", bases="(object)", methods=("run",), does=("run_command",)),
     ["setup_command_override"]),
    (_command_class("egg_info", methods=("initialize_options",), does=("network_request",)),
     ["setup_command_override"]),  # an install base
    (_command_class("bdist_rpm", bases="(object)", does=("fs_write",)), ["setup_command_override"]),
    (_command_class("test", bases="(object)"), []),  # not run by pip
    (_command_class("build_ext", bases="(build_ext)"), []),  # C extensions customise it routinely
    (_command_class("build_ext", bases="(build_ext)", does=("read_env",)), []),
    (_command_class("build_ext", bases="(build_ext)", does=("run_command",)), ["setup_command_override"]),
    (_command_class(None, does=("fs_write",)), ["setup_command_override"]),  # cmdclass built in a way not followed
    (_command_class(None, cmdclass_in_file=False), []),
    (_command_class(None, methods=("finalize_options",)), []),
    (_command_class(None, bases="(Command)"), []),
])
def test_setup_command_class_rules(ctx: CommandClassContext, expected: list[str]) -> None:
    assert REGISTRY.command_class_behaviours(ctx) == expected


@pytest.mark.parametrize(("ctx", "expected"), [
    (SetupStepContext(frozenset({"run_command"}), call=False), ["setup_code_execution"]),
    (SetupStepContext(frozenset({"run_command"}), call=False, ordinary=True), []),  # `git describe`
    (SetupStepContext(frozenset({"fs_read", "read_env"}), call=False), []),
    (SetupStepContext(frozenset({"fs_read", "network_request"}), call=True), ["setup_code_execution"]),
    (SetupStepContext(frozenset(), call=True), []),
])
def test_setup_step_rules(ctx: SetupStepContext, expected: list[str]) -> None:
    assert REGISTRY.setup_step_behaviours(ctx) == expected


def test_setup_engine_hands_the_rules_what_called_code_does() -> None:
    """A build_ext override is reported only when its methods (here through a helper) run code; a
    module-level call of a helper that runs code is a setup step that does."""
    source = (b"import subprocess\n"
              b"from setuptools import setup\n"
              b"from setuptools.command.build_ext import build_ext\n"
              b"def helper():\n"
              b"    subprocess.call(['sh', '-c', 'id'])\n"
              b"class Quiet(build_ext):\n"
              b"    def run(self):\n"
              b"        build_ext.run(self)\n"
              b"class Loud(build_ext):\n"
              b"    def run(self):\n"
              b"        helper()\n"
              b"helper()\n"
              b"setup(name='x', cmdclass={'build_ext': Loud, 'build': Quiet})\n")
    events = analyse_python_text("setup.py", source).events
    found = {(e.behaviour, e.line) for e in events if e.behaviour.startswith("setup_")}
    assert found == {("setup_command_override", 13), ("setup_code_execution", 12)}


def test_file_rules_of_a_language_by_order_and_a_later_rule_is_asked_too() -> None:
    from malseq.features.rules import FileFinding

    registry = Registry()
    registry.add(Rule("minified_code", RuleKind.FILE, JS | PY, lambda ctx: FileFinding(1, "m"), 20))
    registry.add(Rule("obfuscated_identifiers", RuleKind.FILE, JS, lambda ctx: FileFinding(2, "o"), 10))
    js_ctx, py_ctx = FileContext(JS_, b"x"), FileContext(PY_, b"x", "x")
    assert [b for b, _f in registry.file_behaviours(js_ctx)] == ["obfuscated_identifiers", "minified_code"]
    assert [b for b, _f in registry.file_behaviours(py_ctx)] == ["minified_code"]
    registry.add(Rule("base64_string", RuleKind.FILE, PY, lambda ctx: None, 0))
    registry.add(Rule("escaped_string", RuleKind.FILE, JS, lambda ctx: FileFinding(3, "e"), 0))
    assert [b for b, _f in registry.file_behaviours(js_ctx)] == [
        "escaped_string", "obfuscated_identifiers", "minified_code"]
    assert [b for b, _f in registry.file_behaviours(py_ctx)] == ["minified_code"]


def test_a_rule_registered_after_a_name_was_looked_up_applies_to_that_name() -> None:
    # The engine memoises per-callee flags; a rule added later must not be hidden by them.
    from malseq.features import python as engine

    source = b"import zz_late_probe\nzz_late_probe.late_callee()\n"
    before = {e.behaviour for e in analyse_python_text("x.py", source).events}
    assert "read_env" not in before
    assert engine._CALL_FLAGS.get("zz_late_probe.late_callee") == 0  # remembered: nothing to look at
    call_rule("read_env", PY, order=0, names=("zz_late_probe.late_callee",))(lambda ctx: True)
    assert "zz_late_probe.late_callee" not in engine._CALL_FLAGS  # the stale memo is gone
    after = {e.behaviour for e in analyse_python_text("x.py", source).events}
    assert "read_env" in after


def test_registry_tells_its_listeners_of_every_added_rule() -> None:
    registry = Registry()
    calls: list[int] = []
    registry.on_change(lambda: calls.append(len(registry.rules)))
    registry.add(Rule("read_env", RuleKind.CALL, PY, lambda ctx: True, 0, names=frozenset({"x"})))
    registry.add(Rule("read_env", RuleKind.CALL, PY, lambda ctx: True, 0, names=frozenset({"y"})))
    assert calls == [1, 2]
