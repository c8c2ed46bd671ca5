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
from malseq.features.rules.context import AttributeContext, ImportContext
from malseq.features.rules.registry import PY, Rule, call_rule
from malseq.intake.package import Language

# Behaviours detected by a whole-stage analysis rather than a rule over one call, import,
# string or file. Each entry says where; the list may only shrink (see the test below).
NOT_RULES_YET = {
    "npm_install_script": "features/manifest.py: package.json lifecycle scripts",
    "pth_code_execution": "features/manifest.py: import lines of .pth files",
    "setup_command_override": "features/python.py _setup_command_override: cmdclass classes of setup.py",
    "setup_code_execution": "features/python.py _setup_code_execution: module-level statements of setup.py",
}

PY_ = Language.PYTHON
JS_ = Language.JAVASCRIPT


def test_every_catalogue_behaviour_has_a_registered_rule() -> None:
    missing = IDS - REGISTRY.behaviours()
    assert missing == set(NOT_RULES_YET), (
        f"behaviours without a rule: {sorted(missing - set(NOT_RULES_YET))}; "
        f"now covered by a rule, drop from NOT_RULES_YET: {sorted(set(NOT_RULES_YET) - missing)}")


def test_every_rule_names_a_catalogue_behaviour_and_can_be_reached() -> None:
    assert REGISTRY.rules
    for rule in REGISTRY.rules:
        assert rule.behaviour in IDS, rule.where
        assert set(rule.also) <= IDS, rule.where
        assert rule.languages, rule.where
        if rule.kind is RuleKind.CALL:
            assert rule.names or rule.modules or rule.roots or rule.funcs or rule.prefixes or rule.every, rule.where


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
